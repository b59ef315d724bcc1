#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: db_restore
short_description: Restore an nself project's database from a verified backup, side by side, then swap
version_added: 0.1.0
description:
  - Restores a backup taken by M(nfamily.ops.db_backup), found by its manifest. The file's size and sha256 are checked
    against the manifest before anything changes.
  - The backup is restored into a scratch database next to the live one, in parallel (C(pg_restore -j)), stopping at the
    first SQL error. The scratch database's row counts and migration state must equal the manifest's. Only then are the
    two databases swapped, in one transaction (C(ALTER DATABASE ... RENAME)); the live database is kept as
    C(<db>_pre_restore_<time>) until O(keep_previous) newer ones exist. A failed restore never touches the live data.
  - The restored database carries a marker (its comment names the backup's sha256). A re-run finds the marker and equal
    row counts and changes nothing; a re-run after a kill drops an unfinished scratch database and restores again,
    or swaps a finished one.
  - This replaces C(nself db restore), which reads no stdin, ignores SQL errors, restores into the live database over
    existing objects, and prompts in prod.
  - Stop the services that write to the database before the swap (M(nfamily.ops.nself_service)); remaining connections to
    the live database are terminated at the swap. With O(state=staged) first, the services stay up during the long part.
  - O(state=drilled) is a restore drill. It restores the backup into a drill database beside the live one (never touching
    the live database or a service), compares it with the manifest (row counts, migration state and, for backups that
    carry them, the content checksums of the key tables), drops it, and records the outcome in the manifest. A backup
    that fails its drill is skipped by O(source=latest), with a warning, from then on.
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.postgres
  - nfamily.ops.offsite
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
    details: Verifies the backup, checks space and reports whether a restore (or a drill) would happen; changes nothing.
  diff_mode:
    support: none
options:
  source:
    description:
      - The backup to restore. V(latest) is the newest verified backup in O(backups_dir); otherwise a backup file or its
        C(.manifest.json), absolute or relative to O(backups_dir).
      - With O(offsite), V(latest) or a file name under the offsite prefix; the copy is downloaded into O(backups_dir)
        (unless an identical file is there) and checked like a local one.
    type: str
    required: true
  backups_dir:
    description: Directory of the backups. Defaults to the project's C(backups/) directory.
    type: path
  state:
    description:
      - V(restored) restores into the scratch database (unless a finished one is there) and swaps it in.
      - V(drilled) restores into a drill database, compares it with the manifest, drops it and marks the manifest with the
        outcome (C(drill.result) V(passed) or V(failed)); it fails when the backup does not restore to what its manifest
        says, and refuses before it starts when the database volume cannot hold the copy.
      - V(staged) only restores into the scratch database and checks it, leaving the live database and its services
        alone; a later V(restored) swaps it in within seconds. This keeps the outage to the swap.
      - V(verified) only checks the backup against its manifest and changes nothing.
    type: str
    choices: [restored, staged, verified, drilled]
    default: restored
  jobs:
    description: Parallel jobs of C(pg_restore). Defaults to the number of CPUs of the host.
    type: int
  container_tmp:
    description: Directory inside the postgres container where the archive is copied for the parallel restore.
    type: str
    default: /tmp
  keep_previous:
    description: How many databases replaced by earlier restores (C(<db>_pre_restore_*)) to keep; older ones are dropped.
    type: int
    default: 1
  run_id:
    description: With O(state=drilled), the runbook run that drills, kept in the manifest's drill record.
    type: str
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Check the newest backup without changing anything
  nfamily.ops.db_restore:
    project_dir: /opt/nself-family/backend
    source: latest
    state: verified

- name: Restore the newest offsite copy (the host lost its backups directory)
  nfamily.ops.db_restore:
    project_dir: /opt/nself-family/backend
    source: latest
    offsite:
      bucket: nf-backups

- name: Restore a named backup
  nfamily.ops.db_restore:
    project_dir: /opt/nself-family/backend
    source: nself_family_20261127T020000Z.dump
"""

RETURN = r"""
backup:
  description: The manifest of the backup restored (or verified).
  returned: always
  type: dict
restored:
  description: Whether the database was replaced in this run.
  returned: always
  type: bool
previous_database:
  description: Name under which the replaced live database is kept.
  returned: when the database was replaced and kept (O(keep_previous) above 0)
  type: str
scratch_database:
  description: The scratch database the backup is (or would be) restored into.
  returned: when the live database is not already this backup
  type: str
row_counts:
  description: Row counts of the manifest's key tables in the live database after the run.
  returned: when O(state=restored)
  type: dict
drill:
  description:
    - With O(state=drilled), the drill's outcome as recorded in the manifest - C(result) (V(passed) or V(failed)), C(at),
      C(run_id), C(problems), C(restore_seconds) (copy, pg_restore and checks of this backup on this host), and
      C(restore_estimate_seconds), what a real restore taking a safety backup first would take (the safety backup, about as
      long as this backup took, plus the restore measured here).
  returned: when O(state=drilled)
  type: dict
  sample: {"result": "passed", "restore_seconds": 4.2, "restore_estimate_seconds": 7.2, "problems": []}
dropped_previous:
  description: Databases of earlier restores dropped by O(keep_previous).
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
import re
import secrets
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _backup as bk
from ansible_collections.nfamily.ops.plugins.module_utils import _disk as disk
from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.module_utils import _offsite as offsite
from ansible_collections.nfamily.ops.plugins.module_utils import _offsite_key as offsite_key
from ansible_collections.nfamily.ops.plugins.module_utils import _s3 as s3lib
from ansible_collections.nfamily.ops.plugins.module_utils._nself import nself_argument_spec
from ansible_collections.nfamily.ops.plugins.module_utils._pg import (
    PostgresError,
    pg_argument_spec,
    project_database,
    quote_ident,
    quote_literal,
)

MAINTENANCE_DB = "postgres"
RESTORED_MARK = "nfamily.ops restored "
SCRATCH_DONE_MARK = "nfamily.ops scratch complete "
RESTORE_SETTINGS = "-c maintenance_work_mem=256MB -c synchronous_commit=off"


def scratch_name(database, sha256):
    return "%s_restore_%s" % (database[:40], sha256[:12])


def previous_name(database, now):
    return "%s_pre_restore_%s" % (database[:40], now.strftime("%Y%m%d%H%M%S"))


def database_comment(admin, name):
    return admin.value("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s" % quote_literal(name))


def database_exists(admin, name):
    return admin.value("SELECT count(*) FROM pg_database WHERE datname = %s" % quote_literal(name)) == "1"


def counts_match(pg, manifest):
    counts = pg.row_counts(sorted(manifest["row_counts"]))
    return counts == manifest["row_counts"], counts


def drill_name(database, sha256):
    return "%s_drill_%s" % (database[:40], sha256[:12])


def drop_database(admin, name):
    admin.query("DROP DATABASE IF EXISTS %s WITH (FORCE)" % quote_ident(name))


def check_space(pg, admin, manifest, what="restoring side by side", freed=0):
    """The restored copy needs about the backed-up database's size (the live one's when the manifest does not
    say), plus the archive copied into the container. `freed`: bytes that will be freed first (leftovers to drop)."""
    size = manifest.get("database_size") or pg.database_size()
    needed = size + manifest["size"]
    free = pg.data_free_bytes() + freed
    if free < needed:
        raise bk.BackupError("the database volume has %s free; %s needs about %s (the database's size plus the "
                             "archive). Nothing was started. Free space, or drop old %s_pre_restore_* databases"
                             % (disk.mib(free), what, disk.mib(needed), pg.database))


# pg_restore failing for one of these is the host's doing (space, memory, the server), not the archive's.
HOST_TROUBLE_RE = re.compile(r"No space left on device|could not extend file|out of memory|could not connect|"
                             r"too many clients|remaining connection slots|terminating connection|shutting down|"
                             r"server closed the connection|could not fork|Cannot allocate memory", re.I)


class ArchiveError(Exception):
    """pg_restore refused the archive: the backup itself does not restore."""


def restore_into_scratch(pg, admin, manifest, scratch, jobs, container_tmp):
    """Create the scratch database and pg_restore the archive into it, stopping at the first error
    (raised as ArchiveError: the backup's fault, not the host's)."""
    drop_database(admin, scratch)  # an unfinished one from a killed run
    encoding, collate, ctype = admin.query(
        "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = %s"
        % quote_literal(pg.database))[0]
    admin.query("CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING %s LC_COLLATE %s LC_CTYPE %s" % (
        quote_ident(scratch), quote_ident(pg.user), quote_literal(encoding), quote_literal(collate), quote_literal(ctype)))
    # a name no one can guess, written only if it does not exist: nothing planted in the container's /tmp
    # (a link to a file the restore would overwrite) is written through
    archive = "%s/nfamily-restore-%s.dump" % (container_tmp.rstrip("/"), secrets.token_hex(12))
    pg.feed(["sh", "-c", 'umask 077 && set -C && cat > "$1"', "sh", archive], manifest["path"])
    try:
        pg.run(["env", "PGOPTIONS=%s" % RESTORE_SETTINGS, "pg_restore", "-U", pg.user, "-d", scratch,
                "--jobs=%d" % jobs, "--exit-on-error", archive])
    except PostgresError as exc:
        if HOST_TROUBLE_RE.search(str(exc)):
            raise
        raise ArchiveError(str(exc))
    finally:
        pg.run(["rm", "-f", archive])


def differences(pg, manifest, checksums=False):
    """How a restored database differs from its backup's manifest, as readable lines ([] when it matches)."""
    problems = []
    counts = pg.row_counts(sorted(manifest["row_counts"]))
    for table in sorted(set(manifest["row_counts"]) | set(counts)):
        if counts.get(table) != manifest["row_counts"].get(table):
            problems.append("%s has %s rows, the manifest says %s" % (table, counts.get(table, "no"), manifest["row_counts"].get(table)))
    migrations = pg.migration_state()
    if migrations != manifest["migrations"]:
        problems.append("migrations %s, the manifest says %s" % (migrations, manifest["migrations"]))
    if checksums and manifest.get("checksums"):
        sums = pg.table_checksums(sorted(manifest["checksums"]))
        problems.extend("%s content differs from the backup's (checksum %s, the manifest says %s)" % (table, sums.get(table), value)
                        for table, value in sorted(manifest["checksums"].items())
                        if sums.get(table) != value and counts.get(table) == manifest["row_counts"].get(table))
    return problems


def swap(admin, live, scratch, previous, sha256, now, attempts=3):
    """Rename live → previous and scratch → live in one transaction, marking the new live database.
    A client that reconnects between the terminate and the rename makes the rename fail: try again."""
    for attempt in range(attempts):
        try:
            admin.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN (%s, %s) AND pid <> pg_backend_pid()"
                % (quote_literal(live), quote_literal(scratch)),
                "BEGIN; ALTER DATABASE %s RENAME TO %s; ALTER DATABASE %s RENAME TO %s; COMMENT ON DATABASE %s IS %s; COMMIT"
                % (quote_ident(live), quote_ident(previous), quote_ident(scratch), quote_ident(live), quote_ident(live),
                   quote_literal(RESTORED_MARK + sha256 + " at " + bk.isoformat(now))))
            return
        except PostgresError as exc:
            if "being accessed by other users" not in str(exc) or attempt == attempts - 1:
                raise PostgresError("%s; stop the services that use the database (they reconnect) and re-run" % exc)
            time.sleep(1)


