#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: auth_check
short_description: Prove that nFamily token authentication works end to end with the key in the env files
version_added: 0.1.0
description:
  - Logs a verification account in through the auth service and checks, from the managed host, that
    the access token is signed with the key C(JWT_SECRET) of the env cascade holds (so auth really runs with it);
    C(GET /auth/me) answers 200 with it; the api service accepts it (an authenticated path answers anything but 401);
    and hasura accepts it (C(/v1/graphql) answers data, not errors).
  - With O(reject_previous_key), a token signed with the previous key of the pending or last committed rotation (read
    from the rotation's backup, see M(nfamily.ops.jwt_signing_key)) must get 401 from auth and api and be refused by
    hasura.
  - The runbook's own check (C(POST /auth/login) with a made-up account) only proves that the service answers; this
    module is what "verify the rotation" means on the real system (nfamily-backend.md §3).
  - Services that are still starting are retried until O(timeout). The verification login is logged out at the end
    (its refresh tokens revoked), so the checks leave no live credential behind.
  - Tokens, the password and keys never appear in the result.
  - The password and tokens go only to O(auth_url), O(api_url) and O(hasura_url) - http or https, plain http only to a
    loopback address - and a redirect is an answer (a failed check), never followed.
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
    details: Only reads; it logs in (which records a session) and logs out, in check mode too.
  diff_mode:
    support: none
options:
  email:
    description: E-mail of the verification account (an active user; it needs no family).
    type: str
    required: true
  password:
    description: Password of the verification account.
    type: str
    required: true
  auth_url:
    description: Base URL of the auth service as the host reaches it.
    type: str
    default: http://127.0.0.1:4000
  api_url:
    description: Base URL of the api service as the host reaches it.
    type: str
    default: http://127.0.0.1:4001
  api_path:
    description: A path of the api service that needs a Bearer token (every path but C(/health) and C(/ready) does).
    type: str
    default: /api/audit
  hasura_url:
    description: Base URL of hasura as the host reaches it; empty to skip the GraphQL checks.
    type: str
    default: http://127.0.0.1:8080
  reject_previous_key:
    description: Also check that a token signed with the previous key of the last rotation is refused everywhere.
    type: bool
    default: false
  state_dir:
    description:
      - Directory of the rotation record (for O(reject_previous_key)) and of the host's fingerprint secret, which this
        module only reads (M(nfamily.ops.jwt_signing_key) makes it).
    type: path
    default: /var/lib/nfamily-ops
  timeout:
    description: Seconds to keep retrying while a service does not answer or answers 5xx.
    type: int
    default: 60
  validate_certs:
    description: Verify TLS certificates of https URLs.
    type: bool
    default: true
seealso:
  - module: nfamily.ops.jwt_signing_key
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Verify that tokens signed with the new key work and the old key is refused
  nfamily.ops.auth_check:
    project_dir: /opt/nself-family/backend
    email: ops-verify@nself.org
    password: "{{ nfamily_verify_password }}"
    reject_previous_key: true
"""

RETURN = r"""
ok:
  description: Whether every check passed (the module fails otherwise).
  returned: always
  type: bool
checks:
  description: Each check with its outcome, the HTTP status seen and what was expected.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "auth /auth/me with the new token", "ok": true, "status": 200, "detail": "200"}]
key_fingerprint:
  description:
    - Fingerprint of the key in C(JWT_SECRET) the token was checked against, keyed as M(nfamily.ops.jwt_signing_key)'s.
    - Provisional (it matches nothing on record) on a host where no rotation has run yet.
  returned: always
  type: str
previous_fingerprint:
  description: Fingerprint of the previous key that was checked to be refused (with O(reject_previous_key)).
  returned: always
  type: str
