#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: db_base_backup
short_description: Take a verified physical base backup of an nself project's PostgreSQL for point-in-time recovery
version_added: 0.1.0
description:
  - Runs C(pg_basebackup -D - -Ft -Z <compress> -X fetch -c fast) inside the postgres container and streams the gzip tarball
    to a partial file on the host in 1 MiB chunks, so memory does not grow with the cluster. The tarball holds the WAL it
    needs to be consistent, so it restores even without the archive (to its own end).
  - The tarball is read to its end (gzip checksums included) and must hold C(backup_label), C(PG_VERSION) and
    C(global/pg_control) before it is renamed to C(base_<UTC time>.tar.gz). Its manifest C(<file>.json) (sha256, size,
    start WAL segment, times, server version, system identifier) is written last, atomically, 0600.
  - Requires WAL archiving (M(nfamily.ops.db_wal_archive)). A base backup is only a starting point; recovery to a later
    time replays the archive.
  - Retention keeps the newest O(keep_count) base backups and, with O(prune_archive), removes the archived WAL segments
    that only older base backups needed (like C(pg_archivecleanup)).
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.postgres
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
    details: Reports the base backup it would take and what retention would remove; writes nothing.
  diff_mode:
    support: none
options:
  dest:
    description: Directory of the base backups. Defaults to C(<project_dir>/backups/base).
    type: path
  archive_dir:
    description: The host directory of the WAL archive, for O(prune_archive). Defaults to C(<project_dir>/backups/wal).
    type: path
  compress:
    description: gzip level of the tarball (1 is fastest).
    type: int
    default: 1
  keep_count:
    description: Keep this many of the newest base backups (at least 1).
    type: int
    default: 3
  prune_archive:
    description: Remove archived WAL older than the oldest kept base backup's start segment.
    type: bool
    default: true
  required_free:
    description: Bytes that must be free in O(dest) before the backup starts. Defaults to the cluster's size on disk.
    type: int
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Nightly base backup, keep three
  nfamily.ops.db_base_backup:
    project_dir: /opt/nself-family/backend
    keep_count: 3
"""

RETURN = r"""
backup:
  description: The manifest of the base backup taken (in check mode, the planned path only).
  returned: always
  type: dict
  contains:
    path:
      description: The tarball.
      type: str
    manifest:
      description: Its manifest file.
      type: str
    sha256:
      description: Checksum of the tarball.
      type: str
    size:
      description: Bytes.
      type: int
    start_segment:
      description: The WAL segment recovery from this backup starts at.
      type: str
    finished_at:
      description: UTC time after which this backup can be the base of a recovery.
      type: str
  sample: {"path": "/opt/nself-family/backend/backups/base/base_20261127T020000Z.tar.gz", "size": 4912345,
           "start_segment": "000000010000000000000004", "finished_at": "2026-11-27T02:00:07Z"}
pruned:
  description: Base backups retention removed (or would remove).
  returned: always
  type: list
  elements: str
pruned_wal:
  description: Number of archive files removed (or that would be) and their bytes.
  returned: always
  type: dict
removed_partials:
  description: Partial files of killed base backups, held open by no process, that were removed (or would be).
  returned: always
  type: list
  elements: str
commands:
  description: The commands run (argv lists).
  returned: always
  type: list
  elements: list
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _backup as bk
from ansible_collections.nfamily.ops.plugins.module_utils import _disk as disk
from ansible_collections.nfamily.ops.plugins.module_utils import _files as files
from ansible_collections.nfamily.ops.plugins.module_utils import _pitr as pitr
from ansible_collections.nfamily.ops.plugins.module_utils._nself import nself_argument_spec
from ansible_collections.nfamily.ops.plugins.module_utils._pg import PostgresError, pg_argument_spec, project_database
from ansible_collections.nfamily.ops.plugins.module_utils._runbook import isoformat, utcnow


def argument_spec():
    spec = nself_argument_spec()
    spec.update(pg_argument_spec())
    spec.update(
        dest=dict(type="path"),
        archive_dir=dict(type="path"),
        compress=dict(type="int", default=1),
        keep_count=dict(type="int", default=3),
        prune_archive=dict(type="bool", default=True),
        required_free=dict(type="int"),
    )
    return spec


def cluster_facts(pg):
    row = pg.query("SELECT current_setting('archive_mode'), current_setting('server_version'), "
                   "(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'), "
                   "(SELECT system_identifier FROM pg_control_system()), "
                   "(SELECT sum(pg_database_size(oid)) FROM pg_database)")[0]
    return {"archive_mode": row[0], "server_version": row[1], "segment_size": int(row[2]),
            "system_identifier": row[3], "cluster_size": int(row[4])}


