#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: db_pitr
short_description: Recover an nself project's PostgreSQL to a point in time from a base backup and the WAL archive
version_added: 0.1.0
description:
  - One step of a point-in-time recovery per call, so that a runbook can stop services, checkpoint and resume between
    them. The M(nfamily.ops.pitr) role runs them in order; each is safe to repeat.
  - V(planned) (read-only) checks the target and chooses the base backup. It refuses a target in the future or before
    the end of the oldest base backup, a base backup whose checksum does not match its manifest, a WAL archive with a gap
    after the base backup, and a data directory without room for the base backup. When the last recovery recorded in
    O(base_dir) reached this target and the server is still on the timeline it created, it reports no change.
  - V(sealed) (postgres running) commits a transaction, switches WAL and waits until the segment is archived, so the
    archive holds a commit after any past target.
  - V(prepared) (postgres stopped) moves the data directory aside to C(<data_dir>.pre_pitr_<run_id>) (it is never
    deleted), extracts the base backup in its place with its owners and modes, and writes C(restore_command),
    C(recovery_target_time), C(recovery_target_action) and C(recovery_target_timeline=latest) to C(postgresql.auto.conf)
    with a C(recovery.signal) file (PostgreSQL 12+; C(recovery.conf) is obsolete).
  - V(recovered) (postgres started) waits until recovery reached the target and the server was promoted (or paused,
    with O(target_action=pause)), then removes the recovery settings and records the recovery in O(base_dir).
    If postgres stops during recovery, it fails with the server's last log lines.
  - V(rolled_back) (postgres stopped) puts the moved-aside data directory back and keeps the failed one as
    C(<data_dir>.failed_pitr_<run_id>).
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.postgres
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
    details: Every state reports what it would do without doing it; V(planned) is the same in both modes.
  diff_mode:
    support: none
