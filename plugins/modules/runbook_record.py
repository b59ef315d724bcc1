#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: runbook_record
short_description: Append one run record to the host's runbook log
version_added: 0.1.0
description:
  - Appends one JSON line per run to C(<state_dir>/runs.jsonl) on the managed host (mode 0600) with the run id, who ran it
    (local user or AWX user and job id, and C(host_user), the account it logged in to the host as, which is the SSH user
    under become), runbook, limit, parameters, start and end, result, changed steps and artifacts.
  - Values of secret-looking keys (password, secret, token, key, credential, ...) are replaced by C([redacted]) at any depth
    before anything is written or returned.
  - Appending to an audit log is not a change of the host's managed state, so the module reports C(changed=false).
extends_documentation_fragment:
  - nfamily.ops.runbook
  - nfamily.ops.attributes
  - nfamily.ops.attributes.runbook_group
attributes:
  check_mode:
    support: full
    details: In check mode the record is built and returned but not written.
  diff_mode:
    support: none
options:
  run_id:
    description: Id of the run.
    type: str
    required: true
  runbook:
    description: Name of the runbook.
    type: str
    required: true
  result:
    description: How the run ended.
    type: str
    choices: [success, failed, check]
    required: true
  started_at:
    description: When the run started (UTC, C(YYYY-MM-DDTHH:MM:SSZ)). Defaults to now.
    type: str
  who:
    description: "Who ran it, for example C({user: alice}) or C({awx_user: bob, awx_job_id: 42})."
    type: dict
    default: {}
  playbook:
    description: Playbook path.
    type: str
  limit:
    description: The C(--limit) of the run.
    type: str
  parameters:
    description: The run's parameters. Secret-looking keys are redacted.
    type: dict
    default: {}
  changed_steps:
    description: Steps that changed something.
    type: list
    elements: str
    default: []
  artifacts:
    description: Links or paths to what the run produced (backups, reports).
    type: list
    elements: str
    default: []
  summary:
    description: A one-line summary, for example the failure message.
    type: str
  abandoned:
    description: The unfinished earlier run this run abandoned (its id, start, inputs and steps), when it did.
    type: dict
    default: {}
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Record the run
  nfamily.ops.runbook_record:
    run_id: "{{ runbook_run_id }}"
    runbook: db_backup
    result: success
    started_at: "{{ runbook_run_started_at }}"
    who: "{{ runbook_run_who }}"
    parameters:
      keep: 7
    artifacts:
      - /opt/nself-family/backend/backups/nightly.dump
"""

RETURN = r"""
record:
  description: The record as written (secrets redacted).
  returned: always
  type: dict
  sample: {"run_id": "20261127T010000Z-1", "runbook": "db_backup", "host_user": "ops", "result": "success", "duration_s": 42}
written:
  description: Whether the record was appended.
  returned: always
  type: bool
log_file:
  description: The run log on the host.
  returned: always
  type: str
  sample: /var/lib/nfamily-ops/runs.jsonl
"""

import os
import pwd
import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _runbook as rb
from ansible_collections.nfamily.ops.plugins.module_utils._redact import redact


def host_user():
    """The account the run logged in to the host as: sudo's caller under become, else this process's user."""
    return os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name


def build_record(params, now, hostname):
    started = params["started_at"] or rb.isoformat(now)
    try:
        duration = int((now - rb.parse_time(started)).total_seconds())
    except ValueError:
        raise rb.RunbookStateError("started_at %r is not a UTC time like 2026-11-27T01:00:00Z" % started)
    return redact({
        "run_id": params["run_id"], "runbook": params["runbook"], "host": hostname, "host_user": host_user(),
        "result": params["result"], "who": params["who"], "playbook": params["playbook"], "limit": params["limit"],
        "parameters": params["parameters"], "started_at": started, "ended_at": rb.isoformat(now),
        "duration_s": duration, "changed_steps": params["changed_steps"], "artifacts": params["artifacts"],
        "summary": params["summary"], "abandoned": params["abandoned"] or None,
    })


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run_id=dict(type="str", required=True),
            runbook=dict(type="str", required=True),
            result=dict(type="str", choices=["success", "failed", "check"], required=True),
            started_at=dict(type="str"),
            who=dict(type="dict", default={}),
            playbook=dict(type="str"),
            limit=dict(type="str"),
            parameters=dict(type="dict", default={}),
            changed_steps=dict(type="list", elements="str", default=[]),
            artifacts=dict(type="list", elements="str", default=[]),
            summary=dict(type="str"),
            abandoned=dict(type="dict", default={}),
            state_dir=dict(type="path", default=rb.DEFAULT_STATE_DIR),
        ),
        supports_check_mode=True,
    )
    path = os.path.join(module.params["state_dir"], "runs.jsonl")
    try:
        rb.check_name("runbook", module.params["runbook"])
        record = build_record(module.params, rb.utcnow(), socket.gethostname())
        if not module.check_mode:
            rb.append_line(path, record)
    except rb.RunbookStateError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, record=record, written=not module.check_mode, log_file=path)


if __name__ == "__main__":
    main()
