"""Fault switches a test can flip, and the nself 0.9.9 bug switches.

State lives in FAULTS_FILE: {"faults": {name: [targets] or true}, "bugs": {name: bool}}.
Bugs default to the real 0.9.9 behaviour (on); a test may turn one off.
"""
import json
import os

from . import paths

BUG_DEFAULTS = {
    # restart --all, and restart with nothing running, start everything and exit 127.
    "restart_exit_127": True,
    # migrate status matches '^\s*<ver>\s' against psql -t output, so all show pending.
    "migrate_status_always_pending": True,
    # db backup with no name dies under set -u.
    "db_backup_unbound_name": True,
    # status (text overview) exits 1 on configuration drift.
    "status_drift_exit_1": True,
}


def load():
    try:
        with open(paths.FAULTS_FILE, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        data = {}
    data.setdefault("faults", {})
    data.setdefault("bugs", {})
    return data


def save(data):
    os.makedirs(os.path.dirname(paths.FAULTS_FILE), exist_ok=True)
    tmp = paths.FAULTS_FILE + ".%d.tmp" % os.getpid()
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, paths.FAULTS_FILE)


def active(name, target=None):
    value = load()["faults"].get(name)
    if not value:
        return False
    if target is None or value is True:
        return True
    return target in value


def installed_tag():
    """The nself release tag the host has instead of 0.9.9 HEAD (fault nself_tag), or None."""
    value = load()["faults"].get("nself_tag")
    return value[0] if isinstance(value, list) and value else None


def reported_version():
    """What `nself -v` prints: the v0.9.9 and v0.9.8 tags both say 0.9.8 (nself-cli.md §0)."""
    return "0.9.8" if installed_tag() else paths.NSELF_VERSION


def bug(name):
    return bool(load()["bugs"].get(name, BUG_DEFAULTS[name]))


def set_fault(name, targets=None):
    data = load()
    if targets:
        current = data["faults"].get(name)
        current = [] if current in (None, True) else current
        data["faults"][name] = sorted(set(current) | set(targets))
    else:
        data["faults"][name] = True
    save(data)


def clear_fault(name=None):
    data = load()
    if name is None:
        data["faults"] = {}
    else:
        data["faults"].pop(name, None)
    save(data)


def set_bug(name, value):
    if name not in BUG_DEFAULTS:
        raise KeyError(name)
    data = load()
    data["bugs"][name] = value
    save(data)
