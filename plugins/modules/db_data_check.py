#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: db_data_check
short_description: Check that the family's data survived a change - row counts not fallen, no broken foreign keys
version_added: 0.1.0
description:
  - Counts the rows of O(tables) in the nself project's database and compares them with O(baseline) (the row counts a
    backup's manifest holds, see M(nfamily.ops.db_backup)); a table with fewer rows than its baseline has fallen.
  - Checks every foreign key declared on O(tables) for rows that point at nothing (a migration that dropped or rewrote
    a parent table, or disabled triggers, can leave them); such rows are broken foreign keys.
  - C(ok) is false when a table fell or a foreign key is broken; the module itself never fails for that, so a
    deployment can decide (M(nfamily.ops.nself_traffic_info) is the same for traffic). Only reads.
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.postgres
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  tables:
    description: The tables to count and whose foreign keys are checked (C(schema.table)); missing ones are skipped.
    type: list
    elements: str
    default: [public.users, public.families, public.family_members, public.registered_devices, public.device_pairing_codes,
              public.audit_events, public.media_items, auth.refresh_tokens, auth.sessions]
  foreign_keys:
    description: Check the foreign keys of O(tables); V(false) only counts rows (a baseline for a later check).
    type: bool
    default: true
  baseline:
    description:
      - Row counts to compare with, by table (a backup manifest's C(row_counts)); only the tables of O(tables) are
        compared, and one of them the database no longer has counts as fallen to nothing. Empty compares nothing.
    type: dict
    default: {}
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Check the data against the pre-deploy backup
  nfamily.ops.db_data_check:
    project_dir: /opt/nself-family/backend
    baseline: "{{ pre_deploy_backup.backup.row_counts }}"
  register: data_check

- name: Stop when the family's data did not survive
  ansible.builtin.assert:
    that: data_check.ok
    fail_msg: "{{ data_check.problems | join('; ') }}"
"""

RETURN = r"""
ok:
  description: Whether no table fell below its baseline and no foreign key is broken.
  returned: always
  type: bool
row_counts:
  description: Rows per table now.
  returned: always
  type: dict
  sample: {"public.media_items": 5, "public.users": 9}
fallen:
  description: Tables with fewer rows than their baseline.
  returned: always
  type: list
  elements: dict
  sample: [{"table": "public.media_items", "before": 5, "now": 2}]
broken_foreign_keys:
  description: Foreign keys with rows that point at nothing.
  returned: always
  type: list
  elements: dict
  sample: [{"table": "public.media_items", "constraint": "media_items_family_id_fkey", "references": "public.families", "rows": 3}]
migrations:
  description: The last applied migration per tracking table (C(schema_migrations) version and name, C(_migrations) name).
  returned: always
  type: dict
  sample: {"schema_migrations": {"version": "1770000000013", "name": "stream_gateway", "applied": 13}}
problems:
  description: One line per fallen table and broken foreign key.
  returned: always
  type: list
  elements: str
commands:
  description: The commands run (argv lists).
  returned: always
  type: list
  elements: list
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils._nself import nself_argument_spec
from ansible_collections.nfamily.ops.plugins.module_utils._pg import (KEY_TABLES, PostgresError, pg_argument_spec,
                                                                      project_database, qualified, quote_literal)

# Each foreign key of the tables: name, table, referenced table, and a condition true for a row whose key points at
# nothing (every key column set, no referenced row), built in SQL from the catalog so names are quoted by the server.
FOREIGN_KEYS_SQL = """
SELECT c.conname, (SELECT format('%%I.%%I', n.nspname, r.relname) FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace
                   WHERE r.oid = c.conrelid),
       (SELECT format('%%I.%%I', n.nspname, r.relname) FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace
          WHERE r.oid = c.confrelid),
       (SELECT string_agg(format('t.%%I IS NOT NULL', a.attname), ' AND ') FROM unnest(c.conkey) k(att)
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att)
       || ' AND NOT EXISTS (SELECT 1 FROM ' || c.confrelid::regclass::text || ' p WHERE '
       || (SELECT string_agg(format('p.%%I = t.%%I', pa.attname, ca.attname), ' AND ')
             FROM unnest(c.conkey, c.confkey) k(child, parent)
             JOIN pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.child
             JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.parent) || ')'
FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid = ANY(ARRAY[%s]::regclass[]) ORDER BY 2, 1
"""


def foreign_keys(pg, tables):
    return pg.query(FOREIGN_KEYS_SQL % ", ".join(quote_literal(qualified(t)) for t in tables)) if tables else []


def broken(pg, keys):
    """[(name, table, referenced, rows)] of the foreign keys with rows that point at nothing, counted in one query."""
    if not keys:
        return []
    sql = " UNION ALL ".join("SELECT %d, count(*) FROM %s t WHERE %s" % (i, table, condition)
                             for i, (_name, table, _ref, condition) in enumerate(keys))
    counts = dict((int(row[0]), int(row[1])) for row in pg.query(sql))
    return [(keys[i][0], keys[i][1], keys[i][2], rows) for i, rows in sorted(counts.items()) if rows]


def judge(tables, baseline, counts, bad_keys):
    """The tables checked that fell below their baseline (one the database no longer has fell to nothing),
    and one problem line for each of those and each broken foreign key."""
    fallen = []
    for table, before in sorted((t, n) for t, n in baseline.items() if t in tables):
        now = counts.get(table, 0)
        if now < int(before):
            fallen.append({"table": table, "before": int(before), "now": now})
    problems = ["%s has %d rows, %d before" % (f["table"], f["now"], f["before"]) for f in fallen]
    problems += ["%s: %d row(s) of %s point at no row of %s" % (name, rows, table, ref) for name, table, ref, rows in bad_keys]
    return fallen, problems


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(pg_argument_spec())
    argument_spec.update(
        tables=dict(type="list", elements="str", default=[t for t in KEY_TABLES if not t.endswith("migrations")]),
        baseline=dict(type="dict", default={}),
        foreign_keys=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    pg = None
    try:
        pg = project_database(module)
        tables = pg.existing_tables(module.params["tables"])
        counts = pg.row_counts(tables)
        bad_keys = broken(pg, foreign_keys(pg, tables)) if module.params["foreign_keys"] else []
        migrations = pg.migration_state()
    except PostgresError as exc:
        module.fail_json(msg=str(exc), commands=pg.commands if pg else [])
    fallen, problems = judge(module.params["tables"], module.params["baseline"], counts, bad_keys)
    module.exit_json(changed=False, ok=not problems, row_counts=counts, migrations=migrations, fallen=fallen, problems=problems, commands=pg.commands,
                     broken_foreign_keys=[{"constraint": n, "table": t, "references": r, "rows": c} for n, t, r, c in bad_keys])


if __name__ == "__main__":
    main()
