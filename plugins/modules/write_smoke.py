#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: write_smoke
short_description: Smoke-test what a family member writes (a post, a media upload), and remove what the test made
version_added: 0.1.0
description:
  - The deployment checklist's "create post" and "upload media" smoke tests, as nFamily really serves them
    (nfamily-backend.md, smoke-test targets). An account is logged in through the auth service; then
  - C(post) inserts a text post unique to this test into the family through Hasura's C(insert_posts_one) with the
    account's token, as the frontend creates posts (C(author_id) is set by Hasura from the token), and reads it back
    with C(posts_by_pk). Upstream's metadata checks posts against the session variable C(X-Hasura-Family-Ids), which
    auth's tokens do not carry (nfamily.ops role deploy, README), so on such a host the insert is refused, for every
    release; test C(post) where the tokens carry it.
  - C(upload) sends a small file unique to this test to C(POST /api/media/upload) (multipart, Bearer token,
    C(X-Family-Id)), requires C(201) with a completed item whose checksum is the file's, and reads the object back from
    the project's bucket.
  - Then it removes what it made, whatever the outcome - the post and the media item rows (with C(psql) in the postgres
    container; found by the unique text and file name even when an answer was lost), the objects, and the session
    (logout). Audit events stay, as the record of the test; nFamily's audit log
    refuses changes (trigger C(prevent_audit_modification)).
  - Production runs in demo mode (the api refuses every write) and is not written to. With C(DEMO_MODE) set to any
    non-empty value in the project's env cascade (the services read C(DEMO_MODE=false) as on, too) nothing is written and
    C(skip_reason) says why; the smoke writes go only where a deployment says they may, a family given in O(family_id)
    whose active member O(email) is.
  - Not in check mode, where it only says what it would do.
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.postgres
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
    details: Writes nothing and says so in C(skip_reason).
  diff_mode:
    support: none
options:
  email:
    description: The account that writes, an active member of O(family_id).
    type: str
    required: true
  password:
    description: Its password.
    type: str
    required: true
  family_id:
    description: The family the test post and file go to (a family where test writes may go).
    type: str
    required: true
  tests:
    description: The writes to test, in this order (each once).
    type: list
    elements: str
    choices: [post, upload]
    default: [post, upload]
  auth_url:
    description: Base URL of the auth service as the host reaches it.
    type: str
    default: http://127.0.0.1:4000
  api_url:
    description: Base URL of the api service as the host reaches it (the upload).
    type: str
    default: http://127.0.0.1:4001
  hasura_url:
    description: Base URL of Hasura as the host reaches it (the post).
    type: str
    default: http://127.0.0.1:8080
  timeout:
    description: Seconds to keep retrying the login while auth does not answer (a write is never repeated).
    type: int
    default: 30
  validate_certs:
    description: Verify TLS certificates of https URLs.
    type: bool
    default: true
requirements:
  - boto3 on the managed host, for the upload (to read the object back and remove it)
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Create a test post and upload a test file as the smoke account, then remove both
  nfamily.ops.write_smoke:
    project_dir: /opt/nself-family/backend
    email: smoke@nself.org
    password: "{{ smoke_password }}"
    family_id: 20000000-0000-4000-8000-000000000002
  register: write_smoke

- name: Only the post
  nfamily.ops.write_smoke:
    project_dir: /opt/nself-family/backend
    email: smoke@nself.org
    password: "{{ smoke_password }}"
    family_id: 20000000-0000-4000-8000-000000000002
    tests: [post]
"""

RETURN = r"""
ok:
  description: Whether every write was accepted, read back as sent, and removed again.
  returned: always
  type: bool
skip_reason:
  description: Why nothing was written (demo mode, check mode), or null.
  returned: always
  type: str
checks:
  description: Each check with its outcome and detail.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "hasura insert_posts_one", "ok": true, "status": 200, "detail": "inserted"}]
post_id:
  description: The id of the test post (removed again); null when none was inserted.
  returned: always
  type: str
storage_path:
  description: The object key the api stored the test file under (removed again); null when the upload was not accepted.
  returned: always
  type: str
