#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: db_backup
short_description: Take a verified, compressed backup of an nself project's database, with a manifest and retention
version_added: 0.1.0
description:
  - Dumps C(POSTGRES_DB) with C(pg_dump -Fc) run inside the postgres container (compressed, restorable in parallel with
    C(pg_restore -j)), streamed to a partial file on the host in 1 MiB chunks, so memory does not grow with the database.
  - Row counts of the key tables, the migration state and the server version are read in the same exported snapshot
    as the dump, so they describe exactly the data in the backup.
  - The archive is verified (its table of contents must hold data for every counted table; V(full) also reads every data
    block) before the partial file is renamed. The manifest C(<file>.manifest.json) is written last, atomically, with
    mode 0600; a backup without a manifest is not a backup for M(nfamily.ops.db_restore) or for retention.
  - Retention then removes this module's older backups beyond O(keep_count) or older than O(keep_days); the newest backup
    is never removed. Other files in O(dest) (for example C(nself db backup)'s C(.sql) files) are never touched.
  - Before the dump, partial files of killed backups that no process holds open any more are removed, so a night whose
    backup was killed or ran out of space never keeps the next one from having room.
  - With O(offsite), the bucket must take a write (an empty probe object under the prefix, put and then removed) before
    the dump starts, since MinIO refuses a copy into a missing bucket only after the whole dump was taken; check mode
    asks whether it exists. The copy needs C(s3:PutObject) and C(s3:GetObject)/C(HeadObject) on the prefix; a key that
    may not delete leaves the probe object, with a warning. When the copy fails after the dump all the same, the local
    backup is kept and the failure says so.
  - This replaces C(nself db backup), which writes uncompressed plain SQL, drops pg_dump's errors and dies without a
    file name on nself 0.9.9.
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.postgres
  - nfamily.ops.offsite
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
    details: Reports the backup it would take and the backups retention would remove; writes nothing.
  diff_mode:
    support: none
options:
  dest:
    description: Directory of the backups on the host. Defaults to the project's C(backups/) directory.
    type: path
  name:
    description: File name of the backup. Defaults to C(<POSTGRES_DB>_<UTC time>.dump). An existing file is never overwritten.
    type: str
  compress:
    description: pg_dump compression level (0 to 9); pg_dump's default when not set.
    type: int
  key_tables:
    description: Tables (C(schema.table)) whose row counts go into the manifest; missing tables are left out.
    type: list
    elements: str
    default: [public.users, public.families, public.family_members, public.registered_devices, public.device_pairing_codes,
              public.audit_events, public.media_items, auth.refresh_tokens, auth.sessions, public.schema_migrations,
              public._migrations]
  verify:
    description: V(toc) checks the archive's table of contents; V(full) also decompresses every data block.
    type: str
    choices: [toc, full]
    default: toc
  keep_count:
    description: Keep this many of the newest backups (0 keeps all).
    type: int
    default: 0
  keep_days:
    description: Remove backups older than this many days (0 keeps all).
    type: int
    default: 0
  required_free:
    description:
      - Bytes that must be free in O(dest) before the dump starts. Defaults to half the database's size on disk
        (a compressed custom-format dump is usually well under that).
    type: int
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Nightly backup, keep two weeks
  nfamily.ops.db_backup:
    project_dir: /opt/nself-family/backend
    keep_count: 14
    keep_days: 14
  register: backup

- name: Nightly backup with an offsite copy in the project's MinIO
  nfamily.ops.db_backup:
    project_dir: /opt/nself-family/backend
    keep_count: 14
    offsite:
      bucket: nf-backups
      prefix: db/

- name: Backup before a migration, fully verified
  nfamily.ops.db_backup:
    project_dir: /opt/nself-family/backend
    name: before-migration-1770000000013.dump
    verify: full
"""

RETURN = r"""
backup:
  description: The manifest of the backup taken (in check mode, the planned path only).
  returned: always
  type: dict
  contains:
    path:
      description: The backup file.
      type: str
    manifest:
      description: Its manifest file.
      type: str
    sha256:
      description: Checksum of the file.
      type: str
    size:
      description: Bytes.
      type: int
    format:
      description: Always C(pg_dump-custom).
      type: str
    server_version:
      description: PostgreSQL server version.
      type: str
    migrations:
      description: Latest applied migration per tracking table (C(schema_migrations), C(_migrations)).
      type: dict
    row_counts:
      description: Row counts of the key tables in the backup's snapshot.
      type: dict
    duration_s:
      description: Seconds the backup took.
      type: int
    offsite:
      description:
        - Bucket, key, size and upload seconds of the offsite copy, when O(offsite) was given, and its C(encryption)
          (algorithm and key id) unless O(offsite.allow_plaintext) sent it unencrypted.
      type: dict
  sample: {"path": "/opt/nself-family/backend/backups/nself_family_20261127T020000Z.dump", "size": 81234,
           "sha256": "3f1c...", "format": "pg_dump-custom", "row_counts": {"public.users": 9}}
pruned:
  description: Backups retention removed (or would remove in check mode).
  returned: always
  type: list
  elements: str
removed_partials:
  description: Partial files of killed backups that were removed (or would be, in check mode).
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
from ansible_collections.nfamily.ops.plugins.module_utils import _offsite as offsite
from ansible_collections.nfamily.ops.plugins.module_utils import _offsite_key as offsite_key
from ansible_collections.nfamily.ops.plugins.module_utils import _s3 as s3lib
from ansible_collections.nfamily.ops.plugins.module_utils._nself import nself_argument_spec
from ansible_collections.nfamily.ops.plugins.module_utils._pg import KEY_TABLES, PostgresError, pg_argument_spec, project_database


def argument_spec():
    spec = nself_argument_spec()
    spec.update(pg_argument_spec())
    spec.update(
        dest=dict(type="path"),
        name=dict(type="str"),
        compress=dict(type="int"),
        key_tables=dict(type="list", elements="str", default=list(KEY_TABLES), no_log=False),
        verify=dict(type="str", choices=["toc", "full"], default="toc"),
        keep_count=dict(type="int", default=0),
        keep_days=dict(type="int", default=0),
        required_free=dict(type="int"),
        offsite=s3lib.offsite_argument_spec(),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if not os.path.isdir(params["project_dir"]):
        module.fail_json(msg="project_dir %s does not exist; set it to the nself project" % params["project_dir"])
    for option in ("keep_count", "keep_days"):
        if params[option] < 0:
            module.fail_json(msg="%s must be 0 (keep all) or more" % option)
    if params["compress"] is not None and not 0 <= params["compress"] <= 9:
        module.fail_json(msg="compress must be between 0 and 9")
    dest = params["dest"] or os.path.join(params["project_dir"], "backups")
    now = bk.utcnow()
    pg = None
    try:
        pg = project_database(module)
        name = bk.check_name(params["name"] or bk.default_name(pg.database, now))
        path = os.path.join(dest, name)
        if os.path.exists(path):
            raise bk.BackupError("%s already exists; backups are never overwritten, choose another name" % path)
        partials = files.abandoned_partials(dest)
        if not module.check_mode:
            for partial in partials:
                os.unlink(partial)
        required = params["required_free"] if params["required_free"] is not None else pg.database_size() // 2
        free = disk.free_bytes(dest) + (sum(os.path.getsize(p) for p in partials) if module.check_mode else 0)
        if free < required:
            raise bk.BackupError("%s has %s free; the backup needs about %s. Free space, or set required_free"
                                 % (dest, disk.mib(free), disk.mib(required)))
        s3 = sealer = None
        if params["offsite"]:  # before the dump: a missing or read-only bucket would refuse the copy after it
            sealer = offsite_key.from_offsite(params["offsite"])
            if sealer is None:
                module.warn("offsite.allow_plaintext: the copy goes up unencrypted and its manifest unsigned")
            settings = s3lib.settings_from_env(pg.env, params["offsite"])
            s3 = s3lib.client(settings)
            try:
                for warning in s3lib.require_writable(s3, params["offsite"]["bucket"], params["offsite"]["prefix"],
                                                      settings["endpoint_url"], probe=not module.check_mode):
                    module.warn(warning)
            except s3lib.S3Error as exc:
                raise s3lib.S3Error("offsite copy: %s. Nothing was dumped" % exc)
        if module.check_mode:
            planned = [{"finished_at": bk.isoformat(now), "file": name}] + bk.catalogue(dest)
            doomed = bk.prune_plan(planned, params["keep_count"], params["keep_days"], now)
            module.exit_json(changed=True, backup={"path": path}, pruned=[e["path"] for e in doomed],
                             removed_partials=partials, commands=pg.commands)
        files.ensure_dir(dest)
        manifest = bk.take_backup(pg, dest, name, params["key_tables"], params["verify"], params["compress"])
        if s3:
            try:
                manifest["offsite"] = offsite.copy(s3lib, s3, manifest, params["offsite"]["bucket"], params["offsite"]["prefix"],
                                                   sealer)
            except s3lib.S3Error as exc:
                raise s3lib.S3Error("%s. The local backup %s is kept (sha256 %s) without an offsite copy; fix the store, "
                                    "and the next backup is copied" % (exc, manifest["path"], manifest["sha256"]))
        doomed = bk.prune_plan(bk.catalogue(dest), params["keep_count"], params["keep_days"], bk.utcnow())
        pruned, refusals = bk.remove_backups(doomed)
    except (bk.BackupError, PostgresError, s3lib.S3Error, offsite_key.OffsiteKeyError) as exc:
        module.fail_json(msg=str(exc), commands=pg.commands if pg else [])
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot write the backup in %s: %s" % (dest, exc))
    if refusals:
        module.fail_json(msg="retention: %s. The backup %s was taken and verified" % ("; ".join(refusals), manifest["path"]),
                         changed=True, backup=manifest, pruned=pruned, removed_partials=partials, commands=pg.commands)
    module.exit_json(changed=True, backup=manifest, pruned=pruned, removed_partials=partials, commands=pg.commands)


if __name__ == "__main__":
    main()
