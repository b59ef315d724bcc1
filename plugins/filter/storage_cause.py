# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: storage_cause
short_description: Name the cause of an object storage failure from the evidence storage recovery collected
version_added: 0.1.0
description:
  - Applies the object storage runbook's resolution table, in this order - V(minio_down) (the service is not up or the
    S3 endpoint does not answer), V(permission_error) (the configured credentials are refused; each credential set of
    the env files is named as accepted or refused, never shown), V(bucket_missing), V(disk_full) (the minio volume is
    at or above O(disk_max_used_percent)), V(healthy).
options:
  _input:
    description: The evidence - C(status) (the minio service's status), C(minio) (minio_info's result), C(disk) (the volume's usage).
    type: dict
    required: true
  disk_max_used_percent:
    description: Used percentage of the minio volume from which the disk counts as full.
    type: int
    default: 95
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Name the cause
  ansible.builtin.set_fact:
    storage_result: "{{ {'status': 'exited', 'minio': {'reachable': false}} | nfamily.ops.storage_cause }}"
  # => cause minio_down, action restart
"""

RETURN = r"""
_value:
  description: C(cause), C(buckets) (missing ones), C(evidence) (list of lines), C(action) (none, restart, manual,
    create_buckets, prune) and C(description).
  type: dict
"""

from ansible_collections.nfamily.ops.plugins.module_utils._triage import classify_storage


class FilterModule(object):
    def filters(self):
        return {"storage_cause": classify_storage}
