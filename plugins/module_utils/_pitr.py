# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""Point-in-time recovery of an nself project's PostgreSQL, with PostgreSQL 12+ semantics.

The WAL archive is a host directory (default <project>/backups/wal) bind-mounted into the postgres
container by docker-compose.override.yml, which nself's compose wrapper always passes to compose.
archive_command copies finished segments there; base backups are `pg_basebackup -Ft -z -X fetch`
tarballs streamed to <project>/backups/base with a JSON manifest beside each. A recovery moves the
data volume's directory aside (never deletes it), extracts a base backup in its place, and sets
restore_command, recovery_target_time and recovery_target_action with a recovery.signal file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import re
import shutil
import stat
import tarfile
import time

from ansible_collections.nfamily.ops.plugins.module_utils._backup import BackupError, read_manifest
from ansible_collections.nfamily.ops.plugins.module_utils._runbook import isoformat, parse_time, utcnow, write_json

ARCHIVE_MOUNT = "/var/lib/postgresql/wal_archive"
MOUNT_RE = re.compile(r"^/[A-Za-z0-9_./-]+\Z")
OVERRIDE_FILE = "docker-compose.override.yml"
BASE_PREFIX = "base_"
BASE_SUFFIX = ".tar.gz"
MANIFEST_SUFFIX = ".json"
RECOVERIES_FILE = "recoveries.json"
SEGMENT_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
RECOVERY_MARK = "# nfamily.ops pitr recovery settings"
RECOVERY_KEYS = ["restore_command", "recovery_target_time", "recovery_target_action", "recovery_target_timeline"]
PRODUCER = "nfamily.ops.db_base_backup"
ARCHIVER_COLUMNS = ["archived_count", "last_archived_wal", "last_archived_time", "failed_count", "last_failed_wal",
                    "last_failed_time"]


class PitrError(Exception):
    """A PITR request that cannot be carried out, with what to do instead."""


# ---------------------------------------------------------------- archive settings

def check_mount(mount):
    """The archive's path in the container, which goes into archive_command and restore_command, both run by
    a shell: only a plain absolute path. Raises PitrError."""
    if not MOUNT_RE.match(mount) or ".." in mount.split("/"):
        raise PitrError("archive_mount %r must be an absolute path of letters, digits, '.', '_', '-' and '/' (it goes "
                        "into PostgreSQL's archive_command, which a shell runs)" % mount)
    return mount


def archive_command(mount=ARCHIVE_MOUNT):
    """Copy a finished segment into the archive through a temporary name. A segment already there
    with the same bytes counts as archived (a crash after the copy must not block the archiver)."""
    target = "%s/%%f" % check_mount(mount)
    return ('if [ -f %(t)s ]; then cmp -s %%p %(t)s; else cp %%p %(t)s.tmp && mv %(t)s.tmp %(t)s; fi'
            % {"t": target})


def restore_command(mount=ARCHIVE_MOUNT):
    return "cp %s/%%f %%p" % check_mount(mount)


def compose_source(project_dir, archive_dir):
    """The bind mount's host side as compose wants it: relative to the project when inside it."""
    rel = os.path.relpath(archive_dir, project_dir)
    return "./" + rel if not rel.startswith("..") else archive_dir


def override_text(current, service, source, mount):
    """The override file's text with the archive mounted into `service`, or None when it already is.
    Raises PitrError when an existing override cannot be read (PyYAML missing or not YAML)."""
    volume = "%s:%s" % (source, mount)
    if current is None:
        return ("# Written by nfamily.ops (pitr): the WAL archive, a host directory, in the postgres container.\n"
                "services:\n  %s:\n    volumes:\n      - %s\n" % (service, volume))
    try:
        import yaml
    except ImportError:
        raise PitrError("%s exists and PyYAML is not installed to merge it; add '- %s' under services.%s.volumes "
                        "by hand, then re-run" % (OVERRIDE_FILE, volume, service))
    try:
        data = yaml.safe_load(current) or {}
        mounts = ((data.get("services") or {}).get(service) or {}).get("volumes") or []
    except (yaml.YAMLError, AttributeError) as exc:
        # where, never the parser's quote of the file (an override may hold environment secrets)
        where = getattr(exc, "problem_mark", None)
        raise PitrError("%s is not a compose file this module can merge (%s%s); add '- %s' under services.%s.volumes "
                        "by hand, then re-run" % (OVERRIDE_FILE, getattr(exc, "problem", None) or type(exc).__name__,
                                                  " at line %d" % (where.line + 1) if where else "", volume, service))
    targets = [str(m).split(":")[1] if ":" in str(m) else str(m) for m in mounts]
    if mount in targets:
        if volume in [str(m) for m in mounts]:
            return None
        raise PitrError("%s already mounts something else at %s; remove that mount or choose another archive_mount"
                        % (OVERRIDE_FILE, mount))
    services = data["services"] = data.get("services") or {}
    spec = services[service] = services.get(service) or {}
    spec["volumes"] = list(mounts) + [volume]
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=False)


