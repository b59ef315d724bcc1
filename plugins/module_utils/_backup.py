# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""The backup catalogue: a backup is a file with a manifest beside it (`<file>.manifest.json`),
and only a verified backup has a manifest. Finding backups, checking a file against its manifest,
and choosing what retention removes all live here, so backup and restore agree on them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import json
import os
import stat

from ansible_collections.nfamily.ops.plugins.module_utils import _files as files
from ansible_collections.nfamily.ops.plugins.module_utils._pg import CHECKSUM_MIN_SERVER, CHECKSUM_SETTINGS
from ansible_collections.nfamily.ops.plugins.module_utils._runbook import isoformat, parse_time, utcnow

MANIFEST_SUFFIX = ".manifest.json"
PARTIAL_PREFIX = files.PARTIAL_PREFIX
PARTIAL_SUFFIX = files.PARTIAL_SUFFIX
FORMAT = "pg_dump-custom"
PRODUCER = "nfamily.ops.db_backup"


class BackupError(Exception):
    """A backup that cannot be found, read or trusted."""


def manifest_path(backup_path):
    return backup_path + MANIFEST_SUFFIX


def read_manifest(path, producer=PRODUCER, suffix=MANIFEST_SUFFIX):
    """The manifest at path, written by producer. A manifest speaks only for the file it sits beside
    (its own name without suffix): one naming any other file (`../x`, `/etc/shadow`) is refused, and
    so is a symbolic link, so nothing read from a planted manifest makes retention delete or restore
    read a file elsewhere."""
    try:
        with open_regular(path, "the manifest") as handle:
            manifest = json.loads(handle.read().decode("utf-8"))
    except (IOError, OSError) as exc:
        raise BackupError("cannot read the manifest %s: %s" % (path, exc))
    except ValueError as exc:
        raise BackupError("the manifest %s is not valid JSON (%s)" % (path, exc))
    if not isinstance(manifest, dict) or manifest.get("producer") != producer or not manifest.get("sha256"):
        raise BackupError("%s is not a manifest written by %s" % (path, producer))
    beside = os.path.basename(path)[:-len(suffix)] if path.endswith(suffix) else ""
    if manifest.get("file") != beside or not valid_name(beside):
        raise BackupError("the manifest %s names the file %r, not the file beside it (%r): a manifest speaks only for that one"
                          % (path, manifest.get("file"), beside))
    manifest["path"] = os.path.join(os.path.dirname(path), beside)
    manifest["manifest"] = path
    return manifest


def catalogue(directory):
    """Manifests of the verified backups in directory, newest first."""
    if not os.path.isdir(directory):
        return []
    entries = []
    for name in os.listdir(directory):
        if name.endswith(MANIFEST_SUFFIX):
            try:
                entries.append(read_manifest(os.path.join(directory, name)))
            except BackupError:
                continue  # not ours, or damaged: never a candidate for restore or retention
    return sorted(entries, key=lambda m: (m.get("finished_at", ""), m["file"]), reverse=True)


def failed_drill(manifest):
    return (manifest.get("drill") or {}).get("result") == "failed"


def describe_drill(manifest):
    drill = manifest.get("drill") or {}
    return "failed its restore drill on %s (%s)" % (drill.get("at", "?"), "; ".join(drill.get("problems", [])) or "?")


def newest(entries, warn):
    """The newest of the manifests (newest first) that did not fail a restore drill; warn about those it skips."""
    for entry in entries:
        if not failed_drill(entry):
            return entry
        warn("skipping %s, which %s" % (entry["file"], describe_drill(entry)))
    return None


def resolve(source, directory, warn=lambda message: None):
    """The manifest a restore source names: `latest` (the newest backup that did not fail a restore drill),
    a manifest path, or a backup file path."""
    if source == "latest":
        entry = newest(catalogue(directory), warn)
        if entry is None:
            raise BackupError("there is no verified backup in %s that passed its drills (a backup has a %s beside it)"
                              % (directory, MANIFEST_SUFFIX))
        return entry
    path = source if os.path.isabs(source) else os.path.join(directory, source)
    if not path.endswith(MANIFEST_SUFFIX):
        if not os.path.exists(path):
            raise BackupError("the backup %s does not exist" % path)
        if not os.path.exists(manifest_path(path)):
            raise BackupError("%s has no manifest (%s), so it was not verified by db_backup and its checksum is unknown"
                              % (path, os.path.basename(manifest_path(path))))
        path = manifest_path(path)
    manifest = read_manifest(path)
    if failed_drill(manifest):
        warn("restoring %s although it %s" % (manifest["file"], describe_drill(manifest)))
    return manifest


def stored(manifest):
    """The manifest as it is written in its file (without the keys added when it is read)."""
    return dict((k, v) for k, v in manifest.items() if k not in ("path", "manifest"))


def mark_drill(manifest, drill):
    """Record a restore drill's outcome in the backup's manifest (replaced atomically)."""
    manifest["drill"] = drill
    files.write_json(manifest["manifest"], stored(manifest))


