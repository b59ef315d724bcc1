#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: db_migration
short_description: Bring an nself project's database to a migration version, one verified step at a time
version_added: 0.1.0
description:
  - Rolls migrations back (or applies them) until the applied set ends at O(version), one migration per step, reading the
    tracking table again after every step. Already at O(version) is no change.
  - Works with nself's scheme (C(hasura/migrations/default/<version>_<name>/{up,down}.sql) tracked in
    C(public.schema_migrations)) and with the nFamily repo runner's (C(<NNN>_<name>.up.sql)/C(.down.sql) tracked in
    C(public._migrations)).
  - With O(method=direct) (the default) each migration file runs through C(psql -v ON_ERROR_STOP=1) in one transaction
    together with its tracking-table update, so a failing migration changes nothing and is not recorded. Files that
    manage their own transaction (C(BEGIN)/C(COMMIT)) run as written, and the tracking update follows only when they
    succeeded.
  - With O(method=nself) each step is C(nself db migrate down) answering its C(y/N) prompt (or C(migrate up) for the
    whole pending set, which nself cannot bound). nself runs the SQL without C(ON_ERROR_STOP), so only the tracking table
    can be checked afterwards; use it where nself must stay the only writer.
  - Take a backup before rolling back (the C(migration_rollback) role does).
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.postgres
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
    details: Returns the planned steps; runs nothing.
  diff_mode:
    support: none
options:
  version:
    description:
      - The migration that must be the last one applied. An exact version, the trailing digits of exactly one version
        (V(010) for C(1770000000010_notifications) or C(010_notifications)), or V(0) for none.
    type: str
    required: true
  direction:
    description: Refuse targets that need the other direction (V(down) for a rollback runbook). V(any) allows both.
    type: str
    choices: [any, down, up]
    default: any
  tracking:
    description: The tracking table. V(auto) uses the one the database has, and fails when it has both.
    type: str
    choices: [auto, schema_migrations, _migrations]
    default: auto
  migrations_dir:
    description:
      - Directory of the migration files. Defaults to C(hasura/migrations/default) of the project for C(schema_migrations)
        and to C(db/migrations) of the project for C(_migrations).
    type: path
  method:
    description: V(direct) runs each file with C(psql) in a transaction; V(nself) uses C(nself db migrate).
    type: str
    choices: [direct, nself]
    default: direct
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Roll back to migration 010
  nfamily.ops.db_migration:
    project_dir: /opt/nself-family/backend
    version: "010"
    direction: down
  register: rollback

- name: Apply every migration up to the newest
  nfamily.ops.db_migration:
    project_dir: /opt/nself-family/backend
    version: "1770000000013"
    direction: up
"""

RETURN = r"""
from_version:
  description: Last applied version before the run (0 when none).
  returned: always
  type: int
to_version:
  description: Last applied version after the run (the planned one in check mode).
  returned: always
  type: int
tracking:
  description: The tracking table used.
  returned: always
  type: str
steps:
  description: The steps done (or planned), in order.
  returned: always
  type: list
  elements: dict
  sample: [{"direction": "down", "version": 1770000000013, "name": "1770000000013_stream_gateway", "duration_s": 0.4}]
commands:
  description: The commands run (argv lists).
  returned: always
  type: list
  elements: list