"""

import hashlib
import os
import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _api as api
from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.module_utils import _s3 as s3lib
from ansible_collections.nfamily.ops.plugins.module_utils import _urls as urls
from ansible_collections.nfamily.ops.plugins.module_utils._nself import nself_argument_spec
from ansible_collections.nfamily.ops.plugins.module_utils._pg import PostgresError, pg_argument_spec, project_database, quote_literal

INSERT_POST = ("mutation NfamilyOpsSmokePost($object: posts_insert_input!) "
               "{ insert_posts_one(object: $object) { id } }")
# The service whose log explains a failed check, by the check's first word.
LOGS = {"auth": "auth", "hasura": "hasura", "api": "api", "minio": "minio", "clean-up": "postgres"}
READ_POST = "query NfamilyOpsSmokeRead($id: uuid!) { posts_by_pk(id: $id) { id body } }"


def multipart(name, content):
    """(body, content type) of a form with one file field, as the frontend sends it."""
    boundary = "nfamily-ops-%s" % uuid.uuid4().hex
    head = ('--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\nContent-Type: text/plain\r\n\r\n'
            % (boundary, name)).encode()
    return head + content + ("\r\n--%s--\r\n" % boundary).encode(), "multipart/form-data; boundary=%s" % boundary


def post_test(client, checks, params, token):
    """Insert a post as the account through hasura and read it back; (its id or None, its text: what finds it even
    when the answer to the insert was lost)."""
    url = params["hasura_url"].rstrip("/") + "/v1/graphql"
    text = "nfamily.ops smoke test %s" % uuid.uuid4()
    post = {"family_id": params["family_id"], "post_type": "text", "visibility": "family", "body": text}
    status, document = client.request("POST", url, body={"query": INSERT_POST, "variables": {"object": post}}, token=token, retry=False)
    accepted, detail = api.graphql_verdict(status, document)
    post_id = ((((document or {}).get("data") or {}).get("insert_posts_one") or {}) if accepted else {}).get("id")
    if checks.add("hasura insert_posts_one", post_id, status, "inserted" if post_id else "expected the new post, got %s" % detail):
        status, document = client.request("POST", url, body={"query": READ_POST, "variables": {"id": post_id}}, token=token)
        accepted, detail = api.graphql_verdict(status, document)
        read = (((document or {}).get("data") or {}).get("posts_by_pk") or {}) if accepted else {}
        checks.add("hasura posts_by_pk", read.get("body") == text, status,
                   "reads the post back" if read.get("body") == text else "expected the post, got %s" % (detail if not accepted else read or "null"))
    return post_id, text


def upload_test(client, checks, params, token, env):
    """Upload a file through the api and read the object back; (its file name: what finds it even when the answer was
    lost, the object key or None)."""
    content = ("nfamily.ops smoke test %s\n" % uuid.uuid4()).encode()
    name = "nfamily-ops-smoke-%s.txt" % uuid.uuid4().hex
    body, content_type = multipart(name, content)
    status, document = client.request("POST", params["api_url"].rstrip("/") + "/api/media/upload", data=body, token=token,
                                      headers={"Content-Type": content_type, "X-Family-Id": params["family_id"]}, retry=False)
    data = (document or {}).get("data") or {}
    key = data.get("storage_path")
    error = ((document or {}).get("error") or {}).get("code")
    checksum = hashlib.sha256(content).hexdigest()
    if checks.add("api POST /api/media/upload", status == 201 and data.get("status") == "completed" and data.get("checksum") == checksum,
                  status, "completed" if status == 201 else "expected 201, got %s%s" % (status, " " + error if error else "")):
        try:
            stored = s3lib.get_bytes(s3lib.client(s3lib.settings_from_env(env, {})), env.get("S3_BUCKET"), key)
            checks.add("minio object in %s" % env.get("S3_BUCKET"), stored == content, None,
                       "holds the file sent" if stored == content else "holds %d other bytes" % len(stored))
        except s3lib.S3Error as exc:
            checks.add("minio object in %s" % env.get("S3_BUCKET"), False, None, "cannot be read: %s" % exc)
    return name, key


def remove(module, env, family_id, post_text, file_name, key):
    """Remove the test's post (by its unique text), media item (by its unique file name) and object (the key the api
    answered or the item recorded); what could not be removed, as lines. Audit events stay: audit_events refuses
    changes (trigger prevent_audit_modification), as an audit log should."""
    left, keys = [], set([key]) if key else set()
    try:
        database = project_database(module) if post_text or file_name else None
        if post_text:
            database.query("DELETE FROM public.posts WHERE family_id::text = %s AND body = %s"
                           % (quote_literal(family_id), quote_literal(post_text)))
        if file_name:
            rows = database.query("DELETE FROM public.media_items WHERE family_id::text = %s AND file_name = %s RETURNING storage_path"
                                  % (quote_literal(family_id), quote_literal(file_name)))
            keys.update(row[0] for row in rows if row and row[0])
    except PostgresError as exc:
        left.append("the test's rows (%s)" % exc)
    for object_key in sorted(keys):
        try:
            s3lib.client(s3lib.settings_from_env(env, {})).delete_object(Bucket=env.get("S3_BUCKET"), Key=object_key)
        except (s3lib.S3Error, s3lib.BotoCoreError, s3lib.ClientError) as exc:
            left.append("object %s (%s)" % (object_key, s3lib.describe(exc)))
    return left


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(pg_argument_spec())
    argument_spec.update(
        email=dict(type="str", required=True),
        password=dict(type="str", required=True, no_log=True),
        family_id=dict(type="str", required=True),
        tests=dict(type="list", elements="str", choices=["post", "upload"], default=["post", "upload"]),
        auth_url=dict(type="str", default="http://127.0.0.1:4000"),
        api_url=dict(type="str", default="http://127.0.0.1:4001"),
        hasura_url=dict(type="str", default="http://127.0.0.1:8080"),
        timeout=dict(type="int", default=30),
        validate_certs=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if not os.path.isdir(params["project_dir"]):
        module.fail_json(msg="project_dir %s does not exist; set nfamily_project_dir to the nself project" % params["project_dir"])
    tests = [t for i, t in enumerate(params["tests"]) if t not in params["tests"][:i]]
    if not tests:
        module.fail_json(msg="tests is empty; name the writes to test (post, upload)")
    try:
        uuid.UUID(params["family_id"])
    except ValueError:
        module.fail_json(msg="family_id %r is not a UUID; name the family the smoke test may write to" % params["family_id"])
    for option in ("auth_url",) + (("hasura_url",) if "post" in tests else ()) + (("api_url",) if "upload" in tests else ()):
        problem = urls.plain_http_problem(params[option], "the smoke account's password and token")
        if problem:
            module.fail_json(msg="%s %s. Nothing was sent" % (option, problem))
    env, _files = nenv.load_cascade(params["project_dir"], params["environment"] or nenv.detect_environment(params["project_dir"]))
    skipped = dict(changed=False, ok=True, checks=[], post_id=None, storage_path=None)
    if env.get("DEMO_MODE"):  # the services take any non-empty value as on (z.coerce.boolean), "false" too
        module.exit_json(skip_reason="demo mode (DEMO_MODE=%s in the env files): production is not written to, so nothing "
                         "was written" % env["DEMO_MODE"], **skipped)
    if module.check_mode:
        module.exit_json(skip_reason="check mode: nothing was written", **skipped)
    if "upload" in tests and not s3lib.HAS_BOTO3:
        module.fail_json(msg="the upload test needs boto3 on the managed host (%s); install python3-boto3 (playbooks/host_prepare.yml) "
                         "or test only tests=[post]" % s3lib.BOTO3_IMPORT_ERROR)

    checks = api.Checks()
    client = api.Client(params["timeout"], params["validate_certs"])
    status, token, error = api.login(client, params["auth_url"], params["email"], params["password"])
    post_id = post_text = file_name = key = None
    if checks.add("auth /auth/login as %s" % params["email"], status == 200 and token, status,
                  "expected 200 with an access token, got %s%s" % (status, " " + error if error else "")):
        for test in tests:
            if test == "post":
                post_id, post_text = post_test(client, checks, params, token)
            else:
                file_name, key = upload_test(client, checks, params, token, env)
        api.logout(client, params["auth_url"], token)
    left = remove(module, env, params["family_id"], post_text, file_name, key)
    checks.add("clean-up", not left, None, "removed" if not left else "left behind: " + "; ".join(left))
    failed = checks.failed()
    result = dict(ok=not failed, checks=checks.items, skip_reason=None, post_id=post_id, storage_path=key)
    if failed:
        module.fail_json(msg="write smoke test failed: %s. Look at `nself logs %s`"
                         % ("; ".join("%s (%s)" % (c["name"], c["detail"]) for c in failed), LOGS[failed[0]["name"].split()[0]]),
                         changed=bool(post_id or key), **result)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
