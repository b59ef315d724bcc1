#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: db_wal_archive
short_description: Turn continuous WAL archiving of an nself project's PostgreSQL on or off, and prove that it works
version_added: 0.1.0
description:
  - Point-in-time recovery needs every WAL segment since a base backup. This module archives them into a host directory,
    O(archive_dir), which C(docker-compose.override.yml) bind-mounts into the postgres container at O(archive_mount)
    (nself passes that file to every compose call). An existing override file is merged, with a backup of it kept.
  - It sets C(archive_mode), C(archive_command) and C(archive_timeout) with C(ALTER SYSTEM) (C(wal_level) too when it
    is C(minimal)), and reloads the configuration. C(archive_mode) and a new mount only take effect when the postgres
    container is recreated; the module then returns RV(restart_required) and changes nothing else. Restart the stack
    with M(nfamily.ops.nself_service) (V(restarted), no services), then run this module again.
  - When nothing waits for a restart, V(enabled) proves that the archive works, without trusting settings alone. A probe file
    written on the host must be visible in the container, and a forced WAL switch must land in O(archive_dir) as a file.
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.postgres
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
    details: Reports the settings and the override file it would change, with a diff; writes nothing.
  diff_mode:
    support: full
    details: The override file this module writes new, or only the mount it adds to an existing one (which may hold
      secrets in C(environment)).
options:
  state:
    description: V(enabled) archives WAL; V(disabled) sets C(archive_mode=off) (the mount and the archive stay).
    type: str
    choices: [enabled, disabled]
    default: enabled
  archive_dir:
    description: The host directory of the archive. Defaults to C(<project_dir>/backups/wal).
    type: path
  archive_mount:
    description: Where the archive is mounted in the postgres container.
    type: path
    default: /var/lib/postgresql/wal_archive
  archive_timeout:
    description:
      - Seconds after which PostgreSQL archives a segment even when it is not full. It bounds how much committed data a
        lost server can take with it.
    type: int
    default: 60
  verify_timeout:
    description: Seconds to wait for the switched WAL segment to appear in the archive.
    type: int
    default: 60
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Enable WAL archiving
  nfamily.ops.db_wal_archive:
    project_dir: /opt/nself-family/backend
  register: archive

- name: Recreate the containers when the archive mount or archive_mode needs it
  nfamily.ops.nself_service:
    project_dir: /opt/nself-family/backend
    state: restarted
  when: archive.restart_required

- name: Check that archiving now works
  nfamily.ops.db_wal_archive:
    project_dir: /opt/nself-family/backend
  when: archive.restart_required
"""

RETURN = r"""
restart_required:
  description: Whether the postgres container must be recreated before the settings take effect.
  returned: always
  type: bool
settings:
  description: The archive settings as they are (or will be after the restart).
  returned: always
  type: dict
  sample: {"archive_mode": "on", "archive_timeout": "60", "wal_level": "replica"}
override:
  description: The compose override file and whether it was (or would be) changed; C(backup) is the copy of the old one.
  returned: always
  type: dict
verified_segment:
  description: The WAL segment that was switched and found in the archive (V(enabled), when no restart is required).
  returned: when verified
  type: str
archiver:
  description: C(pg_stat_archiver) after the run (counts, last archived and last failed segment and time).
  returned: always
  type: dict
archive_dir:
  description: The host directory of the archive.
  returned: always
  type: str
commands:
  description: The commands run (argv lists).
  returned: always
  type: list
  elements: list
