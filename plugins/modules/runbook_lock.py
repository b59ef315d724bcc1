#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: runbook_lock
short_description: Hold or release a runbook family's lock on an nFamily host
version_added: 0.1.0
description:
  - One runbook family (V(database), V(storage), V(auth), V(deploy), ...) runs at a time per host. The lock is a JSON file
    on the managed host holding the run id, owner, runbook, target, controller identity, acquisition time and expiry.
  - With O(maintenance=true) the run also takes the host's C(maintenance) lock, in the same step. Every run that stops
    services or replaces data holds it, and triage and service recovery remediate nothing while another run does.
  - Every read-decide-write of the lock files happens under one exclusive C(flock) of C(locks/.guard), so two runs racing
    for a lock (to take it, take it over, refresh or release it) can never both win.
  - A lock is alive while its run has a process on this host (a task whose E(NFAMILY_OPS_RUN_ID) is the run id), and then
    it is never taken over, whatever its expiry, O(break_lock) or a dead controller say. Otherwise it is taken over when it
    has expired, when O(break_lock=true), or when the holder is a dead C(ansible-playbook) process of the same runbook on
    the same target. The action plugin checks that last condition on the controller (the holder's process id and start
    time) and retries with O(takeover_run_id).
  - A second run is refused before it changes anything, with a message naming the holder, or, with O(on_held=report),
    told who holds it without failing.
  - Releasing only removes locks held by O(run_id); another run's lock is left alone.
  - Run bookkeeping is not a change of the host's managed state, so the module reports C(changed=false);
    RV(written) tells whether a lock file was written.
extends_documentation_fragment:
  - nfamily.ops.runbook
  - nfamily.ops.attributes
  - nfamily.ops.attributes.runbook_group
attributes:
  check_mode:
    support: full
    details: In check mode nothing is written; a lock held by another run still fails the task (or is reported).
  diff_mode:
    support: none
options:
  family:
    description: Runbook family the lock covers. Runbooks of one family exclude each other on a host.
    type: str
    required: true
  maintenance:
    description: Also take (or release) the host's C(maintenance) lock, together with O(family)'s, all or nothing.
    type: bool
    default: false
  state:
    description: V(acquired) takes or refreshes the lock; V(released) gives it back.
    type: str
    choices: [acquired, released]
    default: acquired
  run_id:
    description: Id of this run (the AWX job id, or the id the runbook role generated).
    type: str
    required: true
  runbook:
    description: Name of the runbook (playbook) taking the lock.
    type: str
  target:
    description: What the run acts on, as a stable string (host plus the inputs that matter). Only a re-run with the same
      O(runbook) and O(target) may take over a dead holder's lock.
    type: str
    default: ""
  owner:
    description: Who runs it (local user, or AWX user).
    type: str
    default: unknown
  awx_job_id:
    description: AWX job id when the run comes from AWX.
    type: str
  ttl:
    description: Seconds until the lock expires unless refreshed, when no process of its run is left on the host. Every
      checkpoint refreshes it.
    type: int
    default: 3600
  wait:
    description: Seconds to wait, checking every 2 seconds, while another live run holds a lock, before refusing.
    type: int
    default: 0
  orphan_wait:
    description:
      - Seconds to wait for the tasks of a run known to be over (its C(ansible-playbook) on this controller died, or the
        lock is broken on request) to end on the host before refusing. A module outlives a killed controller; it is never
        raced. An expired lock whose run still has a task on the host is a live run with a long task, and refuses at once
        (or after O(wait)); seeing it so extends its expiry.
    type: int
    default: 600
  on_held:
    description: V(fail) fails the task when another run holds a lock; V(report) returns RV(action=held) and the holder.
    type: str
    choices: [fail, report]
    default: fail
  break_lock:
    description: Take the lock whoever holds it, unless a task of that run still runs on the host. For a stale lock of a
      run known to be dead.
    type: bool
    default: false
  takeover_run_id:
    description: Take over the lock held by this run id, provided it holds it for the same runbook and target. Set by the
      action plugin after it found the holder's controller process dead.
    type: str
  controller:
    description: Identity of the controller process (C(host), C(pid), C(pid_start)). Set by the action plugin.
    type: dict
    default: {}
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Hold the database and maintenance locks for this restore
  nfamily.ops.runbook_lock:
    family: database
    maintenance: true
    run_id: "{{ runbook_run_id }}"
    runbook: db_restore
    target: "{{ inventory_hostname }}"
    owner: "{{ runbook_run_who.user }}"

- name: See whether another run holds the host for maintenance, without failing
  nfamily.ops.runbook_lock:
    family: maintenance
    run_id: "{{ runbook_run_id }}"
    runbook: api_triage
    on_held: report
  register: maintenance

- name: Release them
  nfamily.ops.runbook_lock:
    family: database
    maintenance: true
    run_id: "{{ runbook_run_id }}"
    state: released
"""

RETURN = r"""
action:
  description: What happened - V(acquired), V(refreshed), V(taken_over), V(released), V(not_held), V(refused) or V(held)
    (another run holds a lock and O(on_held=report)).
  returned: always
  type: str
  sample: acquired
written:
  description: Whether a lock file was written or removed.
  returned: always
  type: bool
