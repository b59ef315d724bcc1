#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: runbook_report
short_description: Write a runbook run's reports on the controller
version_added: 0.1.0
description:
  - Writes C(<report_dir>/<run_id>/<host>.json) (the run record with its report details) and C(<host>.md) (the same for a
    person) on the controller, each atomically and readable by its owner only, in a run directory of mode C(0700).
  - An action plugin does all the work on the controller; nothing runs on the managed host.
  - The reports are the run's artifacts, not managed state, so the task reports C(changed=false). They are written in check
    mode too, so that a preview leaves its report.
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying target.
    details: The reports are written in check mode too; the managed host is not touched in either mode.
  diff_mode:
    support: none
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  action:
    support: full
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
options:
  report_dir:
    description: Directory on the controller that holds one directory per run.
    type: path
    required: true
  host:
    description: Inventory name of the host the run was on; it names the report files.
    type: str
    required: true
  record:
    description: The run record as M(nfamily.ops.runbook_record) returns it; its C(run_id) names the run directory.
    type: dict
    required: true
  details:
    description: "The report's sections, C({title: [lines]}), already scrubbed of secrets."
    type: dict
    default: {}
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Write the controller's reports for this run
  nfamily.ops.runbook_report:
    report_dir: "{{ runbook_report_dir }}"
    host: "{{ inventory_hostname }}"
    record: "{{ runbook_record.record }}"
    details: "{{ runbook_outcome.details }}"
"""

RETURN = r"""
paths:
  description: The two report files written.
  returned: success
  type: list
  elements: str
  sample: [/srv/awx/reports/20261127T010000Z-4242/prod.json, /srv/awx/reports/20261127T010000Z-4242/prod.md]
"""
