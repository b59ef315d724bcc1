# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: redact
short_description: Replace the values of secret-looking keys, at any depth
version_added: 0.1.0
description:
  - Returns a copy of the input where the value of every key that looks like a secret (password, secret, token, key,
    credential, private, dsn, auth) is replaced by C([redacted]), in nested dicts and lists too.
  - Strings are also scrubbed of values shaped like secrets whatever their key - the password of a URL
    (C(postgres://user:[redacted]@host)), a JWT, a C(Bearer) or C(Basic) authorization value, and C(NAME=value) lines or
    C("name" - "value") JSON members where the name says password, secret, token or key.
  - The runbook role passes run inputs and parameters through it before they reach a module, so secrets do not appear in
    module arguments, which Ansible prints at C(-vvv).
options:
  _input:
    description: The data to redact.
    type: raw
    required: true
  by_key:
    description: Also replace the values of secret-looking keys. V(false) scrubs only (for text under titles).
    type: bool
    default: true
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Record the run's parameters without secrets
  ansible.builtin.debug:
    msg: "{{ {'backup': 'x.dump', 'db_password': 'hunter2'} | nfamily.ops.redact }}"
  # => {"backup": "x.dump", "db_password": "[redacted]"}
"""

RETURN = r"""
_value:
  description: The input with secret-looking keys' values replaced.
  type: raw
"""

from ansible_collections.nfamily.ops.plugins.module_utils._redact import redact


class FilterModule(object):
    def filters(self):
        return {"redact": redact}
