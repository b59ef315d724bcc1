#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: minio_object
short_description: Put, get or stat an object in the project's MinIO, streamed, with its sha256 in the metadata
version_added: 0.1.0
description:
  - V(put) uploads O(src) to O(bucket)/O(key) with boto3's managed transfer (8 MiB parts, read from disk part by part,
    so memory does not grow with the file) and the file's sha256 in the object's metadata; it then reads the object's
    size and metadata back. An object with the same size and sha256 metadata is left alone.
  - V(get) downloads the object to O(dest) through a partial file and checks the result's sha256 against the object's
    metadata before the rename. A O(dest) that already has that sha256 is left alone. An object without sha256 metadata
    (not put by this module or the backups) is refused before anything is downloaded, unless O(require_sha256=false).
  - V(stat) reads size, sha256 metadata, ETag and modification time.
extends_documentation_fragment:
  - nfamily.ops.minio
  - nfamily.ops.attributes
attributes:
  check_mode:
    support: full
    details: Reports whether the upload or download would happen (after hashing the local file); transfers nothing.
  diff_mode:
    support: none
options:
  bucket:
    description: The bucket.
    type: str
    required: true
  key:
    description: The object key.
    type: str
    required: true
  mode:
    description: What to do.
    type: str
    choices: [put, get, stat]
    default: stat
  src:
    description: The file to upload (V(put)).
    type: path
  dest:
    description: Where to download to (V(get)); written 0600.
    type: path
  require_sha256:
    description:
      - With V(get), refuse an object that carries no sha256 metadata, whose download could not be checked.
      - V(false) takes it unchecked, and RV(verified) says so.
    type: bool
    default: true
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Upload a media export
  nfamily.ops.minio_object:
    project_dir: /opt/nself-family/backend
    bucket: nf-backups
    key: exports/media-2026-11.tar
    src: /var/tmp/media-2026-11.tar
    mode: put

- name: Download it again, checked against its sha256
  nfamily.ops.minio_object:
    project_dir: /opt/nself-family/backend
    bucket: nf-backups
    key: exports/media-2026-11.tar
    dest: /var/tmp/restore/media-2026-11.tar
    mode: get
"""

RETURN = r"""
object:
  description: The object as read back (absent when V(stat) finds none).
  returned: always
  type: dict
  sample: {"bucket": "nf-backups", "key": "exports/a.tar", "size": 1073741824, "sha256": "9f86...", "etag": "\"abc-128\""}
exists:
  description: Whether the object exists (after the action).
  returned: always
  type: bool
seconds:
  description: Seconds the transfer took (0 when nothing moved).
  returned: always
  type: float
verified:
  description: Whether O(dest) was checked against the object's sha256 metadata (V(false) only with O(require_sha256=false)).
  returned: when O(mode=get)
  type: bool
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _files as files
from ansible_collections.nfamily.ops.plugins.module_utils import _s3 as s3lib


def argument_spec():
    spec = s3lib.minio_argument_spec()
    spec.update(
        bucket=dict(type="str", required=True),
        key=dict(type="str", required=True, no_log=False),
        mode=dict(type="str", choices=["put", "get", "stat"], default="stat"),
        src=dict(type="path"),
        dest=dict(type="path"),
        require_sha256=dict(type="bool", default=True),
    )
    return spec


def stat(s3, bucket, key):
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except s3lib.ClientError as exc:
        if s3lib.error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise s3lib.S3Error("reading s3://%s/%s failed (%s)" % (bucket, key, s3lib.describe(exc)))
    except s3lib.BotoCoreError as exc:
        raise s3lib.S3Error("reading s3://%s/%s failed (%s)" % (bucket, key, s3lib.describe(exc)))
    return {"bucket": bucket, "key": key, "size": head.get("ContentLength"), "etag": head.get("ETag"),
            "sha256": head.get("Metadata", {}).get(s3lib.SHA256_META),
            "last_modified": head["LastModified"].isoformat() if head.get("LastModified") else None}


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("mode", "put", ["src"]), ("mode", "get", ["dest"])])
    params = module.params
    result = dict(changed=False, seconds=0.0)
    try:
        s3lib.check_bucket_name(params["bucket"])
        if params["mode"] == "put" and not os.path.isfile(params["src"]):
            raise s3lib.S3Error("src %s is not a file" % params["src"])
        settings, _env = s3lib.module_settings(params)
        s3 = s3lib.client(settings)
        if not s3lib.bucket_exists(s3, params["bucket"], settings["endpoint_url"]):
            raise s3lib.S3Error("bucket %s does not exist at %s: nothing was transferred; check the bucket name and endpoint_url"
                                % (params["bucket"], settings["endpoint_url"]))
        current = stat(s3, params["bucket"], params["key"])
        started = time.time()
        if params["mode"] == "put":
            digest = files.sha256_file(params["src"])[0]
            same = current and current["sha256"] == digest and current["size"] == os.path.getsize(params["src"])
            result["changed"] = not same
            if result["changed"] and not module.check_mode:
                s3lib.upload(s3, params["src"], params["bucket"], params["key"], digest)
                current = stat(s3, params["bucket"], params["key"])
        elif params["mode"] == "get":
            if current is None:
                raise s3lib.S3Error("s3://%s/%s does not exist" % (params["bucket"], params["key"]))
            if not current["sha256"] and params["require_sha256"]:
                raise s3lib.S3Error("s3://%s/%s carries no sha256 metadata (minio_object and the backups put one): what arrives "
                                    "could not be checked. Nothing was downloaded; set require_sha256=false to take it unchecked"
                                    % (params["bucket"], params["key"]))
            same = os.path.isfile(params["dest"]) and current["sha256"] and files.sha256_file(params["dest"])[0] == current["sha256"]
            result["changed"] = not same
            result["verified"] = bool(current["sha256"])
            if result["changed"] and not module.check_mode:
                result["verified"] = s3lib.download(s3, params["bucket"], params["key"], params["dest"],
                                                    unchecked_ok=not params["require_sha256"])[1]
        result["seconds"] = round(time.time() - started, 2) if result["changed"] and not module.check_mode else 0.0
    except s3lib.S3Error as exc:
        module.fail_json(msg=str(exc))
    except (IOError, OSError) as exc:
        module.fail_json(msg="local file error: %s" % exc)
    result.update(object=current or {}, exists=current is not None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
