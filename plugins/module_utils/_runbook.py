# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""Run bookkeeping shared by every runbook: host-side state files (locks, checkpoints, run log)
written atomically with 0600, and the rules that decide who may hold a lock and whether a
re-run resumes an unfinished run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import hashlib
import json
import os
import re
import tempfile

DEFAULT_STATE_DIR = "/var/lib/nfamily-ops"
SECRET_KEY_RE = re.compile(r"pass(word)?|secret|token|credential|private|(^|_)key($|_)|api_?key|dsn|auth", re.I)
REDACTED = "[redacted]"
NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


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


def redact(value):
    """A copy of value with every secret-looking key's value replaced, at any depth."""
    if isinstance(value, dict):
        return dict((k, REDACTED if SECRET_KEY_RE.search(str(k)) else redact(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def digest(inputs):
    """Stable fingerprint of a run's inputs (what decides whether a re-run is the same run)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[:16]


def ensure_dir(path):
    try:
        os.makedirs(path, 0o700)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise RunbookStateError("cannot create %s: %s" % (path, exc))


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


def write_json(path, data):
    """Write atomically: 0600 temp file in the same directory, fsync, rename."""
    directory = os.path.dirname(path)
    ensure_dir(directory)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def create_exclusive(path, data):
    """Create path with data only if it does not exist. Returns False when it already exists."""
    ensure_dir(os.path.dirname(path))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise RunbookStateError("cannot create %s: %s" % (path, exc))
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    return True


def append_line(path, record):
    """Append one JSON line to a 0600 log in a single write (atomic for appends under PIPE_BUF-ish sizes)."""
    ensure_dir(os.path.dirname(path))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True, separators=(",", ":"), default=str) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- locks

def lock_path(state_dir, family):
    return os.path.join(state_dir, "locks", "%s.json" % family)


def describe_holder(holder):
    who = holder.get("owner") or "unknown"
    if holder.get("awx_job_id"):
        who += " (AWX job %s)" % holder["awx_job_id"]
    elif (holder.get("controller") or {}).get("host"):
        who += " (ansible-playbook pid %s on %s)" % (holder["controller"].get("pid"), holder["controller"]["host"])
    return "run %s of %s by %s since %s, expires %s" % (
        holder.get("run_id"), holder.get("runbook"), who, holder.get("acquired_at"), holder.get("expires_at"))


def lock_decision(holder, request, now, takeover_run_id=None, break_lock=False):
    """What to do with a lock request given the current holder (or None).

    Returns (action, reason) with action in: acquire, refresh, takeover, refuse.
    """
    if holder is None:
        return "acquire", "free"
    if holder.get("run_id") == request["run_id"]:
        return "refresh", "held by this run"
    if break_lock:
        return "takeover", "broken on request"
    try:
        expired = parse_time(holder["expires_at"]) <= now
    except (KeyError, ValueError):
        expired = True
    if expired:
        return "takeover", "expired"
    if takeover_run_id and takeover_run_id == holder.get("run_id") and holder.get("runbook") == request["runbook"] \
            and holder.get("target") == request["target"]:
        return "takeover", "holder is dead and this is a re-run of the same runbook on the same target"
    return "refuse", describe_holder(holder)


# ---------------------------------------------------------------- checkpoints

def checkpoint_path(state_dir, runbook):
    return os.path.join(state_dir, "runs", "%s.json" % runbook)


def begin_decision(state, inputs_digest, abandon=False):
    """Whether a run may begin. Returns (action, reason): new, resume, abandon_and_new, refuse."""
    if state is None or state.get("status") in ("finished", "abandoned"):
        return "new", "no unfinished run"
    if state.get("inputs_digest") == inputs_digest:
        return "resume", "unfinished run with the same inputs"
    if abandon:
        return "abandon_and_new", "unfinished run with other inputs abandoned on request"
    return "refuse", "unfinished run %s (started %s, steps done: %s) has other inputs" % (
        state.get("run_id"), state.get("started_at"), ", ".join(sorted(state.get("done", {}))) or "none")


def remove_file(path):
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise RunbookStateError("cannot remove %s: %s" % (path, exc))