def stale_databases(admin, database, kind, suffix, current=None):
    """Databases this module made for `kind` (restore, drill) of database, other than current."""
    pattern = "^%s_%s_%s$" % (re.escape(database[:40]), kind, suffix)
    return [row[0] for row in admin.query("SELECT datname FROM pg_database WHERE datname ~ %s" % quote_literal(pattern))
            if row[0] != current]


def prune_previous(admin, database, keep):
    doomed = sorted(stale_databases(admin, database, "pre_restore", "[0-9]{14}"), reverse=True)[keep:]
    for name in doomed:
        drop_database(admin, name)
    return doomed


def stage(module, pg, admin, manifest, scratch):
    """Restore the archive into the scratch database and check it against the manifest, unless a
    finished scratch database of this backup is already there. Returns whether it restored."""
    if database_exists(admin, scratch) and (database_comment(admin, scratch) or "") == SCRATCH_DONE_MARK + manifest["sha256"]:
        return False
    if not module.check_mode:
        for leftover in stale_databases(admin, pg.database, "restore", "[0-9a-f]{12}", scratch):
            drop_database(admin, leftover)  # staged by an abandoned run of another backup: only takes space
    check_space(pg, admin, manifest)
    if module.check_mode:
        return True
    jobs = module.params["jobs"] or os.cpu_count() or 1
    try:
        restore_into_scratch(pg, admin, manifest, scratch, jobs, module.params["container_tmp"])
    except ArchiveError as exc:
        raise bk.BackupError("%s does not restore (%s); the live database was not touched" % (manifest["file"], exc))
    problems = differences(pg.on(scratch), manifest)
    if problems:
        drop_database(admin, scratch)
        raise bk.BackupError("the restored data does not match the manifest (%s); the live database was not touched"
                             % "; ".join(problems))
    admin.query("COMMENT ON DATABASE %s IS %s" % (quote_ident(scratch), quote_literal(SCRATCH_DONE_MARK + manifest["sha256"])))
    return True