def take(pg, dest, name, compress, facts):
    """Stream the base backup through a partial file, read it back, rename it, then write the manifest."""
    path = os.path.join(dest, name)
    started = utcnow()
    tool = ["pg_basebackup", "-U", pg.user, "-D", "-", "-Ft", "-Z", str(compress), "-X", "fetch", "-c", "fast",
            "--no-manifest", "-l", "nfamily.ops %s" % name]
    with files.PartialFile(path) as partial:
        digest, size = pg.stream_out(tool, partial.handle)
        partial.sync()
        label = pitr.read_base_tar(partial.path)
    finished = utcnow()
    manifest = {
        "producer": pitr.PRODUCER, "format": "pg_basebackup-tar-gzip", "file": name, "sha256": digest, "size": size,
        "start_segment": label["start_segment"], "start_lsn": label["start_lsn"], "timeline": label["start_segment"][:8],
        "segment_size": facts["segment_size"], "server_version": facts["server_version"],
        "system_identifier": facts["system_identifier"], "cluster_size": facts["cluster_size"],
        "started_at": isoformat(started), "finished_at": isoformat(finished),
        "duration_s": int((finished - started).total_seconds()),
    }
    pitr.write_base_manifest(path, manifest)
    manifest.update(path=path, manifest=path + pitr.MANIFEST_SUFFIX)
    return manifest


def retention(bases, keep_count):
    """(kept, doomed) of oldest-first base backups: the newest keep_count are kept."""
    return bases[-keep_count:], bases[:-keep_count] if len(bases) > keep_count else []


def public(manifest):
    return dict((k, v) for k, v in manifest.items() if k != "finished")


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if params["keep_count"] < 1:
        module.fail_json(msg="keep_count must be at least 1: the newest base backup is always kept")
    if not 1 <= params["compress"] <= 9:
        module.fail_json(msg="compress must be a gzip level between 1 and 9")
    dest = params["dest"] or os.path.join(params["project_dir"], "backups", "base")
    archive_dir = params["archive_dir"] or os.path.join(params["project_dir"], "backups", "wal")
    pg = None
    try:
        pg = project_database(module)
        facts = cluster_facts(pg)
        if facts["archive_mode"] not in ("on", "always"):
            raise pitr.PitrError("WAL archiving is off (archive_mode=%s): a base backup alone cannot recover to a later "
                                 "time. Enable it first with playbooks/db_pitr_enable.yml" % facts["archive_mode"])
        partials = files.abandoned_partials(dest)
        if not module.check_mode:
            for partial in partials:
                os.unlink(partial)
        required = params["required_free"] if params["required_free"] is not None else facts["cluster_size"]
        free = disk.free_bytes(dest) + (sum(os.path.getsize(p) for p in partials) if module.check_mode else 0)
        if free < required:
            raise pitr.PitrError("%s has %s free; the base backup needs up to %s. Free space, or set required_free"
                                 % (dest, disk.mib(free), disk.mib(required)))
        name = pitr.base_name(utcnow())
        if os.path.exists(os.path.join(dest, name)):
            raise pitr.PitrError("%s already exists in %s; wait a second and re-run" % (name, dest))
        existing = pitr.base_catalogue(dest)
        if module.check_mode:
            _kept, doomed = retention(existing + [{"path": os.path.join(dest, name)}], params["keep_count"])
            module.exit_json(changed=True, backup={"path": os.path.join(dest, name)}, pruned=[e["path"] for e in doomed],
                             pruned_wal={"files": 0, "bytes": 0}, removed_partials=partials, commands=pg.commands)
        files.ensure_dir(dest)
        manifest = take(pg, dest, name, params["compress"], facts)
        kept, doomed = retention(pitr.base_catalogue(dest), params["keep_count"])
        pruned, refusals = bk.remove_backups(doomed)
        pruned_wal = {"files": 0, "bytes": 0}
        if params["prune_archive"] and kept:
            for name in pitr.prune_archive_plan(archive_dir, kept[0]["start_segment"], kept[0].get("segment_size", 16777216)):
                path = os.path.join(archive_dir, name)
                pruned_wal["bytes"] += os.path.getsize(path)
                pruned_wal["files"] += 1
                os.unlink(path)
    except (pitr.PitrError, PostgresError) as exc:
        module.fail_json(msg=str(exc), commands=pg.commands if pg else [])
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot write the base backup in %s: %s" % (dest, exc), commands=pg.commands if pg else [])
    if refusals:
        module.fail_json(msg="retention: %s. The base backup %s was taken and read back" % ("; ".join(refusals), manifest["path"]),
                         changed=True, backup=public(manifest), pruned=pruned, pruned_wal=pruned_wal, removed_partials=partials,
                         commands=pg.commands)
    module.exit_json(changed=True, backup=public(manifest), pruned=pruned, pruned_wal=pruned_wal,
                     removed_partials=partials, commands=pg.commands)


if __name__ == "__main__":
    main()
