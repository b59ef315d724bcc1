#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: minio_bucket
short_description: Make a bucket of the project's MinIO present or absent, with its access policy
version_added: 0.1.0
description:
  - V(present) creates the bucket when it is missing and sets its access policy when it differs; V(absent) deletes it.
  - O(policy) V(private) means no bucket policy; V(download) lets anyone read objects (C(s3:GetObject)), as
    C(mc anonymous set download) does; V(public) also lets anyone list them; a dict is used as the policy document.
  - A bucket that holds objects is only deleted with O(force), which deletes its objects first, in batches of 1000.
extends_documentation_fragment:
  - nfamily.ops.minio
  - nfamily.ops.attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be created, changed or deleted; changes nothing.
  diff_mode:
    support: full
    details: Existence and the policy document, before and after.
options:
  name:
    description: The bucket name (3 to 63 lower-case letters, digits, C(.) or C(-)).
    type: str
    required: true
  state:
    description: Whether the bucket exists.
    type: str
    choices: [present, absent]
    default: present
  policy:
    description: The access policy with V(present); omitted leaves the current one alone.
    type: raw
  force:
    description: With V(absent), delete the bucket's objects first.
    type: bool
    default: false
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: The media bucket, private
  nfamily.ops.minio_bucket:
    project_dir: /opt/nself-family/backend
    name: nself-family-prod
    policy: private
"""

RETURN = r"""
exists:
  description: Whether the bucket exists after the run (or would, in check mode).
  returned: always
  type: bool
policy:
  description: The bucket's policy document after the run (empty for none).
  returned: always
  type: dict
deleted_objects:
  description: Objects deleted by O(force).
  returned: always
  type: int
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _s3 as s3lib


def argument_spec():
    spec = s3lib.minio_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        policy=dict(type="raw"),
        force=dict(type="bool", default=False),
    )
    return spec


def policy_document(bucket, policy):
    """The wanted policy document ({} for private), or None to leave it alone."""
    if policy is None:
        return None
    if isinstance(policy, dict):
        return policy
    if isinstance(policy, str) and policy.strip().startswith("{"):
        try:
            return json.loads(policy)
        except ValueError as exc:
            raise s3lib.S3Error("policy is not valid JSON: %s" % exc)
    if policy not in ("private", "download", "public"):
        raise s3lib.S3Error("policy must be private, download, public or a policy document, not %r" % policy)
    if policy == "private":
        return {}
    statements = [{"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"],
                   "Resource": ["arn:aws:s3:::%s/*" % bucket]}]
    if policy == "public":
        statements.append({"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:ListBucket"],
                           "Resource": ["arn:aws:s3:::%s" % bucket]})
    return {"Version": "2012-10-17", "Statement": statements}


def canonical(value):
    """A policy document with one-element lists and scalars made alike and lists sorted, as servers
    rewrite them (["s3:GetObject"] comes back as "s3:GetObject")."""
    if isinstance(value, dict):
        return dict((k, canonical(v)) for k, v in value.items())
    if isinstance(value, list):
        items = [canonical(v) for v in value]
        return sorted(items, key=json.dumps) if len(items) != 1 else items[0]
    return value


def call(what, function, **kwargs):
    try:
        return function(**kwargs)
    except (s3lib.BotoCoreError, s3lib.ClientError) as exc:
        code = s3lib.error_code(exc)
        if code == "NotImplemented":
            raise s3lib.S3Error("%s: this S3 server does not implement it (NotImplemented)" % what)
        raise s3lib.S3Error("%s failed (%s)" % (what, s3lib.describe(exc)))


def current_policy(s3, bucket):
    try:
        return json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except s3lib.ClientError as exc:
        if s3lib.error_code(exc) in ("NoSuchBucketPolicy", "NoSuchBucket", "404", "NotImplemented"):
            return {}
        raise s3lib.S3Error("reading the policy of %s failed (%s)" % (bucket, s3lib.describe(exc)))


def empty_bucket(s3, bucket):
    deleted = 0
    keys = [o["Key"] for o in s3lib.list_keys(s3, bucket, "")]
    for start in range(0, len(keys), 1000):
        batch = keys[start:start + 1000]
        answer = call("deleting objects of %s" % bucket, s3.delete_objects, Bucket=bucket,
                      Delete={"Objects": [{"Key": k} for k in batch], "Quiet": False})
        if answer.get("Errors"):
            raise s3lib.S3Error("deleting objects of %s failed for %d keys, first: %s" % (
                bucket, len(answer["Errors"]), answer["Errors"][0].get("Message")))
        deleted += len(answer.get("Deleted", []))
    return deleted


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    bucket = params["name"]
    result = dict(changed=False, deleted_objects=0)
    try:
        s3lib.check_bucket_name(bucket)
        wanted_policy = policy_document(bucket, params["policy"])
        settings, _env = s3lib.module_settings(params)
        s3 = s3lib.client(settings)
        present = s3lib.bucket_exists(s3, bucket, settings["endpoint_url"])
        before_policy = current_policy(s3, bucket) if present else {}
        after_policy = before_policy
        if params["state"] == "absent":
            result["changed"] = present
            if present and not module.check_mode:
                if params["force"]:
                    result["deleted_objects"] = empty_bucket(s3, bucket)
                elif s3lib.list_keys(s3, bucket, ""):
                    raise s3lib.S3Error("bucket %s holds objects; empty it first or set force=true" % bucket)
                call("deleting bucket %s" % bucket, s3.delete_bucket, Bucket=bucket)
            after_policy, present_after = {}, False
        else:
            present_after = True
            if not present:
                result["changed"] = True
                if not module.check_mode:
                    call("creating bucket %s" % bucket, s3.create_bucket, Bucket=bucket)
            if wanted_policy is not None and canonical(wanted_policy) != canonical(before_policy):
                result["changed"] = True
                after_policy = wanted_policy
                if not module.check_mode:
                    if wanted_policy:
                        call("setting the policy of %s" % bucket, s3.put_bucket_policy, Bucket=bucket,
                             Policy=json.dumps(wanted_policy))
                    else:
                        call("removing the policy of %s" % bucket, s3.delete_bucket_policy, Bucket=bucket)
        result.update(exists=present_after, policy=after_policy,
                      diff={"before": {"exists": present, "policy": before_policy},
                            "after": {"exists": present_after, "policy": after_policy}})
    except s3lib.S3Error as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