def drill(module, pg, manifest):
    """Restore into a drill database, compare with the manifest, drop it, record the outcome in the manifest.
    Returns the result keys; a failed drill is recorded, then raised as a BackupError naming the backup."""
    admin = pg.on(MAINTENANCE_DB)
    scratch = drill_name(pg.database, manifest["sha256"])
    leftovers = stale_databases(admin, pg.database, "drill", "[0-9a-f]{12}")
    freed = sum(int(admin.value("SELECT pg_database_size(%s)" % quote_literal(name))) for name in leftovers) if module.check_mode else 0
    if not module.check_mode:
        for leftover in leftovers:
            drop_database(admin, leftover)  # what a killed drill left
    check_space(pg, admin, manifest, "the restore drill", freed)
    if module.check_mode:
        return dict(changed=True, drill={}, scratch_database=scratch, dropped_previous=leftovers,
                    msg="would drill %s in %s" % (manifest["file"], scratch))
    started = time.time()
    try:
        restore_into_scratch(pg, admin, manifest, scratch, module.params["jobs"] or os.cpu_count() or 1,
                             module.params["container_tmp"])
        problems = differences(pg.on(scratch), manifest, checksums=True)
    except ArchiveError as exc:
        problems = ["pg_restore refused it: %s" % exc]
    except PostgresError as exc:
        raise bk.BackupError("the restore drill of %s could not run on this host (%s); the backup was not judged and "
                             "stays as it was. Fix that, then re-run" % (manifest["file"], exc))
    finally:
        drop_database(admin, scratch)
    seconds = round(time.time() - started, 1)
    outcome = {"result": "failed" if problems else "passed", "at": bk.isoformat(bk.utcnow()), "run_id": module.params["run_id"],
               "problems": problems, "restore_seconds": seconds,
               "restore_estimate_seconds": round(seconds + manifest.get("duration_s", 0), 1),
               "checksums_compared": bool(manifest.get("checksums"))}
    bk.mark_drill(manifest, outcome)
    if problems:
        raise bk.BackupError("restore drill of %s FAILED: %s. The backup is marked failed-drill in its manifest, so "
                             "restore_source=latest skips it; take a new backup and look at how this one was written"
                             % (manifest["file"], "; ".join(problems)))
    return dict(changed=True, drill=outcome, dropped_previous=leftovers,
                msg="%s restores to what its manifest says (%s); restored in %s s here, about %s s with a safety backup first"
                % (manifest["file"], "row counts, migrations and content checksums" if outcome["checksums_compared"]
                   else "row counts and migrations; this backup has no content checksums", seconds,
                   outcome["restore_estimate_seconds"]))


