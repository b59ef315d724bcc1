#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: host_libraries_info
short_description: Which Python libraries the nfamily.ops modules need that a host's Python lacks
version_added: 0.1.0
description:
  - Tells which of the Python libraries the collection's modules import on the managed host (beyond the standard library)
    the Python running this module cannot import, and how to install them there - the distribution's packages (apt) for the
    system Python of Debian or Ubuntu, pip for any other interpreter.
  - The runbooks' preflight (M(nfamily.ops.nself_preflight)) refuses a run that would need a missing one;
    the P(nfamily.ops.host_prepare#role) role reads this module to install what a host lacks.
  - Reads only.
extends_documentation_fragment:
  - nfamily.ops.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  libraries:
    description:
      - The libraries (import names) to look for - V(boto3) (S3 - MinIO and offsite copies), V(cryptography) (encrypting
        and signing offsite copies), V(yaml) (PyYAML - merging an existing compose override for PITR).
    type: list
    elements: str
    choices: [boto3, cryptography, yaml]
    default: [boto3, cryptography, yaml]
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Read what the host's Python lacks
  nfamily.ops.host_libraries_info:
  register: libraries

- name: Install the missing libraries' packages
  ansible.builtin.apt:
    name: "{{ libraries.install.packages }}"
  when: libraries.missing | length > 0 and libraries.install.manager == 'apt'
"""

RETURN = r"""
python:
  description: The Python interpreter the module ran with (the one the collection's modules run with on this host).
  returned: always
  type: str
  sample: /usr/bin/python3
python_version:
  description: Its version.
  returned: always
  type: str
  sample: 3.11.2
missing:
  description: The libraries of O(libraries) this Python cannot import (import names).
  returned: always
  type: list
  elements: str
  sample: [boto3]
install:
  description: How the missing libraries get into this Python (empty packages when none is missing).
  returned: always
  type: dict
  contains:
    manager:
      description: V(apt) for the system Python of Debian or Ubuntu, V(pip) otherwise.
      type: str
      sample: apt
    packages:
      description: The packages that provide the missing libraries, in the manager's names.
      type: list
      elements: str
      sample: [python3-boto3]
    command:
      description: The command that installs them, for a person.
      type: str
      sample: sudo apt-get install -y python3-boto3
"""

import platform
import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _host_requirements as hostreq


def main():
    module = AnsibleModule(
        argument_spec=dict(libraries=dict(type="list", elements="str", default=sorted(hostreq.LIBRARIES),
                                          choices=sorted(hostreq.LIBRARIES))),
        supports_check_mode=True,
    )
    missing = hostreq.missing_libraries(module.params["libraries"])
    module.exit_json(changed=False, python=sys.executable, python_version=platform.python_version(), missing=missing,
                     install=hostreq.install_plan(missing))


if __name__ == "__main__":
    main()