options:
  state:
    description: The step to carry out.
    type: str
    choices: [planned, sealed, prepared, recovered, rolled_back]
    default: planned
  target_time:
    description:
      - The time to recover to, ISO 8601 (a time without an offset is UTC), or V(latest) to replay the whole archive.
      - Required for V(planned) and V(prepared).
    type: str
  target_action:
    description: What the server does at the target. V(pause) leaves it read-only for inspection (resume with
      C(SELECT pg_wal_replay_resume())).
    type: str
    choices: [promote, pause]
    default: promote
  base:
    description: The base backup file name to use (from V(planned)'s result); default is the one V(planned) chooses.
    type: str
  run_id:
    description: Names the moved-aside data directory and the recovery record. Required for V(prepared), V(recovered) and
      V(rolled_back).
    type: str
  data_dir:
    description:
      - The host path of the postgres data directory. Defaults to the mountpoint of the C(<PROJECT_NAME>_postgres_data)
        volume (C(docker volume inspect)).
    type: path
  base_dir:
    description: Directory of the base backups. Defaults to C(<project_dir>/backups/base).
    type: path
  archive_dir:
    description: The host directory of the WAL archive. Defaults to C(<project_dir>/backups/wal).
    type: path
  archive_mount:
    description: Where the archive is mounted in the postgres container.
    type: path
    default: /var/lib/postgresql/wal_archive
  timeout:
    description: Seconds V(sealed) waits for archiving and V(recovered) waits for the recovery to finish.
    type: int
    default: 600
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Plan a recovery to five past three (UTC)
  nfamily.ops.db_pitr:
    project_dir: /opt/nself-family/backend
    target_time: "2026-11-27T03:05:00Z"
  register: pitr_plan

- name: Extract the base backup with the recovery settings (postgres is stopped)
  nfamily.ops.db_pitr:
    project_dir: /opt/nself-family/backend
    state: prepared
    target_time: "2026-11-27T03:05:00Z"
    base: "{{ pitr_plan.base.file }}"
    run_id: "20261127T031000-ab12"
"""

RETURN = r"""
target:
  description: The target as UTC ISO 8601, or C(latest).
  returned: when O(target_time) was given
  type: str
base:
  description: The manifest of the chosen base backup (V(planned), V(prepared)).
  returned: when a base backup was chosen
  type: dict
archive:
  description: The archive's segment count, first and last segment, and the last archived time the server reports.
  returned: with V(planned)
  type: dict
data_dir:
  description: The host path of the data directory.
  returned: always
  type: str
aside:
  description: Where the live data directory was (or will be) moved.
  returned: with V(planned), V(prepared), V(rolled_back)
  type: str
already_recovered:
  description: The recorded recovery that already reached this target (V(planned) then reports no change).
  returned: when it applies
  type: dict
sealed_segment:
  description: The WAL segment switched and archived by V(sealed).
  returned: with V(sealed), when postgres ran
  type: str
timeline:
  description: The server's timeline after the recovery.
  returned: with V(recovered)
  type: str
evidence:
  description: The server's log lines that say where recovery stopped.
  returned: with V(recovered)
  type: list
  elements: str
commands:
  description: The commands run (argv lists).
  returned: always
  type: list
  elements: list
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _backup as bk
from ansible_collections.nfamily.ops.plugins.module_utils import _disk as disk
from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.module_utils import _pitr as pitr
from ansible_collections.nfamily.ops.plugins.module_utils._nself import NselfCLI, NselfError, log_message, nself_argument_spec
from ansible_collections.nfamily.ops.plugins.module_utils._pg import PostgresContainer, PostgresError, pg_argument_spec
from ansible_collections.nfamily.ops.plugins.module_utils._runbook import isoformat, utcnow

UP_STATES = ("healthy", "starting", "unhealthy", "restarting", "running")
# What the postmaster logs when the startup process (the recovery) fails. Under `restart: unless-stopped`
# Docker starts the server again and it fails the same way each time; between two failures the container is
# `starting` for a moment, as healthy a state as any: the log tells.
RECOVERY_FAILED = "shutting down due to startup process failure"
RECOVERY_START = "starting point-in-time recovery"
EVIDENCE = (RECOVERY_START, "recovery stopping", "last completed transaction", "selected new timeline", "archive recovery complete",
            "redo done", "recovery has paused", "FATAL", "PANIC", RECOVERY_FAILED)


def argument_spec():
    spec = nself_argument_spec()
    spec.update(pg_argument_spec())
    spec.update(
        state=dict(type="str", choices=["planned", "sealed", "prepared", "recovered", "rolled_back"], default="planned"),
        target_time=dict(type="str"),
        target_action=dict(type="str", choices=["promote", "pause"], default="promote"),
        base=dict(type="str"),
        run_id=dict(type="str"),
        data_dir=dict(type="path"),
        base_dir=dict(type="path"),
        archive_dir=dict(type="path"),
        archive_mount=dict(type="path", default=pitr.ARCHIVE_MOUNT),
        timeout=dict(type="int", default=600),
    )
    return spec


class Recovery(object):
    """The project, its postgres container and the PITR paths of one module call."""

    def __init__(self, module):
        self.module = module
        params = module.params
        self.params = params
        env_name = params["environment"] or nenv.detect_environment(params["project_dir"])
        self.env, _files = nenv.load_cascade(params["project_dir"], env_name)
        self.cli = NselfCLI(module, params["project_dir"], params["nself_bin"], params["environment"])
        environ = {"NSELF_ENV": params["environment"]} if params["environment"] else None
        self.pg = PostgresContainer(module, params["project_dir"], self.env, params["nself_bin"], params["via"],
                                    params["postgres_service"], environ)
        self.base_dir = params["base_dir"] or os.path.join(params["project_dir"], "backups", "base")
        self.archive_dir = params["archive_dir"] or os.path.join(params["project_dir"], "backups", "wal")
        self.data_dir = params["data_dir"] or self.volume_mountpoint()

    def volume_mountpoint(self):
        volume = "%s_%s_data" % (self.env.get("PROJECT_NAME") or "", self.params["postgres_service"].replace("-", "_"))
        try:
            return disk.volume_mountpoint(self.module, volume)
        except disk.VolumeError as exc:
            raise pitr.PitrError("%s (set data_dir to the host path of the postgres data directory)" % exc)

    def postgres_status(self):
        try:
            _data, services = self.cli.status()
        except NselfError as exc:
            raise pitr.PitrError(str(exc))
        for service in services:
            if service.get("name") == self.params["postgres_service"]:
                return service.get("status") or "unknown"
        return "stopped"

    def require_stopped(self):
        status = self.postgres_status()
        if status in UP_STATES:
            raise pitr.PitrError("postgres is %s; stop it first (nself stop %s) so its data directory can be replaced"
                                 % (status, self.params["postgres_service"]))

    def log_lines(self, count=300):
        """The server's log lines about the last recovery (where it started, stopped, or why it failed)."""
        result = self.cli.run(["logs", self.params["postgres_service"], "--tail", str(count)])
        lines = result.stdout.splitlines()
        starts = [i for i, line in enumerate(lines) if RECOVERY_START in line or "starting archive recovery" in line]
        lines = lines[starts[-1]:] if starts else lines
        # clients refused during startup are noise
        return [log_message(line) for line in lines
                if any(key in line for key in EVIDENCE) and "is starting up" not in line]


def chosen_base(recovery, target, now):
    bases = pitr.base_catalogue(recovery.base_dir)
    if recovery.params["base"]:
        named = [b for b in bases if b["file"] == recovery.params["base"]]
        if not named:
            raise pitr.PitrError("base backup %s has no manifest in %s" % (recovery.params["base"], recovery.base_dir))
        pitr.choose_base(named, target, now)  # the same target checks
        return named[0]
    return pitr.choose_base(bases, target, now)


def archive_summary(recovery, base):
    segments, _others = pitr.archive_listing(recovery.archive_dir)
    gaps = pitr.archive_gaps(segments, base["start_segment"], base.get("segment_size", 16777216))
    summary = {"segments": len(segments), "first": segments[0] if segments else None,
               "last": segments[-1] if segments else None, "gaps": gaps}
    up, _why = recovery.pg.ping()
    summary["last_archived_time"] = pitr.archiver(recovery.pg)["last_archived_time"] if up else None
    summary["server_running"] = up
    return summary


def already_recovered(recovery, target_text):
    """The recorded recovery to this target, when the server still runs on the timeline it created."""
    history = [e for e in pitr.recoveries(recovery.base_dir) if e.get("target") == target_text]
    if not history:
        return None
    up, _why = recovery.pg.ping()
    if not up:
        return None
    timeline = recovery.pg.value("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
    return history[-1] if history[-1].get("timeline") == timeline else None


def plan(recovery, result):
    params = recovery.params
    if not params["target_time"]:
        raise pitr.PitrError("target_time is required: an ISO 8601 time such as 2026-11-27T03:05:00Z, or latest")
    now = utcnow()
    target = pitr.parse_target(params["target_time"])
    result["target"] = isoformat(target) if target else "latest"
    base = chosen_base(recovery, target, now)
    bk.check_file(base)
    result["base"] = dict((k, v) for k, v in base.items() if k != "finished")
    result["aside"] = pitr.aside_path(recovery.data_dir, params["run_id"] or "<run id>")
    return target, base


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    state = params["state"]
    if state in ("prepared", "recovered", "rolled_back") and not params["run_id"]:
        module.fail_json(msg="run_id is required with state=%s: it names the moved-aside data directory" % state)
    if params["run_id"] and not all(c.isalnum() or c in "-_." for c in params["run_id"]):
        module.fail_json(msg="run_id %r may only hold letters, digits, '-', '_' and '.'" % params["run_id"])
    if params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second")
    try:
        pitr.check_mount(params["archive_mount"])
    except pitr.PitrError as exc:
        module.fail_json(msg=str(exc))
    result = dict(changed=False)
    recovery = None
    try:
        recovery = Recovery(module)
        result["data_dir"] = recovery.data_dir
        if os.path.ismount(recovery.data_dir):
            raise pitr.PitrError("the data directory %s is a mount point, so it cannot be moved aside by a rename; "
                                 "set data_dir to a directory inside the mount, or recover by hand" % recovery.data_dir)
        if state == "planned":
            _target, base = plan(recovery, result)
            result["archive"] = archive_summary(recovery, base)
            if result["archive"]["gaps"]:
                raise pitr.PitrError("the WAL archive %s misses %s after the base backup's start: recovery would stop "
                                     "there. Choose a target before the gap, or a later base backup"
                                     % (recovery.archive_dir, "; ".join(result["archive"]["gaps"])))
            needed = base.get("cluster_size") or base["size"]
            free = disk.free_bytes(os.path.dirname(recovery.data_dir.rstrip("/")))
            if free < needed:
                raise pitr.PitrError("%s has %s free; the base backup extracts to about %s beside the data directory "
                                     "kept aside. Free space first" % (recovery.data_dir, disk.mib(free), disk.mib(needed)))
            done = already_recovered(recovery, result["target"])
            if done:
                result["already_recovered"] = done
            result["changed"] = done is None
        elif state == "sealed":
            up, _why = recovery.pg.ping()
            result["changed"] = up
            if up and not module.check_mode:
                result["sealed_segment"] = pitr.switch_and_wait(recovery.pg, recovery.archive_dir, params["timeout"])
            if not up:
                result["warnings"] = ["postgres does not answer, so the archive ends at its last archived segment"]
        elif state == "prepared":
            target, base = plan(recovery, result)
            recovery.require_stopped()
            marker = pitr.marker_path(recovery.data_dir, params["run_id"])
            result["changed"] = not (os.path.exists(marker) and os.path.isdir(recovery.data_dir))
            if result["changed"] and not module.check_mode:
                settings = pitr.recovery_settings(target, params["target_action"], params["archive_mount"])
                result["changed"] = pitr.prepare_data_dir(recovery.data_dir, params["run_id"], base, settings,
                                                          result["target"])
        elif state == "recovered":
            wait_recovered(recovery, result, module.check_mode)
        else:
            recovery.require_stopped()
            result["aside"] = pitr.aside_path(recovery.data_dir, params["run_id"])
            result["changed"] = os.path.exists(result["aside"])
            if result["changed"] and not module.check_mode:
                result["changed"] = pitr.rollback_data_dir(recovery.data_dir, params["run_id"])
    except (pitr.PitrError, bk.BackupError, PostgresError, NselfError) as exc:
        module.fail_json(msg=str(exc), commands=recovery.pg.commands if recovery else [])
    except (IOError, OSError) as exc:
        module.fail_json(msg="PITR %s failed on the filesystem: %s" % (state, exc),
                         commands=recovery.pg.commands if recovery else [])
    result["commands"] = recovery.pg.commands + [c["cmd"] for c in recovery.cli.commands]
    module.exit_json(**result)


def wait_recovered(recovery, result, check_mode):
    """Wait for the end of recovery (promotion, or the pause), then drop the recovery settings."""
    params = recovery.params
    deadline = time.time() + params["timeout"]
    while True:
        up, why = recovery.pg.ping()
        if up:
            in_recovery = recovery.pg.value("SELECT pg_is_in_recovery()") == "t"
            if not in_recovery:
                break
            if params["target_action"] == "pause" and recovery.pg.value("SELECT pg_get_wal_replay_pause_state()") == "paused":
                break
        else:
            lines = recovery.log_lines()
            if recovery.postgres_status() not in UP_STATES or any(RECOVERY_FAILED in line for line in lines):
                raise pitr.PitrError("postgres stopped during recovery; its log says: %s. The data directory moved aside "
                                     "is untouched (state=rolled_back puts it back)" % (" | ".join(lines[-4:]) or why))
        if time.time() > deadline:
            raise pitr.PitrError("recovery did not finish within %d s; it may still be replaying WAL (see nself logs "
                                 "postgres); re-run to keep waiting, or raise the timeout" % params["timeout"])
        time.sleep(1)
    result["timeline"] = recovery.pg.value("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)") if not in_recovery else None
    result["in_recovery"] = in_recovery
    result["evidence"] = recovery.log_lines()
    left = [row[0] for row in recovery.pg.query(
        "SELECT name FROM pg_file_settings WHERE name IN (%s)" % ", ".join("'%s'" % k for k in pitr.RECOVERY_KEYS))]
    result["changed"] = bool(left)
    if check_mode or in_recovery:
        return
    if left:
        recovery.pg.query(*(["ALTER SYSTEM RESET %s" % key for key in sorted(set(left))] + ["SELECT pg_reload_conf()"]))
    marker = pitr.read_marker(recovery.data_dir, params["run_id"])
    pitr.record_recovery(recovery.base_dir, {
        "run_id": params["run_id"], "target": (marker or {}).get("target", "latest"), "base": (marker or {}).get("base"),
        "timeline": result["timeline"], "finished_at": isoformat(utcnow())})


if __name__ == "__main__":
    main()