def restore(module, pg, manifest):
    """Returns the result keys of a restore run (check mode: the prediction)."""
    admin = pg.on(MAINTENANCE_DB)
    comment = database_comment(admin, pg.database) or ""
    if comment.startswith(RESTORED_MARK + manifest["sha256"]):
        same, counts = counts_match(pg, manifest)
        if same:
            return dict(changed=False, restored=False, row_counts=counts, dropped_previous=[],
                        msg="the live database is already this backup (marker and row counts match)")
    scratch = scratch_name(pg.database, manifest["sha256"])
    staged = stage(module, pg, admin, manifest, scratch)
    if module.params["state"] == "staged":
        return dict(changed=staged, restored=False, row_counts={}, dropped_previous=[], scratch_database=scratch,
                    msg="%s %s in %s, ready to swap in" % ("would restore" if module.check_mode else "restored" if staged
                                                           else "already restored", manifest["file"], scratch))
    if module.check_mode:
        return dict(changed=True, restored=False, row_counts={}, dropped_previous=[], scratch_database=scratch,
                    msg="would %sswap %s into %s" % ("restore and " if staged else "", manifest["file"], pg.database))
    now = bk.utcnow()
    previous = previous_name(pg.database, now)
    swap(admin, pg.database, scratch, previous, manifest["sha256"], now)
    same, counts = counts_match(pg, manifest)
    if not same:
        raise bk.BackupError("after the swap the live row counts %s differ from the manifest's %s; the replaced database "
                             "is kept as %s" % (counts, manifest["row_counts"], previous))
    dropped = prune_previous(admin, pg.database, module.params["keep_previous"])
    what = "restored %s into %s" % (manifest["file"], pg.database)
    if previous in dropped:  # keep_previous=0
        return dict(changed=True, restored=True, row_counts=counts, dropped_previous=dropped,
                    msg="%s; the replaced database was dropped (keep_previous=0)" % what)
    return dict(changed=True, restored=True, previous_database=previous, row_counts=counts, dropped_previous=dropped,
                msg="%s; the replaced database is kept as %s" % (what, previous))


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(pg_argument_spec())
    argument_spec.update(
        source=dict(type="str", required=True),
        backups_dir=dict(type="path"),
        state=dict(type="str", choices=["restored", "staged", "verified", "drilled"], default="restored"),
        jobs=dict(type="int"),
        container_tmp=dict(type="str", default="/tmp"),
        keep_previous=dict(type="int", default=1),
        run_id=dict(type="str"),
        offsite=s3lib.offsite_argument_spec(),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if not os.path.isdir(params["project_dir"]):
        module.fail_json(msg="project_dir %s does not exist; set it to the nself project" % params["project_dir"])
    if params["jobs"] is not None and params["jobs"] < 1:
        module.fail_json(msg="jobs must be 1 or more")
    if params["keep_previous"] < 0:
        module.fail_json(msg="keep_previous must be 0 or more")
    if not params["container_tmp"].startswith("/") or not re.match(r"^[A-Za-z0-9_./-]+$", params["container_tmp"]):
        module.fail_json(msg="container_tmp must be an absolute path of letters, digits, '.', '_', '-' and '/'")
    backups_dir = params["backups_dir"] or os.path.join(params["project_dir"], "backups")
    pg = None
    try:
        if params["offsite"]:
            if module.check_mode and params["state"] in ("restored", "drilled"):
                raise bk.BackupError("check mode cannot download the offsite copy; run with state=verified first, "
                                     "or restore without check mode")
            env_name = params["environment"] or nenv.detect_environment(params["project_dir"])
            env, _files = nenv.load_cascade(params["project_dir"], env_name)
            sealer = offsite_key.from_offsite(params["offsite"])
            s3 = s3lib.client(s3lib.settings_from_env(env, params["offsite"]))
            if not os.path.isdir(backups_dir):
                os.makedirs(backups_dir, 0o700)
            manifest = offsite.fetch(s3lib, s3, params["offsite"]["bucket"], params["offsite"]["prefix"],
                                     params["source"], backups_dir, module.warn, sealer)
        else:
            manifest = bk.resolve(params["source"], backups_dir, module.warn)
        bk.check_file(manifest)
        if params["state"] == "verified":
            module.exit_json(changed=False, restored=False, backup=manifest, dropped_previous=[], commands=[],
                             msg="%s matches its manifest" % manifest["path"])
        pg = project_database(module)
        if manifest["database"] != pg.database:
            raise bk.BackupError("%s is a backup of database %s, not of %s; restore it into that project"
                                 % (manifest["file"], manifest["database"], pg.database))
        if params["state"] == "drilled":
            try:
                result = drill(module, pg, manifest)
            finally:
                if params["offsite"] and manifest.get("drill") and not module.check_mode:
                    if not offsite.put_manifest(s3lib, s3, params["offsite"]["bucket"],
                                                params["offsite"]["prefix"] + manifest["file"] + bk.MANIFEST_SUFFIX, manifest, sealer):
                        module.warn("the drill record stays on this host: the offsite copy is sealed, and its signed manifest "
                                    "is rewritten only with the offsite key")
        else:
            result = restore(module, pg, manifest)
    except (bk.BackupError, PostgresError, s3lib.S3Error, offsite_key.OffsiteKeyError) as exc:
        module.fail_json(msg=str(exc), commands=pg.commands if pg else [])
    module.exit_json(backup=manifest, commands=pg.commands, **result)


if __name__ == "__main__":
    main()
