#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: session_revocation
short_description: Revoke nFamily refresh tokens and deactivate sessions, for every user or named users
version_added: 0.1.0
description:
  - Sets C(revoked_at) on every refresh token not yet revoked in C(auth.refresh_tokens) and C(is_active = false) on
    every active C(auth.sessions) row, for every user (O(all_users)) or for O(user_ids), in one transaction, as the auth
    service's C(/auth/logout) does for one user.
  - Needed after a signing key compromise. Refresh tokens are opaque and survive a key rotation, so without this a
    client simply calls C(/auth/refresh) and gets a token signed with the new key (nfamily-backend.md §3).
  - C(changed) and the counts come from the rows updated; a second run changes nothing. One C(public.audit_events)
    row (C(auth.sessions_revoked)) is added per run that changed something, where that table exists.
  - User ids are validated as UUIDs and reach the server as COPY data, never as SQL text.
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
  all_users:
    description: Revoke for every user. Exactly one of O(all_users) and O(user_ids) must be given.
    type: bool
    default: false
  user_ids:
    description: Revoke for these users (UUIDs).
    type: list
    elements: str
    default: []
  reason:
    description: Why, kept in the audit event.
    type: str
    default: ""
  run_id:
    description: The runbook run, kept in the audit event.
    type: str
    default: ""
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Force every user to log in again after a key compromise
  nfamily.ops.session_revocation:
    project_dir: /opt/nself-family/backend
    all_users: true
    reason: signing key compromise
"""

RETURN = r"""
refresh_tokens_revoked:
  description: Refresh tokens revoked (or that would be).
  returned: success
  type: int
sessions_deactivated:
  description: Sessions deactivated (or that would be).
  returned: success
  type: int
users:
  description: Distinct users affected.
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


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(pg_argument_spec())
    argument_spec.update(
        all_users=dict(type="bool", default=False),
        user_ids=dict(type="list", elements="str", default=[]),
        reason=dict(type="str", default=""),
        run_id=dict(type="str", default=""),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        if params["all_users"] == bool(params["user_ids"]):
            raise rv.RevocationError("give either all_users=true or user_ids; nothing was changed")
        values = [("run", params["run_id"]), ("reason", params["reason"])]
        values += [("user", rv.check_uuid("user id", u)) for u in params["user_ids"]]
        pg, audit = rv.auth_database(module, "session_revocation")
        result = rv.run(pg, values, rv.session_statement(params["all_users"], audit), commit=not module.check_mode)
    except rv.RevocationError as exc:
        module.fail_json(msg=str(exc))
    except (PostgresError, NselfError) as exc:
        module.fail_json(msg="the revocation failed and was rolled back: %s" % exc)
    module.exit_json(changed=bool(result["refresh_tokens_revoked"] or result["sessions_deactivated"]),
                     refresh_tokens_revoked=result["refresh_tokens_revoked"], sessions_deactivated=result["sessions_deactivated"],
                     users=result["users"], audit_event=None if module.check_mode else result["audit_event"])


if __name__ == "__main__":
    main()
