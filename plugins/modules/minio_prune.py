#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: minio_prune
short_description: List, then delete exactly that listing, objects under a prefix older than N days
version_added: 0.1.0
description:
  - Lists the objects under O(prefix) in O(bucket) that retention releases - older than O(older_than_days), except the
    newest O(keep_newest) - with a digest of that listing (RV(listing_digest)). Without O(confirm_digest) (the default)
    it is a dry run that only lists.
  - With O(confirm_digest) it lists again and deletes only when the listing is still the one whose digest the operator
    confirmed, then exactly those objects, in batches of 1000, checking every key the server reports deleted. A listing
    that changed in between (an upload, a delete, an object rewritten) is refused with its new digest, and nothing is deleted.
  - Never touches an object outside O(prefix); a prefix must end in C(/), so that C(prod/f1/) never reaches C(prod/f10/).
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
    description: The key prefix (for example C(prod/<family id>/family/media/)). Required, not empty, ending in C(/).
    type: str
    required: true
  older_than_days:
    description: Objects last modified more than this many days ago are released. The only rule that releases objects.
    type: int
    required: true
  keep_newest:
    description: A floor - the newest this many objects under O(prefix) are kept whatever their age (0 keeps none).
    type: int
    default: 0
  confirm_digest:
    description:
      - Delete the listed objects, if the listing's digest is this one (RV(listing_digest) of the dry run the operator saw).
      - Empty (the default) lists only.
    type: str
    default: ''
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
    keep_newest: 100
  register: listing

- name: Delete exactly that listing (refused if it changed since)
  nfamily.ops.minio_prune:
    project_dir: /opt/nself-family/backend
    bucket: nself-family-prod
    prefix: prod/
    older_than_days: 365
    keep_newest: 100
    confirm_digest: "{{ listing.listing_digest }}"
"""

RETURN = r"""
listed:
  description: The objects retention releases, oldest first (C(key), C(size), C(last_modified)).
  returned: always
  type: list
  elements: dict
listing_digest:
  description:
    - SHA-256 (first 16 hex digits) of the listing - each object's key, size, modification time and ETag, in order.
    - What O(confirm_digest) must be to delete exactly this listing.
  returned: always
  type: str
  sample: 3f9a0c51d2e47b86
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
  description: Whether nothing was deleted because O(confirm_digest) was not set (or check mode).
  returned: always
  type: bool
"""

import datetime
import hashlib
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _s3 as s3lib

BATCH = 1000
DIGEST_RE = re.compile(r"[0-9a-f]{16}")


def argument_spec():
    spec = s3lib.minio_argument_spec()
    spec.update(
        bucket=dict(type="str", required=True),
        prefix=dict(type="str", required=True),
        older_than_days=dict(type="int", required=True),
        keep_newest=dict(type="int", default=0),
        confirm_digest=dict(type="str", default=""),
    )
    return spec


def released(objects, prefix, older_than_days, keep_newest, now):
    """Objects (dicts with Key, Size, LastModified) under prefix older than older_than_days, except the newest
    keep_newest of them all, oldest first."""
    newest_first = sorted((o for o in objects if o["Key"].startswith(prefix)), key=lambda o: (o["LastModified"], o["Key"]), reverse=True)
    cutoff = now - datetime.timedelta(days=older_than_days)
    doomed = [o for o in newest_first[keep_newest:] if o["LastModified"] < cutoff]
    return sorted(doomed, key=lambda o: (o["LastModified"], o["Key"]))


def listing_digest(doomed):
    """What identifies a listing: every object's key, size, modification time and ETag, in order."""
    lines = ["%s\t%d\t%s\t%s\n" % (o["Key"], o["Size"], o["LastModified"].isoformat(), o.get("ETag", "")) for o in doomed]
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()[:16]


def refusal(params):
    """Why the arguments cannot be a prune, or None."""
    if not params["prefix"].endswith("/") or params["prefix"].startswith("/") or params["prefix"].strip("/") == "":
        return ("prefix %r must name a folder and end in /, as keys do without a leading /: a prefix without the trailing / also "
                "matches its siblings (prod/f1 matches prod/f10/), and pruning a whole bucket is not what this module does"
                % params["prefix"])
    if params["older_than_days"] < 1 or params["keep_newest"] < 0:
        return "older_than_days must be 1 or more (it is the rule that releases objects) and keep_newest 0 or more (a floor)"
    if params["confirm_digest"] and not DIGEST_RE.fullmatch(params["confirm_digest"]):
        return ("confirm_digest must be the listing_digest a dry run returned (16 hex digits), not %r: run without it, "
                "review the listing, then confirm that digest" % params["confirm_digest"])
    return None


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
    problem = refusal(params)
    if problem:
        module.fail_json(msg=problem)
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
        digest = listing_digest(doomed)
        confirmed = params["confirm_digest"]
        changed_since = bool(confirmed) and confirmed != digest
        dry_run = module.check_mode or not confirmed or changed_since
        removed = [] if dry_run else delete(s3, params["bucket"], [o["Key"] for o in doomed])
    except s3lib.S3Error as exc:
        module.fail_json(msg=str(exc))
    sizes = dict((o["Key"], o["Size"]) for o in doomed)
    result = dict(dry_run=dry_run, removed=removed, bytes_freed=sum(sizes[k] for k in removed), bytes_listed=sum(sizes.values()),
                  listing_digest=digest,
                  listed=[{"key": o["Key"], "size": o["Size"], "last_modified": o["LastModified"].isoformat()} for o in doomed])
    if changed_since:
        module.fail_json(msg="the listing changed since the one confirmed (%s): it now releases %d object(s), %d bytes, digest %s. "
                             "Nothing was deleted; review the new listing and confirm its digest" % (
                                 confirmed, len(doomed), result["bytes_listed"], digest), **result)
    module.exit_json(changed=bool(removed) or (module.check_mode and bool(doomed) and bool(confirmed)), **result)


if __name__ == "__main__":
    main()
