# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller half of nfamily.ops.runbook_lock: tells the module which ansible-playbook process
holds the lock, and takes over a lock whose holder process on this controller is dead."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket

from ansible.plugins.action import ActionBase


def process_start(pid):
    """Start time of a process in clock ticks since boot (Linux), or None when unknown."""
    try:
        with open("/proc/%d/stat" % int(pid)) as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (IOError, OSError, ValueError, IndexError, TypeError):
        return None


def controller_identity():
    # Action plugins run in a worker forked from the ansible-playbook process: its parent is the run.
    pid = os.getppid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": process_start(pid)}


def holder_is_dead(holder_controller, me):
    """True only when the holder ran on this controller and its process is gone (or the pid was reused)."""
    if not holder_controller or holder_controller.get("host") != me["host"] or not holder_controller.get("pid"):
        return False
    start = process_start(holder_controller["pid"])
    if start is None:
        return os.path.isdir("/proc")  # no such process on a /proc system; unknown elsewhere
    return holder_controller.get("pid_start") is not None and start != holder_controller["pid_start"]


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        me = controller_identity()
        args["controller"] = me
        outcome = self._execute_module(module_name="nfamily.ops.runbook_lock", module_args=args, task_vars=task_vars)
        holder = outcome.get("holder") or {}
        refused = outcome.get("failed") or outcome.get("action") == "held"
        # every lock refused to this run must be the dead run's (a killed restore holds database and maintenance)
        others = [h for h in (outcome.get("holders") or {}).values() if h]
        if (refused and args.get("state", "acquired") == "acquired" and holder
                and all(h.get("run_id") == holder.get("run_id") for h in others)
                and holder.get("runbook") == args.get("runbook") and holder.get("target") == args.get("target", "")
                and holder_is_dead(holder.get("controller"), me)):
            args["takeover_run_id"] = holder.get("run_id")
            outcome = self._execute_module(module_name="nfamily.ops.runbook_lock", module_args=args, task_vars=task_vars)
        result.update(outcome)
        return result
