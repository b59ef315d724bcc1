#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: runbook_checkpoint
short_description: Record a runbook's progress on the host so a re-run resumes instead of repeating work
version_added: 0.1.0
description:
  - A runbook declares its steps and the inputs that matter when it begins (O(action=begin)). Each destructive step records
    its completion with the data that identifies what it did (O(action=done)), for example which backup it restored.
  - A re-run after a kill begins again with the same inputs, gets the steps already done in RV(done), and skips them.
    A re-run with other inputs while a run is unfinished is refused, unless O(abandon=true), naming the unfinished run, its
    inputs and the steps it did.
  - A runbook that only adds (O(resumable=false), such as a backup, a drill or a triage) never waits on an unfinished run. It
    abandons it, says so in RV(abandoned), and begins anew.
  - A run is unfinished only once one of its steps started or finished. A run that failed or was killed before its first
    step leaves nothing to resume and blocks nothing.
  - A step marks itself started (O(action=start)) before its effect. A step that a killed run started but did not record
    is listed in RV(interrupted); the runbook verifies whether its effect happened before doing it again, and
    O(action=start) on it returns RV(retry=true).
  - O(action=finish) with O(status=success) closes the run; the next begin starts a new one. A failed run stays unfinished
    when it had begun a step, and is closed when it had not.
  - The state lives in C(<state_dir>/runs/<runbook>.json) on the host, written atomically with mode 0600.
  - Run bookkeeping is not a change of the host's managed state, so the module reports C(changed=false);
    RV(written) tells whether the state file was written.
extends_documentation_fragment:
  - nfamily.ops.runbook
  - nfamily.ops.attributes
  - nfamily.ops.attributes.runbook_group
attributes:
  check_mode:
    support: full
    details: In check mode nothing is written; RV(done) still shows what a real run would skip, and V(done) and
      V(finish) after a check-mode V(begin) work on the predicted run.
  diff_mode:
    support: none
options:
  runbook:
    description: Name of the runbook.
    type: str
    required: true
  action:
    description:
      - V(begin) starts or resumes a run, V(start) marks a step started, V(done) records a finished step,
        V(finish) closes the run, V(status) only reads the state.
    type: str
    choices: [begin, start, done, finish, status]
    default: status
  run_id:
    description: Id of this run. Required for V(begin), V(start), V(done) and V(finish).
    type: str
  steps:
    description: The runbook's steps, in order. Required for V(begin).
    type: list
    elements: str
    default: []
  inputs:
    description:
      - The inputs that define the run (for example the backup to restore). A re-run with equal inputs resumes.
      - Values of secret-looking keys are never stored; only their fingerprint counts.
    type: dict
    default: {}
  abandon:
    description: With V(begin), abandon an unfinished run that has other inputs and start a new one.
    type: bool
    default: false
  resumable:
    description:
      - With V(begin), whether an unfinished run is resumed (same inputs) or refused (other inputs), as for a runbook that
        replaces data.
      - V(false) for a runbook that only adds (backups, drills, triage). An unfinished run is then abandoned and a new one begins.
    type: bool
    default: true
  step:
    description: The step that starts (V(start)) or finished (V(done)). Required for both.
    type: str
  data:
    description: What identifies the step's work (stored with secret-looking keys redacted).
    type: dict
    default: {}
  status:
    description: With V(finish), how the run ended. A V(failed) run stays open for a resume.
    type: str
    choices: [success, failed]
    default: success
  refresh_locks:
    description: Extend every lock O(run_id) holds by O(lock_ttl), so a long run keeps its locks.
    type: bool
    default: true
  lock_family:
    description:
      - The lock family the run took at its start. V(start) and V(done) fail, writing nothing, when O(run_id) no longer
        holds it (another run took it over meanwhile), so that a run never goes on beside another.
    type: str
  lock_ttl:
    description: Seconds the refreshed locks live from now.
    type: int
    default: 3600
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Begin, or resume, a restore of this backup
  nfamily.ops.runbook_checkpoint:
    runbook: db_restore
    action: begin
    run_id: "{{ runbook_run_id }}"
    steps: [verify_backup, safety_backup, stop_services, restore, start_services]
    inputs:
      backup: "{{ restore_backup }}"
  register: run

