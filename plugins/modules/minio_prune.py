#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: minio_prune
short_description: List, then delete, objects under a prefix that are older than N days or beyond the newest N
version_added: 0.1.0
description:
  - Lists the objects under O(prefix) in O(bucket) that retention releases - older than O(older_than_days), or beyond
    the newest O(keep_newest) - and, only with O(confirm), deletes exactly those, in batches of 1000, checking every key
    the server reports deleted. Without O(confirm) (the default) it is a dry run that only lists.
  - Never touches an object outside O(prefix); an empty prefix is refused.
extends_documentation_fragment:
  - nfamily.ops.minio
  - nfamily.ops.attributes
attributes:
  check_mode:
    support: full
    details: The same as the dry run.
  diff_mode:
    support: none
options:
  bucket:
    description: The bucket.
    type: str
    required: true
  prefix:
    description: The key prefix (for example C(prod/<family id>/family/media/)). Required and not empty.
    type: str
    required: true
  older_than_days:
    description: Objects last modified more than this many days ago are released (0 disables the rule).
    type: int
    default: 0
  keep_newest:
    description: The newest this many objects are kept whatever their age; the others are released (0 disables the rule).
    type: int
    default: 0
  confirm:
    description: Delete the listed objects. Without it nothing is deleted.
    type: bool
    default: false
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: What would go (dry run)
  nfamily.ops.minio_prune:
    project_dir: /opt/nself-family/backend
    bucket: nself-family-prod
    prefix: prod/
    older_than_days: 365
  register: listing

- name: Delete exactly that
  nfamily.ops.minio_prune:
    project_dir: /opt/nself-family/backend
    bucket: nself-family-prod
    prefix: prod/
    older_than_days: 365
    confirm: true
"""

RETURN = r"""
listed:
  description: The objects retention releases, oldest first (C(key), C(size), C(last_modified)).
  returned: always
  type: list
  elements: dict
removed:
  description: The keys deleted (empty in a dry run).
  returned: always
  type: list
  elements: str
bytes_freed:
  description: Bytes of the deleted objects.
  returned: always
  type: int
bytes_listed:
  description: Bytes of the listed objects.
  returned: always
  type: int
dry_run:
  description: Whether nothing was deleted because O(confirm) was not set (or check mode).
  returned: always
  type: bool
"""

import datetime

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _s3 as s3lib

BATCH = 1000


def argument_spec():
    spec = s3lib.minio_argument_spec()
    spec.update(
        bucket=dict(type="str", required=True),
        prefix=dict(type="str", required=True),
        older_than_days=dict(type="int", default=0),
        keep_newest=dict(type="int", default=0),
        confirm=dict(type="bool", default=False),
    )
    return spec


def released(objects, prefix, older_than_days, keep_newest, now):
    """Objects (dicts with Key, Size, LastModified) under prefix that retention releases, oldest first."""
    mine = sorted((o for o in objects if o["Key"].startswith(prefix)), key=lambda o: (o["LastModified"], o["Key"]), reverse=True)
    cutoff = now - datetime.timedelta(days=older_than_days) if older_than_days else None
    doomed = []
    for index, entry in enumerate(mine):
        if keep_newest and index < keep_newest:
            continue  # the newest are kept whatever their age
        if keep_newest or (cutoff is not None and entry["LastModified"] < cutoff):
            doomed.append(entry)
    return sorted(doomed, key=lambda o: (o["LastModified"], o["Key"]))


def delete(s3, bucket, keys):
    removed = []
    for start in range(0, len(keys), BATCH):
        batch = keys[start:start + BATCH]
        try:
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": False})
        except (s3lib.BotoCoreError, s3lib.ClientError) as exc:
            raise s3lib.S3Error("deleting from %s failed after %d objects (%s)" % (bucket, len(removed), s3lib.describe(exc)))
        removed.extend(d["Key"] for d in answer.get("Deleted", []) if d["Key"] in batch)
        if answer.get("Errors"):
            raise s3lib.S3Error("the server refused to delete %d object(s) of %s, first %s: %s" % (
                len(answer["Errors"]), bucket, answer["Errors"][0].get("Key"), answer["Errors"][0].get("Message")))
    return removed


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if not params["prefix"]:
        module.fail_json(msg="prefix must not be empty: pruning a whole bucket is not what this module does")
    if params["older_than_days"] < 0 or params["keep_newest"] < 0:
        module.fail_json(msg="older_than_days and keep_newest must be 0 (off) or more")
    if not params["older_than_days"] and not params["keep_newest"]:
        module.fail_json(msg="set older_than_days or keep_newest (or both): without a rule nothing is released")
    try:
        s3lib.check_bucket_name(params["bucket"])
        settings, _env = s3lib.module_settings(params)
        s3 = s3lib.client(settings)
        if not s3lib.bucket_exists(s3, params["bucket"], settings["endpoint_url"]):
            raise s3lib.S3Error("bucket %s does not exist at %s: nothing was listed or deleted; check the prune policy's bucket"
                                % (params["bucket"], settings["endpoint_url"]))
        objects = s3lib.list_keys(s3, params["bucket"], params["prefix"])
        now = datetime.datetime.now(datetime.timezone.utc)
        doomed = released(objects, params["prefix"], params["older_than_days"], params["keep_newest"], now)
        dry_run = module.check_mode or not params["confirm"]
        removed = [] if dry_run else delete(s3, params["bucket"], [o["Key"] for o in doomed])
    except s3lib.S3Error as exc:
        module.fail_json(msg=str(exc))
    sizes = dict((o["Key"], o["Size"]) for o in doomed)
    module.exit_json(
        changed=bool(removed) or (dry_run and module.check_mode and bool(doomed) and params["confirm"]),
        dry_run=dry_run, removed=removed, bytes_freed=sum(sizes[k] for k in removed),
        bytes_listed=sum(sizes.values()),
        listed=[{"key": o["Key"], "size": o["Size"], "last_modified": o["LastModified"].isoformat()} for o in doomed])


if __name__ == "__main__":
    main()