lock:
  description: O(family)'s lock as it is after the call (empty when released or held by another run).
  returned: always
  type: dict
  sample: {"run_id": "20261127T010000Z-1234", "runbook": "db_restore", "family": "database", "expires_at": "2026-11-27T02:00:00Z"}
holder:
  description: The other run's lock that refused this one, or the one taken over.
  returned: when another run held a lock
  type: dict
holders:
  description: Every other run's lock found, by family.
  returned: always
  type: dict
processes:
  description: Processes of the holder's run still running on the host (pid and command), when they refused the lock.
  returned: always
  type: list
  elements: dict
message:
  description: The refusal, when O(on_held=report) and another run holds a lock.
  returned: when RV(action=held)
  type: str
lock_file:
  description: Lock file of O(family) on the host.
  returned: always
  type: str
  sample: /var/lib/nfamily-ops/locks/database.json
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _runbook as rb

ACTIONS = {"acquire": "acquired", "refresh": "refreshed", "takeover": "taken_over"}


def families(params):
    return [params["family"]] + ([rb.MAINTENANCE] if params["maintenance"] and params["family"] != rb.MAINTENANCE else [])


def refusal(params, family, entry):
    what = "The %s lock on this host" % family if family != rb.MAINTENANCE else "This host is under maintenance: its lock"
    advice = ("Wait for that run to finish; if it is dead, re-run with -e runbook_break_lock=true to take the lock."
              if entry["action"] == "refuse" else
              "Wait for it to end: a re-run of the same runbook from the controller that started it waits for it by itself "
              "(runbook_orphan_wait); otherwise re-run once it has ended, with -e runbook_break_lock=true if that run is dead.")
    return "%s is held by %s. %s" % (what, entry["reason"], advice)


def acquire(module, path):
    params = module.params
    request = dict((k, params[k]) for k in ("run_id", "runbook", "target", "owner", "awx_job_id", "controller"))
    outcome = rb.acquire_locks(params["state_dir"], families(params), request, params["ttl"], params["wait"],
                               params["orphan_wait"], params["takeover_run_id"], params["break_lock"], module.check_mode)
    entries = outcome["families"]
    result = dict(lock_file=path, written=False, lock={}, processes=[],
                  holders=dict((f, e["holder"]) for f, e in entries.items() if e["holder"] and e["holder"].get("run_id") != params["run_id"]))
    if outcome["refused"]:
        family = outcome["refused"][0]
        entry = entries[family]
        message = refusal(params, family, entry)
        result.update(holder=entry["holder"], processes=entry["processes"])
        if params["on_held"] == "report":
            result.update(action="held", message=message)
            return result
        module.fail_json(msg=message, action="refused", **result)
    main = entries[params["family"]]
    for family, entry in entries.items():
        if entry["action"] == "takeover":
            result["holder"] = entry["holder"]
            module.warn("took over the %s lock from %s (%s)" % (family, rb.describe_holder(entry["holder"]), entry["reason"]))
    result.update(action=ACTIONS[main["action"]], lock=main["lock"], written=not module.check_mode)
    return result


def release(module, path):
    outcome = rb.release_locks(module.params["state_dir"], families(module.params), module.params["run_id"], module.check_mode)
    result = dict(lock_file=path, written=False, lock={}, processes=[],
                  holders=dict((f, holder) for f, (action, holder) in outcome.items() if action == "held_by_other"))
    for family, (action, holder) in outcome.items():
        if action == "held_by_other":
            module.warn("the %s lock is held by another run (%s); left in place" % (family, rb.describe_holder(holder)))
    released = [f for f, (action, _holder) in outcome.items() if action == "released"]
    result.update(action="released" if released else "not_held", written=bool(released) and not module.check_mode)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            family=dict(type="str", required=True),
            maintenance=dict(type="bool", default=False),
            state=dict(type="str", choices=["acquired", "released"], default="acquired"),
            run_id=dict(type="str", required=True),
            runbook=dict(type="str"),
            target=dict(type="str", default=""),
            owner=dict(type="str", default="unknown"),
            awx_job_id=dict(type="str"),
            ttl=dict(type="int", default=3600),
            wait=dict(type="int", default=0),
            orphan_wait=dict(type="int", default=600),
            on_held=dict(type="str", choices=["fail", "report"], default="fail"),
            break_lock=dict(type="bool", default=False),
            takeover_run_id=dict(type="str"),
            controller=dict(type="dict", default={}),
            state_dir=dict(type="path", default=rb.DEFAULT_STATE_DIR),
        ),
        required_if=[("state", "acquired", ["runbook"])],
        supports_check_mode=True,
    )
    params = module.params
    try:
        rb.check_name("family", params["family"])
        if params["runbook"]:
            rb.check_name("runbook", params["runbook"])
        if params["ttl"] < 60:
            raise rb.RunbookStateError("ttl must be at least 60 seconds")
        if params["wait"] < 0 or params["orphan_wait"] < 0:
            raise rb.RunbookStateError("wait and orphan_wait must be 0 or more seconds")
        path = rb.lock_path(params["state_dir"], params["family"])
        result = acquire(module, path) if params["state"] == "acquired" else release(module, path)
    except rb.RunbookStateError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
