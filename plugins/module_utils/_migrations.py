# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""The two migration schemes an nFamily database may carry (nfamily-backend.md §2.3, nself-cli.md §3):

- nself's: `hasura/migrations/default/<version>_<name>/{up,down}.sql`, tracked in
  `public.schema_migrations(version BIGINT PK, name TEXT, applied_at)`;
- the repo runner's: `<dir>/<NNN>_<name>.up.sql` / `.down.sql`, tracked in
  `public._migrations(id SERIAL, name TEXT UNIQUE, applied_at)` (name = basename without `.up.sql`).

A Migration has a numeric version (the digits before the first `_`), a name, and its files.
Planning a move to a target version is pure logic, kept here so it can be tested alone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
from collections import namedtuple

Migration = namedtuple("Migration", ["version", "name", "up", "down"])

SCHEMES = {
    "schema_migrations": {"dir": "hasura/migrations/default", "table": "public.schema_migrations"},
    "_migrations": {"dir": "backend/db/migrations", "table": "public._migrations"},
}
VERSION_RE = re.compile(r"^(\d+)_")


class MigrationError(Exception):
    """A target or a migration directory that cannot be used."""


def discover(scheme, directory):
    """Migrations found in directory, sorted by version. Raises MigrationError on duplicates."""
    if not os.path.isdir(directory):
        raise MigrationError("the migrations directory %s does not exist; set migrations_dir" % directory)
    paths = []
    for entry in sorted(os.listdir(directory)):
        if os.path.isdir(os.path.join(directory, entry)):
            paths.append(entry + "/")
            paths.extend("%s/%s" % (entry, name) for name in ("up.sql", "down.sql") if os.path.isfile(os.path.join(directory, entry, name)))
        elif os.path.isfile(os.path.join(directory, entry)):
            paths.append(entry)
    return from_paths(scheme, paths, directory)


def from_paths(scheme, paths, directory):
    """Migrations named by file paths relative to the migrations directory (a listing of it, or of a git
    revision's tree), sorted by version; their up/down are joined to directory. Raises MigrationError on
    duplicates."""
    present = set(paths)
    found = []
    if scheme == "schema_migrations":
        for entry in sorted(set(p.split("/", 1)[0] for p in paths if "/" in p and VERSION_RE.match(p))):
            files = [os.path.join(directory, entry, name) if "%s/%s" % (entry, name) in present else None for name in ("up.sql", "down.sql")]
            found.append(Migration(int(VERSION_RE.match(entry).group(1)), entry, files[0], files[1]))
    else:
        for entry in sorted(p for p in paths if "/" not in p and p.endswith(".up.sql") and VERSION_RE.match(p)):
            name = entry[:-len(".up.sql")]
            down = name + ".down.sql"
            found.append(Migration(int(VERSION_RE.match(entry).group(1)), name, os.path.join(directory, entry),
                                   os.path.join(directory, down) if down in present else None))
    versions = [m.version for m in found]
    duplicates = sorted(set(v for v in versions if versions.count(v) > 1))
    if duplicates:
        raise MigrationError("several migrations share version %s in %s; fix the directory first"
                             % (", ".join(str(v) for v in duplicates), directory))
    return sorted(found, key=lambda m: m.version)


def resolve_target(target, migrations):
    """The version a target names: `0` (nothing applied), an exact version, or the trailing digits of
    exactly one version (`010` for 1770000000010 or 010_name). Raises MigrationError otherwise."""
    text = str(target).strip()
    if not text.isdigit():
        raise MigrationError("target version %r is not a number; give a migration version such as 010 or %s"
                             % (target, migrations[-1].version if migrations else "1770000000010"))
    if int(text) == 0:
        return 0
    exact = [m for m in migrations if m.version == int(text)]
    if exact:
        return exact[0].version
    suffix = [m for m in migrations if str(m.version).endswith(text) or m.name.startswith(text + "_")]
    if len(suffix) == 1:
        return suffix[0].version
    if len(suffix) > 1:
        raise MigrationError("target %s matches several migrations (%s); give the full version"
                             % (text, ", ".join(m.name for m in suffix)))
    raise MigrationError("no migration has version %s (known: %s)" % (text, ", ".join(m.name for m in migrations) or "none"))


def plan(migrations, applied, target):
    """Steps [(direction, Migration)] from the applied versions to target: down from the highest
    applied above target, or up through the pending ones up to target."""
    by_version = dict((m.version, m) for m in migrations)
    unknown = sorted(v for v in applied if v not in by_version)
    above = sorted((v for v in applied if v > target), reverse=True)
    if [v for v in above if v in unknown]:
        raise MigrationError("applied migrations %s have no files in the migrations directory; cannot roll them back"
                             % ", ".join(str(v) for v in unknown if v > target))
    steps = [("down", by_version[v]) for v in above]
    steps += [("up", m) for m in migrations if m.version <= target and m.version not in applied]
    for direction, migration in steps:
        if getattr(migration, direction) is None:
            raise MigrationError("%s has no %s migration file; nothing was changed" % (migration.name, direction))
    return steps
