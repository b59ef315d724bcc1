#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: minio_info
short_description: Health, credentials, buckets and usage of the project's MinIO
version_added: 0.1.0
description:
  - Liveness and readiness from MinIO's C(/minio/health/live) and C(/minio/health/ready) when the server has them;
    otherwise (another S3 server) from an S3 call - live when the endpoint answers HTTP at all, ready when C(ListBuckets)
    works.
  - Whether the configured credentials are accepted, and, separately, each credential set the env files hold
    (C(S3_ACCESS_KEY)/C(S3_SECRET_KEY) and C(MINIO_ROOT_USER)/C(MINIO_ROOT_PASSWORD)), named by their variables, never by
    their values.
  - Whether the expected buckets exist, with each one's object count and bytes.
extends_documentation_fragment:
  - nfamily.ops.minio
  - nfamily.ops.attributes
attributes:
  check_mode:
    support: full
    details: Read-only.
  diff_mode:
    support: none
options:
  buckets:
    description: The buckets that should exist. Default C(S3_BUCKET) and C(MINIO_DEFAULT_BUCKETS) of the env files.
    type: list
    elements: str
  usage:
    description: Count the objects and bytes of each expected bucket (lists every object).
    type: bool
    default: true
  timeout:
    description: Seconds for the health probes.
    type: int
    default: 5
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Read the object store's state
  nfamily.ops.minio_info:
    project_dir: /opt/nself-family/backend
  register: storage
"""

RETURN = r"""
reachable:
  description: Whether the endpoint answered HTTP.
  returned: always
  type: bool
health:
  description: C(live), C(ready) and C(source) (C(minio) for MinIO's health endpoints, C(s3) for the S3 fallback).
  returned: always
  type: dict
credentials_accepted:
  description: Whether the configured credentials list the buckets.
  returned: always
  type: bool
credential_error:
  description: The server's error code for the configured credentials (for example C(InvalidAccessKeyId)).
  returned: always
  type: str
credential_sets:
  description:
    - Each credential set of the env files, C({name, accepted, error}); C(name) is the pair of variable names.
    - Empty when nothing listens on the endpoint (connection refused, unknown host), as nothing could be tried.
  returned: always
  type: list
  elements: dict
buckets:
  description: The expected buckets, C({name, exists, objects, bytes}).
  returned: always
  type: list
  elements: dict
missing_buckets:
  description: Expected buckets that do not exist.
  returned: always
  type: list
  elements: str
endpoint:
  description: The endpoint used.
  returned: always
  type: str
"""

import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.error import HTTPError
from ansible.module_utils.urls import open_url

from ansible_collections.nfamily.ops.plugins.module_utils import _s3 as s3lib

CREDENTIAL_SETS = [("S3_ACCESS_KEY", "S3_SECRET_KEY"), ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")]
AUTH_ERRORS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "403")


def argument_spec():
    spec = s3lib.minio_argument_spec()
    spec.update(
        buckets=dict(type="list", elements="str"),
        usage=dict(type="bool", default=True),
        timeout=dict(type="int", default=5),
    )
    return spec


def http_status(url, settings, timeout):
    """(status code of GET url, None, False), or (None, why, whether nothing listens there) when nothing
    answered: a refused connection or an unknown host, not a timeout or a TLS failure."""
    try:
        response = open_url(url, timeout=timeout, validate_certs=bool(settings["validate_certs"]),
                            ca_path=settings["ca_bundle"], follow_redirects="none")
        return response.getcode(), None, False
    except HTTPError as exc:
        return exc.code, None, False
    except Exception as exc:  # refused, timed out, TLS, DNS
        reason = getattr(exc, "reason", None) or exc
        return None, str(reason), isinstance(reason, (ConnectionRefusedError, socket.gaierror))


def try_credentials(settings):
    """(accepted, error code) of ListBuckets with these settings; error 'unreachable' when nothing answers."""
    try:
        s3lib.client(settings).list_buckets()
        return True, ""
    except s3lib.ClientError as exc:
        return False, s3lib.error_code(exc) or "error"
    except s3lib.BotoCoreError as exc:
        return False, "unreachable: %s" % s3lib.describe(exc)


def bucket_state(s3, name, usage):
    try:
        s3.head_bucket(Bucket=name)
    except s3lib.ClientError as exc:
        if s3lib.error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return {"name": name, "exists": False, "objects": 0, "bytes": 0}
        return {"name": name, "exists": None, "error": s3lib.error_code(exc), "objects": None, "bytes": None}
    objects = s3lib.list_keys(s3, name, "") if usage else None
    return {"name": name, "exists": True, "objects": len(objects) if usage else None,
            "bytes": sum(o["Size"] for o in objects) if usage else None}


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        settings, env = s3lib.module_settings(params)
        endpoint = settings["endpoint_url"].rstrip("/")
        live_code, silence, nothing_listens = http_status(endpoint + "/minio/health/live", settings, params["timeout"])
        # Nothing listens on the endpoint: boto3's retries of each credential set would only add a
        # minute of backoff to a diagnosis that is already made.
        accepted, error = (False, "unreachable: %s" % silence) if nothing_listens else try_credentials(settings)
        ready_code = http_status(endpoint + "/minio/health/ready", settings, params["timeout"])[0] if live_code in (200, 503) else None
        if ready_code in (200, 503):
            health = {"source": "minio", "live": live_code == 200, "ready": ready_code == 200}
        else:
            health = {"source": "s3", "live": live_code is not None, "ready": accepted or error in AUTH_ERRORS}
        sets = []
        for access, secret in [] if nothing_listens else CREDENTIAL_SETS:
            if env.get(access) and env.get(secret):
                ok, why = try_credentials(dict(settings, access_key=env[access], secret_key=env[secret]))
                sets.append({"name": "%s/%s" % (access, secret), "accepted": ok, "error": why})
        expected = params["buckets"]
        if expected is None:
            expected = [b for b in [env.get("S3_BUCKET")] + (env.get("MINIO_DEFAULT_BUCKETS") or "").split(",") if b]
            expected = list(dict.fromkeys(b.strip() for b in expected))
        buckets = []
        if accepted:
            s3 = s3lib.client(settings)
            buckets = [bucket_state(s3, s3lib.check_bucket_name(name), params["usage"]) for name in expected]
    except s3lib.S3Error as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, endpoint=endpoint, reachable=live_code is not None, health=health,
                     credentials_accepted=accepted, credential_error=error, credential_sets=sets, buckets=buckets,
                     missing_buckets=[b["name"] for b in buckets if b["exists"] is False])


if __name__ == "__main__":
    main()