"""

import os
import time
import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _api as api
from ansible_collections.nfamily.ops.plugins.module_utils import _jwt_key as jk
from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.module_utils import _runbook as rb
from ansible_collections.nfamily.ops.plugins.module_utils import _urls as urls
from ansible_collections.nfamily.ops.plugins.module_utils._nself import nself_argument_spec

HASURA_NS = "https://hasura.io/jwt/claims"


def probe(client, checks, params, token, label, accepted):
    """auth /auth/me, the api path and hasura with token; accepted says whether they must accept it."""
    status, _doc = client.request("GET", params["auth_url"].rstrip("/") + "/auth/me", token=token)
    checks.add("auth /auth/me with the %s" % label, status == 200 if accepted else status == 401, status,
               "expected %s, got %s" % (200 if accepted else 401, status))
    status, _doc = client.request("GET", params["api_url"].rstrip("/") + params["api_path"], token=token)
    ok = (status is not None and status != 401 and status < 500) if accepted else status == 401
    checks.add("api %s with the %s" % (params["api_path"], label), ok, status,
               "expected %s, got %s" % ("anything but 401" if accepted else 401, status))
    if params["hasura_url"]:
        status, document = client.request("POST", params["hasura_url"].rstrip("/") + "/v1/graphql",
                                          body={"query": "query { __typename }"}, token=token)
        verdict, detail = api.graphql_verdict(status, document)
        checks.add("hasura /v1/graphql with the %s" % label, verdict == accepted, status,
                   "expected %s, got %s" % ("data" if accepted else "an error", detail))


def forged_token(previous, claims):
    """A token like auth's, for the same user and session, signed with the previous key."""
    now = int(time.time())
    forged = dict(claims, jti=str(uuid.uuid4()), iat=now, exp=now + 300)
    return jk.sign_hs256(forged, previous)


def previous_rotation(params, env_name):
    record = jk.read_record(jk.record_path(params["state_dir"], params["project_dir"], env_name))
    if record.get("pending"):
        return record["pending"]
    done = [r for r in record["history"] if r.get("outcome") == "committed"]
    if not done:
        raise jk.SigningKeyError("no rotation is on record, so there is no previous key to check; run without "
                                 "reject_previous_key")
    return done[-1]


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(
        email=dict(type="str", required=True),
        password=dict(type="str", required=True, no_log=True),
        auth_url=dict(type="str", default="http://127.0.0.1:4000"),
        api_url=dict(type="str", default="http://127.0.0.1:4001"),
        api_path=dict(type="str", default="/api/audit"),
        hasura_url=dict(type="str", default="http://127.0.0.1:8080"),
        reject_previous_key=dict(type="bool", default=False),
        state_dir=dict(type="path", default=rb.DEFAULT_STATE_DIR),
        timeout=dict(type="int", default=60),
        validate_certs=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if not os.path.isdir(params["project_dir"]):
        module.fail_json(msg="project_dir %s does not exist; set nfamily_project_dir to the nself project" % params["project_dir"])
    for option in ("auth_url", "api_url", "hasura_url"):
        problem = urls.plain_http_problem(params[option], "the verification password and tokens") if params[option] else None
        if problem:
            module.fail_json(msg="%s %s. Nothing was sent" % (option, problem))
    checks = api.Checks()
    try:
        env_name = params["environment"] or nenv.detect_environment(params["project_dir"])
        current = jk.resolve(jk.locate(params["project_dir"], env_name))[jk.PRIMARY]["key"]
        previous = None
        if params["reject_previous_key"]:
            previous = jk.previous_key(previous_rotation(params, env_name))
        fingerprint = jk.Fingerprints(params["state_dir"], create=False)  # only reads: the rotation makes the secret
    except (jk.SigningKeyError, rb.RunbookStateError, IOError, OSError) as exc:
        module.fail_json(msg=str(exc))
    result = dict(key_fingerprint=fingerprint(current), previous_fingerprint=fingerprint(previous) if previous else None)
    client = api.Client(params["timeout"], params["validate_certs"])
    status, token, error = api.login(client, params["auth_url"], params["email"], params["password"])
    if checks.add("auth /auth/login as %s" % params["email"], status == 200 and token, status,
                  "expected 200 with an access token, got %s%s" % (status, " " + error if error else "")):
        signed = jk.signed_with(token, current)
        checks.add("the new token is signed with JWT_SECRET of the env files", signed, status,
                   "signed with %s" % result["key_fingerprint"] if signed
                   else "not signed with %s: auth still runs with another key" % result["key_fingerprint"])
        probe(client, checks, params, token, "new token", accepted=True)
        if previous is not None and previous != current:
            probe(client, checks, params, forged_token(previous, jk.claims_of(token)), "previous key's token", accepted=False)
        api.logout(client, params["auth_url"], token)
    failed = checks.failed()
    result.update(ok=not failed, checks=checks.items)
    if failed:
        module.fail_json(msg="auth verification failed: %s. Look at `nself logs auth`, `nself logs api` and `nself logs hasura`"
                         % "; ".join("%s (%s)" % (c["name"], c["detail"]) for c in failed), **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