"""

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _migrations as mg
from ansible_collections.nfamily.ops.plugins.module_utils._nself import NselfCLI, NselfError, nself_argument_spec
from ansible_collections.nfamily.ops.plugins.module_utils._pg import PostgresError, pg_argument_spec, project_database, quote_literal

TRANSACTION_CONTROL_RE = re.compile(r"^\s*(BEGIN|COMMIT|START\s+TRANSACTION|ROLLBACK|END)\s*;", re.I | re.M)
DEFAULT_DIRS = {"schema_migrations": "hasura/migrations/default", "_migrations": "db/migrations"}


def detect_tracking(pg, requested):
    present = pg.query("SELECT to_regclass('public.schema_migrations') IS NOT NULL, to_regclass('public._migrations') IS NOT NULL")[0]
    has = {"schema_migrations": present[0] == "t", "_migrations": present[1] == "t"}
    if requested != "auto":
        return requested
    if has["schema_migrations"] and has["_migrations"]:
        raise mg.MigrationError("the database has both schema_migrations (nself) and _migrations (repo runner); set tracking "
                                "to the one that is in use")
    return "_migrations" if has["_migrations"] else "schema_migrations"


def applied_versions(pg, tracking):
    if pg.value("SELECT to_regclass('public.%s') IS NOT NULL" % tracking) != "t":
        return []
    if tracking == "schema_migrations":
        return sorted(int(row[0]) for row in pg.query("SELECT version FROM public.schema_migrations"))
    versions = []
    for (name,) in pg.query("SELECT name FROM public._migrations"):
        match = mg.VERSION_RE.match(name)
        if not match:
            raise mg.MigrationError("_migrations holds %r, which has no numeric version prefix" % name)
        versions.append(int(match.group(1)))
    return sorted(versions)


def tracking_statement(tracking, direction, migration):
    if tracking == "schema_migrations":
        if direction == "down":
            return "DELETE FROM public.schema_migrations WHERE version = %d;" % migration.version
        return ("CREATE TABLE IF NOT EXISTS public.schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
                "applied_at TIMESTAMPTZ DEFAULT NOW()); INSERT INTO public.schema_migrations (version, name) VALUES (%d, %s);"
                % (migration.version, quote_literal(migration.name)))
    if direction == "down":
        return "DELETE FROM public._migrations WHERE name = %s;" % quote_literal(migration.name)
    return ("CREATE TABLE IF NOT EXISTS public._migrations (id SERIAL PRIMARY KEY, name TEXT UNIQUE NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now()); INSERT INTO public._migrations (name) VALUES (%s);"
            % quote_literal(migration.name))


def step_direct(pg, tracking, direction, migration):
    with open(getattr(migration, direction), "rb") as handle:
        sql = handle.read()
    statement = tracking_statement(tracking, direction, migration).encode()
    if TRANSACTION_CONTROL_RE.search(sql.decode("utf-8", "replace")):
        pg.feed_bytes(pg.psql_argv("-f", "-"), sql)  # the file commits itself; record only after it succeeded
        pg.query(statement.decode())
    else:
        pg.feed_bytes(pg.psql_argv("-1", "-f", "-"), sql + b"\n" + statement + b"\n")


def step_nself(cli, direction):
    if direction == "down":
        result = cli.run(["db", "migrate", "down"], answer="y\n")
    else:
        result = cli.run(["db", "migrate", "up"])
    return result


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(pg_argument_spec())
    argument_spec.update(
        version=dict(type="str", required=True),
        direction=dict(type="str", choices=["any", "down", "up"], default="any"),
        tracking=dict(type="str", choices=["auto", "schema_migrations", "_migrations"], default="auto"),
        migrations_dir=dict(type="path"),
        method=dict(type="str", choices=["direct", "nself"], default="direct"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if not os.path.isdir(params["project_dir"]):
        module.fail_json(msg="project_dir %s does not exist; set it to the nself project" % params["project_dir"])
    if not params["version"].strip().isdigit():
        module.fail_json(msg="version %r is not a number; give a migration version such as 010" % params["version"])
    pg, done = None, []
    try:
        pg = project_database(module)
        tracking = detect_tracking(pg, params["tracking"])
        if params["method"] == "nself" and tracking != "schema_migrations":
            raise mg.MigrationError("method=nself works only with schema_migrations; use method=direct for _migrations")
        directory = params["migrations_dir"] or os.path.join(params["project_dir"], DEFAULT_DIRS[tracking])
        migrations = mg.discover(tracking, directory)
        target = mg.resolve_target(params["version"], migrations)
        applied = applied_versions(pg, tracking)
        if target and target not in applied and params["direction"] == "down":
            raise mg.MigrationError("migration %s is not applied (applied up to %s); a rollback can only go to an applied "
                                    "version" % (target, max(applied) if applied else "none"))
        steps = mg.plan(migrations, applied, target)
        wrong = [m.name for d, m in steps if params["direction"] not in ("any", d)]
        if wrong:
            raise mg.MigrationError("reaching %s needs %s steps (%s) but direction is %s; nothing was changed"
                                    % (target, "up" if params["direction"] == "down" else "down", ", ".join(wrong), params["direction"]))
        result = dict(from_version=max(applied) if applied else 0, tracking=tracking, commands=pg.commands)
        planned = [{"direction": d, "version": m.version, "name": m.name} for d, m in steps]
        if module.check_mode or not steps:
            module.exit_json(changed=bool(steps), to_version=target if steps else result["from_version"], steps=planned, **result)
        if params["method"] == "nself" and any(d == "up" for d, _m in steps) and target != migrations[-1].version:
            raise mg.MigrationError("nself db migrate up applies every pending migration and cannot stop at %s; use "
                                    "method=direct" % target)
        cli = NselfCLI(module, params["project_dir"], params["nself_bin"], params["environment"]) if params["method"] == "nself" else None
        if cli and steps[0][0] == "up":
            steps = [("up", m) for d, m in steps if d == "up"]  # one `migrate up` applies them all
        for index, (direction, migration) in enumerate(steps):
            started = time.time()
            if cli:
                if direction == "down" or index == 0:
                    step_nself(cli, direction)
            else:
                step_direct(pg, tracking, direction, migration)
            now_applied = applied_versions(pg, tracking)
            if cli and direction == "up":
                expected = sorted(set(applied) | set(m.version for _d, m in steps))
            elif direction == "down":
                expected = sorted(set(applied) - {migration.version})
            else:
                expected = sorted(set(applied) | {migration.version})
            if now_applied != expected:
                raise mg.MigrationError("after %s of %s the tracking table shows %s, expected %s; stopped here (done: %s)"
                                        % (direction, migration.name, now_applied[-3:], expected[-3:], [s["name"] for s in done] or "none"))
            done.append({"direction": direction, "version": migration.version, "name": migration.name,
                         "duration_s": round(time.time() - started, 2)})
            if cli and direction == "up":
                applied = now_applied
                done.extend({"direction": "up", "version": m.version, "name": m.name, "duration_s": 0} for _d, m in steps[1:])
                break
            applied = now_applied
    except (mg.MigrationError, PostgresError, NselfError) as exc:
        module.fail_json(msg=str(exc), steps=done, commands=pg.commands if pg else [])
    module.exit_json(changed=True, to_version=max(applied) if applied else 0, steps=done, **result)


if __name__ == "__main__":
    main()