# ---------------------------------------------------------------- the archiver

def archiver(pg):
    """pg_stat_archiver of the running server."""
    row = pg.query("SELECT %s FROM pg_stat_archiver" % ", ".join(ARCHIVER_COLUMNS))[0]
    stats = dict(zip(ARCHIVER_COLUMNS, row))
    for key in ("archived_count", "failed_count"):
        stats[key] = int(stats[key])
    return stats


def switch_and_wait(pg, archive_dir, timeout):
    """Force a WAL switch after a write and wait for the segment to be archived; returns its name."""
    # txid_current() makes the transaction commit a record: the segment has something to switch away
    # from, and a recovery to any earlier time finds a commit after its target
    pg.value("SELECT txid_current()")
    segment = pg.value("SELECT pg_walfile_name(pg_switch_wal())")
    return wait_archived(pg, archive_dir, segment, timeout)


def wait_archived(pg, archive_dir, segment, timeout):
    deadline = time.time() + timeout
    while not os.path.exists(os.path.join(archive_dir, segment)):
        if time.time() > deadline:
            stats = archiver(pg)
            raise PitrError("WAL segment %s did not reach %s within %d s (archiver: %d failed, last failure %s at %s); "
                            "read `nself logs postgres` for the archive_command error"
                            % (segment, archive_dir, timeout, stats["failed_count"], stats["last_failed_wal"] or "none",
                               stats["last_failed_time"] or "never"))
        time.sleep(0.5)
    return segment


# ---------------------------------------------------------------- WAL segments

def segment_number(name, segment_size):
    """The position of a segment file in the WAL, ignoring its timeline (as pg_archivecleanup does)."""
    match = SEGMENT_RE.match(name)
    if not match:
        raise ValueError(name)
    per_log = 0x100000000 // segment_size
    return int(match.group(2), 16) * per_log + int(match.group(3), 16)


def archive_listing(directory):
    """Segment file names (sorted) and the other archive files (.history, .backup, partial copies)."""
    if not os.path.isdir(directory):
        return [], []
    segments, others = [], []
    for name in sorted(os.listdir(directory)):
        (segments if SEGMENT_RE.match(name) else others).append(name)
    return segments, others


def archive_gaps(segments, start_segment, segment_size):
    """Missing segments on the base backup's timeline from its start segment to the last archived one."""
    timeline = start_segment[:8]
    first = segment_number(start_segment, segment_size)
    have = sorted(set(segment_number(s, segment_size) for s in segments
                      if s[:8] == timeline and segment_number(s, segment_size) >= first))
    if not have or have[0] != first:
        return [start_segment]
    missing = []
    for previous, current in zip(have, have[1:]):
        if current != previous + 1:
            missing.append("%d segment(s) after %s" % (current - previous - 1, _segment_name(timeline, previous, segment_size)))
    return missing