"""

import os
import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _files as files
from ansible_collections.nfamily.ops.plugins.module_utils import _pitr as pitr
from ansible_collections.nfamily.ops.plugins.module_utils._nself import nself_argument_spec
from ansible_collections.nfamily.ops.plugins.module_utils._pg import PostgresError, pg_argument_spec, project_database, quote_literal
from ansible_collections.nfamily.ops.plugins.module_utils._runbook import isoformat, utcnow


def argument_spec():
    spec = nself_argument_spec()
    spec.update(pg_argument_spec())
    spec.update(
        state=dict(type="str", choices=["enabled", "disabled"], default="enabled"),
        archive_dir=dict(type="path"),
        archive_mount=dict(type="path", default=pitr.ARCHIVE_MOUNT),
        archive_timeout=dict(type="int", default=60),
        verify_timeout=dict(type="int", default=60),
    )
    return spec


def wanted_settings(params):
    if params["state"] == "disabled":
        return {"archive_mode": "off"}
    return {"archive_mode": "on", "archive_command": pitr.archive_command(params["archive_mount"]),
            "archive_timeout": str(params["archive_timeout"])}


def read_settings(pg, names):
    """{name: (running value, value in the config files, pending_restart)}."""
    listed = ", ".join(quote_literal(n) for n in names)
    rows = pg.query("SELECT s.name, s.setting, coalesce(f.setting, ''), s.pending_restart FROM pg_settings s "
                    "LEFT JOIN LATERAL (SELECT setting FROM pg_file_settings fs WHERE fs.name = s.name "
                    "ORDER BY fs.seqno DESC LIMIT 1) f ON true WHERE s.name IN (%s)" % listed)
    return dict((row[0], (row[1], row[2] or row[1], row[3] == "t")) for row in rows)


def mount_visible(pg, archive_dir, mount):
    """A probe written on the host must be visible at the mount inside the container."""
    probe = ".nfamily_probe_%s" % uuid.uuid4().hex[:12]
    path = os.path.join(archive_dir, probe)
    open(path, "w").close()
    try:
        pg.run(["test", "-f", "%s/%s" % (mount, probe)])
        return True
    except PostgresError:
        return False
    finally:
        os.unlink(path)


def plan_override(params, archive_dir):
    path = os.path.join(params["project_dir"], pitr.OVERRIDE_FILE)
    current = None
    if os.path.exists(path):
        with open(path) as handle:
            current = handle.read()
    source = pitr.compose_source(params["project_dir"], archive_dir)
    new = pitr.override_text(current, params["postgres_service"], source, params["archive_mount"])
    return path, current, new


def override_diff(path, current, new, service, source, mount):
    """The override's change for --diff: the whole file when the module writes it new, else only the mount
    it adds. An existing override may carry `environment:` secrets, and AWX keeps every result."""
    if current is None:
        return {"before": "", "after": new, "before_header": path, "after_header": path}
    return {"before": "", "after": "services:\n  %s:\n    volumes:\n      - %s:%s\n" % (service, source, mount),
            "before_header": "%s (only the mount added; the rest is kept as it is, and not shown)" % path,
            "after_header": path}


def write_override(path, current, new):
    """Replace the override file atomically (its mode and owner kept; 0644 for a new one), after a backup."""
    backup = files.backup_copy(path, utcnow()) if current is not None else None
    mode = os.stat(path).st_mode & 0o777 if current is not None else 0o644
    files.write_atomic(path, new, mode)
    return backup


def ensure_archive_dir(pg, archive_dir):
    """The archive directory, owned by the server's user (the owner of its data directory)."""
    owner = pg.run(["stat", "-c", "%u:%g", pg.value("SHOW data_directory")]).strip()
    uid, gid = [int(part) for part in owner.split(":")]
    changed = False
    if not os.path.isdir(archive_dir):
        os.makedirs(archive_dir, 0o700)
        changed = True
    status = os.stat(archive_dir)
    if (status.st_uid, status.st_gid) != (uid, gid):
        os.chown(archive_dir, uid, gid)
        changed = True
    return changed


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    for option in ("archive_timeout", "verify_timeout"):
        if params[option] < 1:
            module.fail_json(msg="%s must be at least 1 second" % option)
    try:
        pitr.check_mount(params["archive_mount"])
    except pitr.PitrError as exc:
        module.fail_json(msg=str(exc))
    archive_dir = params["archive_dir"] or os.path.join(params["project_dir"], "backups", "wal")
    result = dict(changed=False, restart_required=False, archive_dir=archive_dir, override={})
    pg = None
    try:
        pg = project_database(module)
        wanted = wanted_settings(params)
        current = read_settings(pg, list(wanted) + ["wal_level"])
        if params["state"] == "enabled" and current["wal_level"][1] == "minimal":
            wanted["wal_level"] = "replica"
        to_alter = dict((k, v) for k, v in wanted.items() if current[k][1] != v)
        override_path, override_before, override_after = None, None, None
        if params["state"] == "enabled":
            override_path, override_before, override_after = plan_override(params, archive_dir)
        result["override"] = {"path": override_path, "changed": override_after is not None}
        if override_after is not None:
            result["diff"] = override_diff(override_path, override_before, override_after, params["postgres_service"],
                                           pitr.compose_source(params["project_dir"], archive_dir), params["archive_mount"])
        restart_keys = ("archive_mode", "wal_level")
        pending = [k for k in restart_keys if k in wanted and (k in to_alter or current[k][0] != wanted[k])]
        result["restart_required"] = bool(pending) or override_after is not None
        result["changed"] = bool(to_alter) or override_after is not None
        result["settings"] = dict((k, wanted.get(k, current[k][1])) for k in current)
        if module.check_mode:
            result.update(archiver=pitr.archiver(pg), commands=pg.commands)
            module.exit_json(**result)
        if params["state"] == "enabled":
            result["changed"] |= ensure_archive_dir(pg, archive_dir)
        if override_after is not None:
            result["override"]["backup"] = write_override(override_path, override_before, override_after)
        if to_alter:
            pg.query(*(["ALTER SYSTEM SET %s = %s" % (k, quote_literal(v)) for k, v in sorted(to_alter.items())]
                       + ["SELECT pg_reload_conf()"]))
        if params["state"] == "enabled" and not result["restart_required"]:
            if not mount_visible(pg, archive_dir, params["archive_mount"]):
                result["restart_required"] = True
                result["msg"] = ("%s is not mounted at %s in the postgres container; recreate the containers (nself stop, "
                                 "nself start), then re-run" % (archive_dir, params["archive_mount"]))
            else:
                result["verified_segment"] = pitr.switch_and_wait(pg, archive_dir, params["verify_timeout"])
                result["verified_at"] = isoformat(utcnow())
        result.update(archiver=pitr.archiver(pg), commands=pg.commands)
    except (PostgresError, pitr.PitrError) as exc:
        module.fail_json(msg=str(exc), commands=pg.commands if pg else [])
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot prepare the WAL archive %s: %s" % (archive_dir, exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