- name: Restore, unless a killed run already did
  ansible.builtin.command: /usr/local/bin/restore "{{ restore_backup }}"
  when: "'restore' not in run.done"

- name: Record the restore
  nfamily.ops.runbook_checkpoint:
    runbook: db_restore
    action: done
    run_id: "{{ runbook_run_id }}"
    step: restore
    data:
      backup_sha256: "{{ backup_sha256 }}"
"""

RETURN = r"""
decision:
  description: For V(begin) - V(new), V(resume) or V(abandon_and_new).
  returned: when O(action=begin)
  type: str
  sample: resume
abandoned:
  description: For V(begin) - the unfinished run this one abandoned (run id, start, inputs, steps done and started), or
    an empty dict.
  returned: when O(action=begin)
  type: dict
  sample: {"run_id": "20261127T010000Z-1", "done": [], "started": ["backup"]}
done:
  description: Steps already done in this run, with when and by which run id, and their data.
  returned: always
  type: dict
  sample: {"safety_backup": {"at": "2026-11-27T01:02:03Z", "run_id": "20261127T010000Z-1", "data": {"path": "/x"}}}
interrupted:
  description: Steps started by an earlier run of this unfinished run but never recorded done; their effect may or may not
    have happened.
  returned: always
  type: list
  elements: str
  sample: [restore]
retry:
  description: For V(start) - whether an earlier run already started this step (verify its effect before redoing it).
  returned: when O(action=start)
  type: bool
pending:
  description: Declared steps not done yet, in order.
  returned: always
  type: list
  elements: str
state:
  description: The whole run state after the call.
  returned: always
  type: dict
written:
  description: Whether the state file was written.
  returned: always
  type: bool
state_file:
  description: State file on the host. (Not C(path), which Ansible would overwrite the RV(state) with file attributes.)
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _runbook as rb
from ansible_collections.nfamily.ops.plugins.module_utils._redact import redact


def begin(module, state, now):
    params = module.params
    if not params["steps"]:
        raise rb.RunbookStateError("action=begin needs the runbook's steps")
    inputs_digest = rb.digest(params["inputs"])
    decision, reason = rb.begin_decision(state, inputs_digest, params["abandon"], params["resumable"])
    if decision == "refuse":
        module.fail_json(msg="%s on this host: %s. Either finish it: re-run with the same inputs; or abandon it: re-run "
                             "with -e runbook_abandon_unfinished=true (what its done steps changed stays as it is)."
                             % (params["runbook"], reason), state=state, done=state.get("done", {}), pending=[])
    if decision == "resume":
        state = dict(state, run_id=params["run_id"], resumed_at=rb.isoformat(now),
                     runs=state.get("runs", []) + [params["run_id"]])
        unknown = [s for s in state.get("done", {}) if s not in params["steps"]]
        if unknown:
            raise rb.RunbookStateError("the unfinished run recorded steps %s that this runbook does not declare; "
                                       "finish it with the version that started it" % ", ".join(unknown))
        state["steps"] = params["steps"]
    else:
        previous = state if decision == "abandon_and_new" else None
        state = {"runbook": params["runbook"], "run_id": params["run_id"], "runs": [params["run_id"]],
                 "steps": params["steps"], "inputs": redact(params["inputs"]), "inputs_digest": inputs_digest,
                 "started_at": rb.isoformat(now), "status": "running", "done": {}}
        if previous:
            state["abandoned"] = rb.abandoned_summary(previous)
    return state, decision


def check_step(params, state):
    if state is None or state.get("status") != "running":
        raise rb.RunbookStateError("%s has no running run for step %s; begin it first" % (params["runbook"], params["step"]))
    if params["step"] not in state["steps"]:
        raise rb.RunbookStateError("step %s is not one of %s's declared steps (%s)" % (
            params["step"], params["runbook"], ", ".join(state["steps"])))


