#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: device_revocation
short_description: Revoke the credentials of nFamily devices, of a family or by id, in one transaction
version_added: 0.1.0
description:
  - Revokes every device of a family (O(family_id)), or the devices named by O(device_ids) or O(device_names) (within
    the family when O(family_id) is given too), in C(public.registered_devices).
  - The schema is read first. On nFamily's real schema a revoked device has C(is_revoked = true) and C(credential = NULL),
    as the code's C(revokeDevice) does (the runbook's C(SET status = 'revoked') fails there, because the table has no
    status column). A schema with a C(status) column gets C(status = 'revoked') and C(credential = NULL) where that column exists.
    C(updated_at) is set where it exists.
  - Only devices that still need it change (not revoked, or still holding a credential, or a bootstrap token with
    O(clear_bootstrap_token)), so a second run changes nothing. C(changed) and the counts come from the rows updated.
  - Devices, refresh tokens, sessions and the audit row change in one transaction. One C(public.audit_events) row
    (C(devices.revoked)) is added per run that revoked something, where that table exists.
  - Operator input never becomes SQL text. UUIDs are validated first; every value reaches the server as COPY data in a
    temporary parameter table, read by constant statements.
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.postgres
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
    details: Runs the same transaction and rolls it back, so the counts are exact and nothing changes.
  diff_mode:
    support: none
options:
  family_id:
    description: Revoke the devices of this family (a UUID).
    type: str
  device_ids:
    description: Revoke these devices (UUIDs).
    type: list
    elements: str
    default: []
  device_names:
    description: Revoke the devices with these names; needs O(family_id), because names are not unique.
    type: list
    elements: str
    default: []
  clear_bootstrap_token:
    description:
      - Also clear the bootstrap token of devices that were never enrolled. nFamily's C(revokeDevice) keeps it (enrolment
        of a revoked device is refused anyway); clearing it leaves nothing usable after a token compromise.
    type: bool
    default: true
  revoke_refresh_tokens:
    description:
      - Also revoke the refresh tokens and deactivate the sessions of the users whose devices were revoked in this run,
        so they must log in again.
    type: bool
    default: false
  run_id:
    description: The runbook run, kept in the audit event.
    type: str
    default: ""
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Revoke every device of a family, and log its users out
  nfamily.ops.device_revocation:
    project_dir: /opt/nself-family/backend
    family_id: 00000000-0000-0000-0000-000000000001
    revoke_refresh_tokens: true

- name: Revoke one device
  nfamily.ops.device_revocation:
    project_dir: /opt/nself-family/backend
    device_ids: [30000000-0000-4000-8000-000000000002]
"""

RETURN = r"""
schema:
  description: How the database marks revoked devices, V(is_revoked) or V(status).
  returned: success
  type: str
family_exists:
  description: Whether O(family_id) is a family of this database (true without O(family_id)).
  returned: success
  type: bool
matched:
  description: Devices in the scope, revoked already or not.
  returned: success
  type: int
revoked:
  description: The devices revoked by this run (or that would be), with id, family_id, user_id, name and type; never a credential.
  returned: success
  type: list
  elements: dict
  sample: [{"id": "30000000-0000-4000-8000-000000000002", "name": "Living room TV", "type": "tv"}]
revoked_count:
  description: Number of devices revoked.
  returned: success
  type: int
already_revoked:
  description: Devices in the scope that needed nothing.
  returned: success
  type: int
refresh_tokens_revoked:
  description: Refresh tokens revoked (with O(revoke_refresh_tokens)).
  returned: success
  type: int
sessions_deactivated:
  description: Sessions deactivated (with O(revoke_refresh_tokens)).
  returned: success
  type: int
audit_event:
  description: Id of the audit_events row written; null when nothing changed, in check mode, or without that table.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _revocation as rv
from ansible_collections.nfamily.ops.plugins.module_utils._nself import NselfError, nself_argument_spec
from ansible_collections.nfamily.ops.plugins.module_utils._pg import PostgresError, pg_argument_spec


def scope_params(params):
    """[(kind, value)] of the revocation's scope; raises RevocationError on bad input."""
    if not params["family_id"] and not params["device_ids"] and not params["device_names"]:
        raise rv.RevocationError("give family_id, device_ids or device_names; nothing was changed")
    if params["device_names"] and not params["family_id"]:
        raise rv.RevocationError("device_names needs family_id (device names are not unique); nothing was changed")
    values = [("run", params["run_id"] or "")]
    if params["family_id"]:
        values.append(("family", rv.check_uuid("family_id", params["family_id"])))
    values += [("device", rv.check_uuid("device id", d)) for d in params["device_ids"]]
    for name in params["device_names"]:
        if not name or not name.strip():
            raise rv.RevocationError("device_names holds an empty name; nothing was changed")
        values.append(("name", name))
    return values


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(pg_argument_spec())
    argument_spec.update(
        family_id=dict(type="str"),
        device_ids=dict(type="list", elements="str", default=[]),
        device_names=dict(type="list", elements="str", default=[]),
        clear_bootstrap_token=dict(type="bool", default=True),
        revoke_refresh_tokens=dict(type="bool", default=False),
        run_id=dict(type="str", default=""),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        values = scope_params(params)
        pg, audit = rv.auth_database(module, "revoke_refresh_tokens" if params["revoke_refresh_tokens"] else None)
        schema = rv.device_schema(pg)
        statement = rv.device_statement(schema, params["clear_bootstrap_token"], params["revoke_refresh_tokens"], audit)
        result = rv.run(pg, values, statement, commit=not module.check_mode)
    except rv.RevocationError as exc:
        module.fail_json(msg=str(exc))
    except (PostgresError, NselfError) as exc:
        module.fail_json(msg="the revocation failed and was rolled back: %s" % exc)
    revoked = result["revoked"]
    module.exit_json(changed=bool(revoked or result["refresh_tokens_revoked"] or result["sessions_deactivated"]),
                     schema=schema["kind"], family_exists=result["family_exists"], matched=result["matched"],
                     revoked=revoked, revoked_count=len(revoked), already_revoked=result["matched"] - len(revoked),
                     refresh_tokens_revoked=result["refresh_tokens_revoked"],
                     sessions_deactivated=result["sessions_deactivated"],
                     audit_event=None if module.check_mode else result["audit_event"])


if __name__ == "__main__":
    main()