def _segment_name(timeline, number, segment_size):
    per_log = 0x100000000 // segment_size
    return "%s%08X%08X" % (timeline, number // per_log, number % per_log)


def prune_archive_plan(directory, oldest_start_segment, segment_size):
    """Archive files no kept base backup needs: segments (any timeline) and .backup files before the
    oldest kept base backup's start segment. History files are kept: they are tiny and recovery
    across timelines needs them."""
    keep_from = segment_number(oldest_start_segment, segment_size)
    segments, others = archive_listing(directory)
    doomed = [s for s in segments if segment_number(s, segment_size) < keep_from]
    for name in others:
        head = name.split(".")[0]
        if name.endswith(".backup") and SEGMENT_RE.match(head) and segment_number(head, segment_size) < keep_from:
            doomed.append(name)
    return sorted(doomed)


# ---------------------------------------------------------------- base backups

def base_name(moment):
    return "%s%s%s" % (BASE_PREFIX, moment.strftime("%Y%m%dT%H%M%SZ"), BASE_SUFFIX)


def base_catalogue(directory):
    """Manifests of the complete base backups in directory, oldest first (by end time); only db_base_backup's,
    each for the tarball beside it (_backup.read_manifest)."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        if not (name.startswith(BASE_PREFIX) and name.endswith(BASE_SUFFIX + MANIFEST_SUFFIX)):
            continue
        try:
            manifest = read_manifest(os.path.join(directory, name), PRODUCER, MANIFEST_SUFFIX)
            manifest["finished"] = parse_time(manifest["finished_at"])
        except (BackupError, ValueError, KeyError, TypeError):
            continue
        found.append(manifest)
    return sorted(found, key=lambda m: m["finished"])


def read_base_tar(path):
    """Read a base backup tarball to its end (gzip CRCs included) and return its backup_label fields.
    Raises PitrError when it is unreadable or not a complete PostgreSQL base backup."""
    label, names = None, set()
    try:
        with tarfile.open(path, "r|gz") as tar:
            for member in tar:
                names.add(member.name)
                handle = tar.extractfile(member) if member.isfile() else None
                if member.name == "backup_label":
                    label = handle.read().decode("utf-8", "replace")
                elif handle is not None:
                    while handle.read(1024 * 1024):
                        pass
    except (tarfile.TarError, IOError, OSError, EOFError) as exc:
        raise PitrError("the base backup %s is unreadable (%s)" % (path, exc))
    missing = [n for n in ("backup_label", "PG_VERSION", "global/pg_control") if n not in names]
    if missing or label is None:
        raise PitrError("the base backup %s is incomplete: no %s" % (path, ", ".join(missing) or "backup_label"))
    fields = dict(line.split(": ", 1) for line in label.splitlines() if ": " in line)
    wal = re.search(r"\(file ([0-9A-F]{24})\)", fields.get("START WAL LOCATION", ""))
    if not wal:
        raise PitrError("the base backup %s has a backup_label without a start WAL file" % path)
    return {"start_segment": wal.group(1), "start_lsn": fields["START WAL LOCATION"].split()[0],
            "label": fields.get("LABEL", ""), "start_time": fields.get("START TIME", ""),
            "has_wal": any(n.startswith("pg_wal/") and SEGMENT_RE.match(n[7:]) for n in names)}


def write_base_manifest(path, manifest):
    write_json(path + MANIFEST_SUFFIX, manifest)


# ---------------------------------------------------------------- recovery targets

def parse_target(text):
    """`latest` (replay the whole archive) -> None, or an aware UTC datetime from ISO 8601 text.
    A time without an offset is UTC. Raises PitrError for text that is not a time."""
    if text.strip().lower() == "latest":
        return None
    cleaned = text.strip().replace(" ", "T", 1)
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(cleaned)
    except ValueError:
        raise PitrError("target_time %r is not a time: give ISO 8601, e.g. 2026-11-27T03:05:00Z, or latest" % text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def choose_base(bases, target, now):
    """The newest base backup that ended before target (the newest of all for `latest`).
    Raises PitrError for a target in the future or before the oldest base backup."""
    if not bases:
        raise PitrError("there is no base backup; point-in-time recovery needs one taken after WAL archiving was "
                        "enabled (run playbooks/db_pitr_enable.yml)")
    if target is None:
        return bases[-1]
    if target > now:
        raise PitrError("target_time %s is in the future (now is %s)" % (target.isoformat(), isoformat(now)))
    usable = [b for b in bases if b["finished"] <= target]
    if not usable:
        raise PitrError("target_time %s is before the oldest base backup, which ended at %s: the earliest "
                        "recoverable time is %s" % (target.isoformat(), bases[0]["finished_at"], bases[0]["finished_at"]))
    return usable[-1]


def recovery_settings(target, action, mount=ARCHIVE_MOUNT):
    settings = {"restore_command": restore_command(mount), "recovery_target_timeline": "latest"}
    if target is not None:
        settings["recovery_target_time"] = target.strftime("%Y-%m-%d %H:%M:%S+00")
        settings["recovery_target_action"] = action
    return settings


def _conf_line(key, value):
    return "%s = '%s'\n" % (key, value.replace("'", "''"))


# ---------------------------------------------------------------- the data directory

def aside_path(data_dir, run_id):
    return "%s.pre_pitr_%s" % (data_dir.rstrip("/"), run_id)


def failed_path(data_dir, run_id):
    return "%s.failed_pitr_%s" % (data_dir.rstrip("/"), run_id)


def marker_path(data_dir, run_id):
    return "%s.pitr_%s.json" % (data_dir.rstrip("/"), run_id)


def prepare_data_dir(data_dir, run_id, base, settings, target_text):
    """Move the live data directory aside (once), then extract the base backup in its place with the
    recovery settings and recovery.signal. Idempotent: a finished preparation (its marker file) is
    kept; an unfinished one (killed mid-extraction) is extracted again. Returns True when it acted."""
    aside, marker = aside_path(data_dir, run_id), marker_path(data_dir, run_id)
    if os.path.exists(marker) and os.path.isdir(data_dir):
        return False
    if not os.path.exists(aside):
        if not os.path.isdir(data_dir):
            raise PitrError("the data directory %s does not exist; check data_dir" % data_dir)
        os.rename(data_dir, aside)
    if os.path.exists(data_dir):
        shutil.rmtree(data_dir)  # this run's own unfinished extraction: the live data is in `aside`
    owner = os.stat(aside)
    os.mkdir(data_dir, 0o700)
    os.chown(data_dir, owner.st_uid, owner.st_gid)
    with tarfile.open(base["path"], "r|gz") as tar:
        for member in tar:
            _extract(tar, member, data_dir)
    auto_conf = os.path.join(data_dir, "postgresql.auto.conf")
    with open(auto_conf, "a") as handle:
        handle.write("\n%s (%s)\n" % (RECOVERY_MARK, run_id))
        for key in RECOVERY_KEYS:
            if key in settings:
                handle.write(_conf_line(key, settings[key]))
    signal_file = os.path.join(data_dir, "recovery.signal")
    open(signal_file, "w").close()
    for path in (auto_conf, signal_file):
        os.chown(path, owner.st_uid, owner.st_gid)
        os.chmod(path, 0o600)
    write_json(marker, {"run_id": run_id, "base": base["file"], "target": target_text, "settings": settings, "aside": aside,
                        "prepared_at": isoformat(utcnow())})
    return True


def read_marker(data_dir, run_id):
    try:
        with open(marker_path(data_dir, run_id)) as handle:
            return json.load(handle)
    except (IOError, ValueError):
        return None


def _extract(tar, member, root):
    """Extract one member with its numeric owner and permission bits (never setuid, setgid or sticky: a data
    directory has none), refusing paths that leave root and never writing through a link."""
    target = os.path.normpath(os.path.join(root, member.name))
    if not (target == root or target.startswith(root.rstrip("/") + "/")) or member.issym() or member.islnk():
        if member.issym() and member.name.startswith("pg_tblspc/"):
            raise PitrError("the base backup holds a tablespace link (%s); only single-tablespace clusters are "
                            "supported" % member.name)
        raise PitrError("the base backup holds an unsafe entry %r; it was not made by pg_basebackup" % member.name)
    if member.isdir():
        if not os.path.isdir(target):
            os.makedirs(target)
    elif member.isfile():
        parent = os.path.dirname(target)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        source = tar.extractfile(member)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as handle:
            shutil.copyfileobj(source, handle, 1024 * 1024)
    else:
        return
    os.chown(target, member.uid, member.gid, follow_symlinks=False)
    os.chmod(target, stat.S_IMODE(member.mode) & 0o777)


def rollback_data_dir(data_dir, run_id):
    """Put the data directory that was moved aside back, keeping the failed recovery's directory.
    Returns True when it acted, False when the original already is in place."""
    aside, failed = aside_path(data_dir, run_id), failed_path(data_dir, run_id)
    if not os.path.exists(aside):
        return False
    if os.path.exists(data_dir):
        if os.path.exists(failed):
            raise PitrError("both %s and %s exist; move one away by hand, then re-run" % (data_dir, failed))
        os.rename(data_dir, failed)
    os.rename(aside, data_dir)
    marker = marker_path(data_dir, run_id)
    if os.path.exists(marker):
        os.unlink(marker)
    return True


# ---------------------------------------------------------------- recovery history

def recoveries(directory):
    path = os.path.join(directory, RECOVERIES_FILE)
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, ValueError):
        return []


def record_recovery(directory, entry):
    history = [e for e in recoveries(directory) if e.get("run_id") != entry["run_id"]] + [entry]
    write_json(os.path.join(directory, RECOVERIES_FILE), history)