def mark_started(params, state, now):
    check_step(params, state)
    if params["step"] in state["done"]:
        raise rb.RunbookStateError("step %s of %s is already done; skip it" % (params["step"], params["runbook"]))
    started = dict(state.get("started", {}))
    previous = started.get(params["step"])
    started[params["step"]] = {"at": rb.isoformat(now), "run_id": params["run_id"],
                               "attempts": (previous or {}).get("attempts", 0) + 1}
    return dict(state, started=started), previous is not None


def mark_done(params, state, now):
    check_step(params, state)
    done = dict(state["done"])
    done[params["step"]] = {"at": rb.isoformat(now), "run_id": params["run_id"], "data": redact(params["data"])}
    return dict(state, done=done)


def finish(params, state, now):
    if state is None or state.get("run_id") != params["run_id"]:
        raise rb.RunbookStateError("%s has no run %s to finish" % (params["runbook"], params["run_id"]))
    if params["status"] == "success":
        return dict(state, status="finished", finished_at=rb.isoformat(now))
    if not rb.is_open(state):
        return dict(state, status="closed", finished_at=rb.isoformat(now), last_failure_at=rb.isoformat(now))
    return dict(state, last_failure_at=rb.isoformat(now))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            runbook=dict(type="str", required=True),
            action=dict(type="str", choices=["begin", "start", "done", "finish", "status"], default="status"),
            run_id=dict(type="str"),
            steps=dict(type="list", elements="str", default=[]),
            inputs=dict(type="dict", default={}),
            abandon=dict(type="bool", default=False),
            step=dict(type="str"),
            data=dict(type="dict", default={}),
            status=dict(type="str", choices=["success", "failed"], default="success"),
            resumable=dict(type="bool", default=True),
            refresh_locks=dict(type="bool", default=True),
            lock_family=dict(type="str"),
            lock_ttl=dict(type="int", default=3600),
            state_dir=dict(type="path", default=rb.DEFAULT_STATE_DIR),
        ),
        required_if=[("action", "begin", ["run_id"]), ("action", "start", ["run_id", "step"]),
                     ("action", "done", ["run_id", "step"]), ("action", "finish", ["run_id"])],
        supports_check_mode=True,
    )
    params = module.params
    now = rb.utcnow()
    try:
        rb.check_name("runbook", params["runbook"])
        path = rb.checkpoint_path(params["state_dir"], params["runbook"])
        state = rb.read_json(path)
        result = dict(state_file=path, written=False)
        if module.check_mode and params["action"] in ("start", "done", "finish") and (state is None or state.get("run_id") != params["run_id"]):
            # begin wrote nothing in check mode: predict from a run that has just begun
            declared = (state or {}).get("steps") or ([params["step"]] if params["step"] else [])
            state = {"runbook": params["runbook"], "run_id": params["run_id"], "status": "running", "done": {}, "steps": declared}
        if params["action"] == "begin":
            state, result["decision"] = begin(module, state, now)
        elif params["action"] == "start":
            state, result["retry"] = mark_started(params, state, now)
        elif params["action"] == "done":
            state = mark_done(params, state, now)
        elif params["action"] == "finish":
            state = finish(params, state, now)
        if params["action"] != "status" and not module.check_mode:
            if params["refresh_locks"] and params["action"] != "finish":
                rb.refresh_locks(params["state_dir"], params["run_id"], params["lock_ttl"],
                                 params["lock_family"] if params["action"] in ("start", "done") else None)
            rb.write_state(path, state)
            result["written"] = True
    except rb.RunbookStateError as exc:
        module.fail_json(msg=str(exc))
    state = state or {}
    done = state.get("done", {}) if state.get("status") == "running" else {}
    pending = [s for s in state.get("steps", []) if s not in done]
    interrupted = interrupted_steps(state, params)
    if params["action"] == "begin":
        result["abandoned"] = state.get("abandoned", {}) if result["decision"] == "abandon_and_new" else {}
    module.exit_json(changed=False, state=state, done=done, pending=pending, interrupted=interrupted, **result)


def interrupted_steps(state, params):
    """Steps an earlier run started and never recorded done, in declared order."""
    if state.get("status") != "running":
        return []
    started = state.get("started", {})
    return [s for s in state.get("steps", []) if s in started and s not in state["done"]
            and started[s].get("run_id") != params["run_id"]]


if __name__ == "__main__":
    main()