def open_regular(path, what):
    """path opened for reading (binary) if it is a regular file: never through a symbolic link, never a FIFO
    or a device (a read that blocks, or never ends). Raises BackupError, or OSError ENOENT when missing."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise
        if os.path.islink(path):
            raise BackupError("%s %s is a symbolic link; backups are read only as regular files" % (what, path))
        raise BackupError("cannot read %s %s: %s" % (what, path, exc))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BackupError("%s %s is not a regular file" % (what, path))
    return os.fdopen(fd, "rb")


def check_file(manifest):
    """Raise BackupError unless the backup file is a regular file with the manifest's size and sha256."""
    path = manifest["path"]
    try:
        handle = open_regular(path, "the backup file")
    except OSError:
        raise BackupError("the backup file %s named by %s is missing" % (path, manifest["manifest"]))
    size = os.fstat(handle.fileno()).st_size
    if size != manifest["size"]:
        handle.close()
        raise BackupError("%s is %d bytes, its manifest says %d: the file is truncated or was replaced"
                          % (path, size, manifest["size"]))
    digest, _size = files.sha256_file(path, handle)
    if digest != manifest["sha256"]:
        raise BackupError("the sha256 of %s does not match its manifest: the file is corrupted" % path)
    return digest


def prune_plan(entries, keep_count, keep_days, now):
    """Backups (newest-first manifests) that retention removes: those beyond the newest keep_count and
    those older than keep_days (0 disables either rule). The newest backup is never removed."""
    doomed = []
    for index, entry in enumerate(entries):
        if index == 0:
            continue
        too_many = keep_count > 0 and index >= keep_count
        try:
            too_old = keep_days > 0 and now - parse_time(entry["finished_at"]) > datetime.timedelta(days=keep_days)
        except (KeyError, ValueError):
            too_old = False
        if too_many or too_old:
            doomed.append(entry)
    return doomed


def default_name(database, now):
    return "%s_%s.dump" % (database, now.strftime("%Y%m%dT%H%M%SZ"))


def valid_name(name):
    """A plain file name in its directory: no '/', not '.'-hidden (partial files are), no manifest or partial suffix."""
    return bool(name) and "/" not in name and "\0" not in name and not name.startswith(PARTIAL_PREFIX) \
        and not name.endswith((MANIFEST_SUFFIX, PARTIAL_SUFFIX))


def check_name(name):
    if not valid_name(name):
        raise BackupError("backup name %r is not valid: a plain file name, not starting with '.', not ending in %s or %s"
                          % (name, MANIFEST_SUFFIX, PARTIAL_SUFFIX))
    return name


def take_backup(pg, directory, name, key_tables, verify="toc", compress=None):
    """Dump the database into directory/name through a partial file, verify it, then write its
    manifest (the commit point: only a backup with a manifest exists for restore and retention)."""
    path = os.path.join(directory, check_name(name))
    if os.path.exists(path) or os.path.exists(manifest_path(path)):
        raise BackupError("%s already exists; backups are never overwritten, choose another name" % path)
    started = utcnow()
    with files.PartialFile(path) as partial:
        with pg.snapshot_session() as session:
            server_version = session.query("SHOW server_version")[0][0]
            database_size = int(session.query("SELECT pg_database_size(current_database())")[0][0])
            migrations = pg.migration_state(session)
            row_counts = pg.row_counts(key_tables, session)
            summed = row_counts and int(session.query("SHOW server_version_num")[0][0]) >= CHECKSUM_MIN_SERVER
            for setting in CHECKSUM_SETTINGS if summed else []:
                session.query(setting)
            if summed:  # the content checksums run in the server while pg_dump streams
                session.send(pg.checksum_sql(sorted(row_counts)))
            digest, size = pg.dump(partial.handle, snapshot=session.snapshot, compress=compress)
            checksums = dict((row[0], row[1]) for row in session.receive()) if summed else {}
        partial.sync()
        toc = pg.archive_toc(partial.path)
        missing = sorted(set(row_counts) - tables_with_data(toc))
        if missing:
            raise BackupError("the archive's table of contents has no data for %s; the dump is incomplete" % ", ".join(missing))
        if verify == "full":
            pg.archive_readable(partial.path)
    finished = utcnow()
    manifest = {
        "producer": PRODUCER, "format": FORMAT, "file": name, "sha256": digest, "size": size,
        "database": pg.database, "server_version": server_version, "database_size": database_size,
        "migrations": migrations, "row_counts": row_counts, "checksums": checksums, "toc_entries": len(toc), "verified": verify,
        "started_at": isoformat(started), "finished_at": isoformat(finished),
        "duration_s": int((finished - started).total_seconds()),
    }
    files.write_json(manifest_path(path), manifest)
    manifest.update(path=path, manifest=manifest_path(path))
    return manifest


def tables_with_data(toc):
    tables = set()
    for line in toc:
        parts = line.split()
        # "<id>; <oid> <oid> TABLE DATA <schema> <name> <owner>"
        if len(parts) >= 7 and parts[3:5] == ["TABLE", "DATA"]:
            tables.add("%s.%s" % (parts[5], parts[6]))
    return tables


def remove_backup(entry):
    """Remove a backup and its manifest, manifest first: a crash in between leaves an unlisted file, never a
    listed backup without data. Both must be regular files (lstat, never following a link): anything else
    is left alone and named."""
    present = []
    for path in (entry["manifest"], entry["path"]):
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            raise BackupError("%s is not a regular file (a link or a directory where a backup belongs): retention leaves "
                              "it and its backup alone; look at who put it there" % path)
        present.append(path)
    for path in present:
        os.unlink(path)


def remove_backups(doomed):
    """Remove each doomed backup (remove_backup): (the paths removed, what was left alone and why)."""
    removed, refusals = [], []
    for entry in doomed:
        try:
            remove_backup(entry)
            removed.append(entry["path"])
        except BackupError as exc:
            refusals.append(str(exc))
    return removed, refusals
