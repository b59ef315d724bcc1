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
  - Acquiring creates the file atomically (C(O_EXCL)), so two runs racing for it cannot both win. A second run is refused
    before it changes anything, with a message naming the holder and how to break a stale lock.
  - A lock is taken over when it has expired, when O(break_lock=true), or when the holder is a dead C(ansible-playbook)
    process of the same runbook on the same target. The action plugin checks that last condition on the controller (the
    holder's process id and start time) and retries with O(takeover_run_id).
  - Releasing only removes a lock held by O(run_id); another run's lock is left alone.
  - Run bookkeeping is not a change of the host's managed state, so the module reports C(changed=false);
    RV(written) tells whether the lock file was written.
extends_documentation_fragment:
  - nfamily.ops.runbook
  - nfamily.ops.attributes
  - nfamily.ops.attributes.runbook_group
attributes:
  check_mode:
    support: full
    details: In check mode nothing is written; a lock held by another run still fails the task.
  diff_mode:
    support: none
options:
  family:
    description: Runbook family the lock covers. Runbooks of one family exclude each other on a host.
    type: str
    required: true
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
    description: Seconds until the lock expires unless refreshed. Every checkpoint refreshes it.
    type: int
    default: 3600
  break_lock:
    description: Take the lock whoever holds it. For a stale lock of a run known to be dead.
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
- name: Hold the database lock for this restore
  nfamily.ops.runbook_lock:
    family: database
    run_id: "{{ runbook_run_id }}"
    runbook: db_restore
    target: "{{ inventory_hostname }}:{{ restore_backup }}"
    owner: "{{ runbook_run_who.user }}"

- name: Release it
  nfamily.ops.runbook_lock:
    family: database
    run_id: "{{ runbook_run_id }}"
    state: released
"""

RETURN = r"""
action:
  description: What happened - V(acquired), V(refreshed), V(taken_over), V(released), V(not_held) or V(refused).
  returned: always
  type: str
  sample: acquired
written:
  description: Whether the lock file was written or removed.
  returned: always
  type: bool
lock:
  description: The lock as it is after the call (none when released).
  returned: always
  type: dict
  sample: {"run_id": "20261127T010000Z-1234", "runbook": "db_restore", "family": "database", "expires_at": "2026-11-27T02:00:00Z"}
holder:
  description: The lock found before the call, when another run held it.
  returned: when another run held the lock
  type: dict
lock_file:
  description: Lock file on the host.
  returned: always
  type: str
  sample: /var/lib/nfamily-ops/locks/database.json
"""

import datetime

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _runbook as rb


def new_lock(params, now):
    return {
        "family": params["family"], "run_id": params["run_id"], "runbook": params["runbook"],
        "target": params["target"], "owner": params["owner"], "awx_job_id": params["awx_job_id"],
        "controller": params["controller"], "acquired_at": rb.isoformat(now),
        "expires_at": rb.isoformat(now + datetime.timedelta(seconds=params["ttl"])),
    }


def acquire(module, path, now):
    params = module.params
    holder = rb.read_json(path)
    action, reason = rb.lock_decision(holder, params, now, params["takeover_run_id"], params["break_lock"])
    result = dict(lock_file=path, action=action, written=False)
    if holder and holder.get("run_id") != params["run_id"]:
        result["holder"] = holder
    if action == "refuse":
        module.fail_json(msg="The %s lock on this host is held by %s. Wait for that run to finish; if it is dead, re-run "
                             "with -e runbook_break_lock=true to take the lock." % (params["family"], reason),
                         lock=holder, **result)
    lock = new_lock(params, now)
    if action == "refresh":
        lock["acquired_at"] = holder.get("acquired_at", lock["acquired_at"])
    if action == "takeover":
        lock["took_over"] = {"run_id": holder.get("run_id"), "reason": reason}
        module.warn("took over the %s lock from %s (%s)" % (params["family"], rb.describe_holder(holder), reason))
    result.update(action={"acquire": "acquired", "refresh": "refreshed", "takeover": "taken_over"}[action], lock=lock)
    if module.check_mode:
        return result
    if action == "acquire":
        if not rb.create_exclusive(path, lock):
            # lost a race: somebody created it between the read and the create
            return acquire(module, path, now)
    else:
        rb.write_json(path, lock)
    result["written"] = True
    return result


def release(module, path):
    holder = rb.read_json(path)
    result = dict(lock_file=path, written=False, lock={})
    if holder is None:
        result["action"] = "not_held"
        return result
    if holder.get("run_id") != module.params["run_id"]:
        result.update(action="not_held", holder=holder, lock=holder)
        module.warn("the %s lock is held by another run (%s); left in place" % (module.params["family"], rb.describe_holder(holder)))
        return result
    result["action"] = "released"
    if not module.check_mode:
        rb.remove_file(path)
        result["written"] = True
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            family=dict(type="str", required=True),
            state=dict(type="str", choices=["acquired", "released"], default="acquired"),
            run_id=dict(type="str", required=True),
            runbook=dict(type="str"),
            target=dict(type="str", default=""),
            owner=dict(type="str", default="unknown"),
            awx_job_id=dict(type="str"),
            ttl=dict(type="int", default=3600),
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
        path = rb.lock_path(params["state_dir"], params["family"])
        if params["state"] == "acquired":
            result = acquire(module, path, rb.utcnow())
        else:
            result = release(module, path)
    except rb.RunbookStateError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
