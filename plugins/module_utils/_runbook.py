# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""Run bookkeeping shared by every runbook: host-side state files (locks, checkpoints, run log),
the rules that decide who may hold a lock and whether a re-run resumes an unfinished run, and
how a run is seen alive on the host.

Every lock operation reads, decides and writes under one exclusive flock of `locks/.guard`, so
two runs can never both decide that a lock is theirs. A run is alive on the host while one of its
tasks runs there (the runbook roles set NFAMILY_OPS_RUN_ID on every task, so the shell Ansible starts
a task with names the run): a module that outlives its killed controller keeps its run's locks,
however long it takes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import time

from ansible_collections.nfamily.ops.plugins.module_utils import _files as files

DEFAULT_STATE_DIR = "/var/lib/nfamily-ops"
RUN_ID_ENV = "NFAMILY_OPS_RUN_ID"
MAINTENANCE = "maintenance"
NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
POLL_S = 2


class RunbookStateError(Exception):
    """A state file that cannot be read or written, or a request the state forbids."""


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def isoformat(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def check_name(kind, value):
    if not NAME_RE.match(value or ""):
        raise RunbookStateError("%s %r is not valid: use lower-case letters, digits, '.', '_' or '-' (at most 64)" % (kind, value))
    return value


def digest(inputs):
    """Stable fingerprint of a run's inputs (what decides whether a re-run is the same run)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[:16]


def read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except IOError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise RunbookStateError("cannot read %s: %s" % (path, exc))
    except ValueError as exc:
        raise RunbookStateError("%s is not valid JSON (%s); move it aside after checking what it held" % (path, exc))


def check_private(path, status=None):
    """The collection's state (a directory or file under the state directory) must be what it seems: no
    symbolic link, owned by the user the module runs as, writable by no one else. Otherwise someone else
    could plant locks, checkpoints or run records, or have them written where they point."""
    status = status or os.lstat(path)
    if stat.S_ISLNK(status.st_mode):
        raise RunbookStateError("%s is a symbolic link; the collection's state is kept only in real files and directories: "
                                "move it aside after checking who made it" % path)
    if status.st_uid != os.geteuid() or status.st_mode & 0o022:
        raise RunbookStateError("%s belongs to uid %d with mode %04o; the collection's state must be uid %d's and writable by "
                                "no one else: check who changed it, then chown/chmod it or move it aside"
                                % (path, status.st_uid, stat.S_IMODE(status.st_mode), os.geteuid()))


def ensure_private_dir(path):
    """Create path (0700) and check it and the state directory above it (check_private)."""
    try:
        files.ensure_dir(path)
    except (IOError, OSError) as exc:
        raise RunbookStateError("cannot create %s: %s" % (path, exc))
    check_private(path)


def write_json(path, data):
    try:
        files.write_json(path, data)
    except (IOError, OSError) as exc:
        raise RunbookStateError("cannot write %s: %s" % (path, exc))


def write_state(path, data):
    """Write a state file (<state dir>/<kind>/<name>.json) atomically, its directory and the state directory checked."""
    ensure_private_dir(os.path.dirname(os.path.dirname(path)))
    ensure_private_dir(os.path.dirname(path))
    try:
        files.write_json(path, data, keep_owner=False)
    except (IOError, OSError) as exc:
        raise RunbookStateError("cannot write %s: %s" % (path, exc))


def append_line(path, record):
    """Append one JSON line to a 0600 log in a single write (atomic for appends of this size), never
    through a link and never to a file another user owns or may write."""
    ensure_private_dir(os.path.dirname(path))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            check_private(path)  # names the link
        raise RunbookStateError("cannot open %s: %s" % (path, exc))
    try:
        status = os.fstat(fd)
        check_private(path, status)
        if not stat.S_ISREG(status.st_mode) or status.st_mode & 0o077:
            raise RunbookStateError("%s is not a 0600 file (mode %04o); check who changed it, then chmod 0600 it"
                                    % (path, stat.S_IMODE(status.st_mode)))
        os.write(fd, (json.dumps(record, sort_keys=True, separators=(",", ":"), default=str) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_file(path):
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise RunbookStateError("cannot remove %s: %s" % (path, exc))


# ---------------------------------------------------------------- runs alive on the host

def _processes(proc):
    """{pid: (ppid, argv)} of every process /proc shows."""
    table = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc, name, "stat")) as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(os.path.join(proc, name, "cmdline"), "rb") as handle:
                argv = [part.decode("utf-8", "replace") for part in handle.read().split(b"\0") if part]
        except (IOError, OSError, ValueError, IndexError):
            continue  # gone meanwhile
        table[int(name)] = (ppid, argv)
    return table


def run_processes(run_id, proc="/proc"):
    """The tasks of run run_id still running on this host, as [{pid, command}]; [] where /proc cannot tell.

    Ansible starts every task as `/bin/sh -c '... NFAMILY_OPS_RUN_ID=<id> <python> ...'` and that shell
    lives as long as the task: its command line is the evidence (readable by any user), and what runs
    below it (the module, its pg_restore or tar) is what is reported. A daemon a task started outlives
    the shell and is not a task (a container that nself started, say)."""
    if not run_id or not os.path.isdir(proc):
        return []
    assignment = re.compile(r"(^|[\s;'\"])%s=['\"]?%s['\"]?(\s|$)" % (RUN_ID_ENV, re.escape(run_id)))
    table = _processes(proc)
    mine, pid = set(), os.getpid()
    while pid in table and pid not in mine:
        mine.add(pid)
        pid = table[pid][0]
    shells = [p for p, (_ppid, argv) in table.items() if p not in mine and assignment.search(" ".join(argv))]
    children = {}
    for p, (ppid, _argv) in table.items():
        children.setdefault(ppid, []).append(p)
    found, todo = set(), list(shells)
    while todo:
        p = todo.pop()
        below = children.get(p, [])
        found.update(below)
        todo.extend(below)
    found = found or set(shells)
    return [{"pid": p, "command": " ".join(table[p][1])[:120]} for p in sorted(found)]


def describe_processes(processes):
    return ", ".join("pid %d (%s)" % (p["pid"], p["command"] or "?") for p in processes[:3]) + (
        " and %d more" % (len(processes) - 3) if len(processes) > 3 else "")


# ---------------------------------------------------------------- locks

def lock_path(state_dir, family):
    return os.path.join(state_dir, "locks", "%s.json" % family)


class LockGuard(object):
    """Exclusive flock on `<state_dir>/locks/.guard` for one read-decide-write of the lock files.
    The kernel drops it when its holder dies, so it can never be stale."""

    def __init__(self, state_dir, create=True):
        self.path = os.path.join(state_dir, "locks", ".guard")
        self.create = create
        self.fd = None

    def __enter__(self):
        if not self.create and not os.path.isdir(os.path.dirname(self.path)):
            return self  # check mode on a host without locks: nothing to read, nothing to guard
        try:
            ensure_private_dir(os.path.dirname(os.path.dirname(self.path)))  # the state directory
            ensure_private_dir(os.path.dirname(self.path))
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (IOError, OSError) as exc:
            raise RunbookStateError("cannot lock %s: %s" % (self.path, exc))
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
        return False


def describe_holder(holder):
    who = holder.get("owner") or "unknown"
    if holder.get("awx_job_id"):
        who += " (AWX job %s)" % holder["awx_job_id"]
    elif (holder.get("controller") or {}).get("host"):
        who += " (ansible-playbook pid %s on %s)" % (holder["controller"].get("pid"), holder["controller"]["host"])
    return "run %s of %s by %s since %s, expires %s" % (
        holder.get("run_id"), holder.get("runbook"), who, holder.get("acquired_at"), holder.get("expires_at"))


def lock_decision(holder, request, now, takeover_run_id=None, break_lock=False, processes=()):
    """What to do with a lock request given the current holder (or None) and the processes of the
    holder's run still on this host. Returns (action, reason), action in: acquire, refresh, takeover,
    refuse, busy (refused because the holder still runs here, whatever else is asked)."""
    if holder is None:
        return "acquire", "free"
    if holder.get("run_id") == request["run_id"]:
        return "refresh", "held by this run"
    if processes:
        return "busy", "%s; a task of that run is still running on this host: %s" % (
            describe_holder(holder), describe_processes(processes))
    if break_lock:
        return "takeover", "broken on request"
    expires = parse_time_or_none(holder.get("expires_at"))
    if expires is None or expires <= now:
        return "takeover", "expired"
    if takeover_run_id and takeover_run_id == holder.get("run_id") and holder.get("runbook") == request["runbook"] \
            and holder.get("target") == request["target"]:
        return "takeover", "holder is dead and this is a re-run of the same runbook on the same target"
    return "refuse", describe_holder(holder)


def keep_alive(path, holder, now, ttl):
    """A lock whose run still has a task here never looks expired, not even the moment that task ends."""
    extended = now + datetime.timedelta(seconds=ttl)
    expires = parse_time_or_none(holder.get("expires_at"))
    if expires is None or expires < extended:
        write_state(path, dict(holder, expires_at=isoformat(extended)))


def parse_time_or_none(text):
    try:
        return parse_time(text)
    except (TypeError, ValueError):
        return None


def new_lock(request, family, now, ttl):
    lock = dict((k, request.get(k)) for k in ("run_id", "runbook", "target", "owner", "awx_job_id", "controller"))
    lock.update(family=family, acquired_at=isoformat(now), expires_at=isoformat(now + datetime.timedelta(seconds=ttl)))
    return lock


def try_locks(state_dir, families, request, ttl, takeover_run_id=None, break_lock=False, check_mode=False):
    """Take (or refresh) every lock in families at once, or none: one guarded read-decide-write.

    Returns {"families": {family: {action, reason, holder, lock}}, "refused": [family, ...]}; nothing
    is written when any family is refused or busy, or in check mode."""
    now = utcnow()
    outcome = {"families": {}, "refused": []}
    with LockGuard(state_dir, create=not check_mode):
        for family in families:
            path = lock_path(state_dir, family)
            holder = read_json(path)
            processes = run_processes(holder.get("run_id")) if holder and holder.get("run_id") != request["run_id"] else []
            action, reason = lock_decision(holder, request, now, takeover_run_id, break_lock, processes)
            entry = {"action": action, "reason": reason, "holder": holder, "path": path, "processes": processes}
            if action in ("refuse", "busy"):
                outcome["refused"].append(family)
                if action == "busy" and not check_mode:
                    keep_alive(path, holder, now, ttl)
            else:
                entry["lock"] = new_lock(request, family, now, ttl)
                if action == "refresh":
                    entry["lock"]["acquired_at"] = holder.get("acquired_at", entry["lock"]["acquired_at"])
                if action == "takeover":
                    entry["lock"]["took_over"] = {"run_id": holder.get("run_id"), "reason": reason}
            outcome["families"][family] = entry
        if not outcome["refused"] and not check_mode:
            for entry in outcome["families"].values():
                write_state(entry["path"], entry["lock"])
    return outcome


def acquire_locks(state_dir, families, request, ttl, wait=0, orphan_wait=0, takeover_run_id=None, break_lock=False,
                  check_mode=False, sleep=time.sleep, clock=time.time):
    """try_locks, again every POLL_S seconds while refused: up to `wait` seconds while another live
    run holds a lock, up to `orphan_wait` while the only thing holding it is a task of a run known to
    be over (its controller died, or the lock is broken on request). An expired lock whose run still
    has a task here is a live run with a long task: that is `wait`."""
    started = clock()
    while True:
        outcome = try_locks(state_dir, families, request, ttl, takeover_run_id, break_lock, check_mode)
        if not outcome["refused"] or check_mode:
            return outcome
        orphaned = (break_lock or takeover_run_id) and all(outcome["families"][f]["action"] == "busy" for f in outcome["refused"])
        limit = orphan_wait if orphaned else wait
        if clock() - started + POLL_S > limit:
            return outcome
        sleep(POLL_S)


def release_locks(state_dir, families, run_id, check_mode=False):
    """Remove the locks in families that run_id holds. Returns {family: (action, holder)}."""
    outcome = {}
    with LockGuard(state_dir, create=not check_mode):
        for family in families:
            path = lock_path(state_dir, family)
            holder = read_json(path)
            if holder is None:
                outcome[family] = ("not_held", None)
            elif holder.get("run_id") != run_id:
                outcome[family] = ("held_by_other", holder)
            else:
                if not check_mode:
                    remove_file(path)
                outcome[family] = ("released", holder)
    return outcome


def refresh_locks(state_dir, run_id, ttl, required=None):
    """Extend every lock run_id holds by ttl seconds from now. Returns the families refreshed. With
    `required`, a family the run must still hold: when another run holds it (taken over meanwhile),
    nothing is refreshed and RunbookStateError says who has it."""
    directory = os.path.join(state_dir, "locks")
    if not os.path.isdir(directory):
        return []
    refreshed = []
    with LockGuard(state_dir):
        if required:
            holder = read_json(lock_path(state_dir, required))
            if not holder or holder.get("run_id") != run_id:
                raise RunbookStateError("run %s no longer holds the %s lock (%s); it stops here so that two runs never act "
                                        "at once. Look at what the other run did before re-running"
                                        % (run_id, required, describe_holder(holder) if holder else "nobody holds it"))
        for name in sorted(os.listdir(directory)):
            if not name.endswith(".json"):
                continue
            path = os.path.join(directory, name)
            lock = read_json(path)
            if lock and lock.get("run_id") == run_id:
                lock["expires_at"] = isoformat(utcnow() + datetime.timedelta(seconds=ttl))
                write_state(path, lock)
                refreshed.append(name[:-5])
    return refreshed


# ---------------------------------------------------------------- checkpoints

def checkpoint_path(state_dir, runbook):
    return os.path.join(state_dir, "runs", "%s.json" % runbook)


OPEN_STATUSES = ("running",)


def is_open(state):
    """Whether a run state leaves something to resume: it is running and some step began or finished."""
    return bool(state) and state.get("status") in OPEN_STATUSES and bool(state.get("done") or state.get("started"))


def begin_decision(state, inputs_digest, abandon=False, resumable=True):
    """Whether a run may begin. Returns (action, reason): new, resume, abandon_and_new, refuse."""
    if not is_open(state):
        return "new", "no unfinished run"
    if not resumable:
        return "abandon_and_new", "this runbook never waits on an unfinished run: each run starts anew"
    if state.get("inputs_digest") == inputs_digest:
        return "resume", "unfinished run with the same inputs"
    if abandon:
        return "abandon_and_new", "unfinished run with other inputs abandoned on request"
    return "refuse", describe_unfinished(state)


def describe_unfinished(state):
    started = [s for s in state.get("steps", []) if s in state.get("started", {}) and s not in state.get("done", {})]
    inputs = ", ".join("%s=%s" % (k, json.dumps(v, sort_keys=True)) for k, v in sorted((state.get("inputs") or {}).items()))
    return "unfinished run %s (started %s; inputs %s; steps done: %s%s) has other inputs" % (
        state.get("run_id"), state.get("started_at"), inputs or "none",
        ", ".join(s for s in state.get("steps", []) if s in state.get("done", {})) or "none",
        "; started, not recorded done: %s" % ", ".join(started) if started else "")


def abandoned_summary(state):
    return {"run_id": state.get("run_id"), "started_at": state.get("started_at"), "inputs": state.get("inputs", {}),
            "done": [s for s in state.get("steps", []) if s in state.get("done", {})],
            "started": sorted(set(state.get("started", {})) - set(state.get("done", {})))}
