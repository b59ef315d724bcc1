# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""Revoking nFamily credentials in one transaction: devices (nfamily-backend.md §2.2: the real
table has is_revoked and credential, the runbook's has a status column), refresh tokens and
sessions (auth schema), with one immutable audit_events row per run that changed something.

Values from the operator never become SQL text. psql in the container has no bind parameters
before version 16, so they travel the way COPY data does: loaded into a temporary parameter table
from the COPY data stream (which the SQL parser never sees) and read from there by statements
that are constant text. The counts come from the rows the statements really changed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.nfamily.ops.plugins.module_utils._pg import PostgresError, project_database

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
PARAMS_TABLE = "nfamily_ops_params"
DEVICE_TABLE = "public.registered_devices"


class RevocationError(Exception):
    """Input or schema that a revocation cannot work with; the message says what to do."""


def check_uuid(kind, value):
    if not isinstance(value, str) or not UUID_RE.match(value):
        raise RevocationError("%s %r is not a UUID (8-4-4-4-12 hex digits); nothing was changed" % (kind, value))
    return value.lower()


def copy_escape(value):
    """A value in COPY's text format: backslash, tab, newline and carriage return escaped."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def script(params, statement, commit):
    """The psql script: a transaction that loads params ([(kind, value)]) through COPY, runs the
    statement (which prints one JSON row), and commits or (check mode) rolls back."""
    lines = ["BEGIN;",
             "CREATE TEMP TABLE %s (kind text NOT NULL, value text NOT NULL) ON COMMIT DROP;" % PARAMS_TABLE,
             "COPY %s (kind, value) FROM STDIN;" % PARAMS_TABLE]
    lines += ["%s\t%s" % (kind, copy_escape(value)) for kind, value in params]
    lines += ["\\.", statement.strip().rstrip(";") + ";", "COMMIT;" if commit else "ROLLBACK;"]
    return ("\n".join(lines) + "\n").encode("utf-8")


def run(pg, params, statement, commit):
    """Run the statement in one transaction; returns its JSON result."""
    out, _err = pg.feed_bytes(pg.psql_argv(), script(params, statement, commit))
    rows = [line for line in out.splitlines() if line.strip()]
    try:
        return json.loads(rows[-1])
    except (IndexError, ValueError):
        raise PostgresError("the revocation printed no result: %s" % out.strip()[-300:])


def param(kind):
    return "(SELECT value FROM %s WHERE kind = '%s')" % (PARAMS_TABLE, kind)


def param_array(kind, cast):
    return "ARRAY(SELECT value::%s FROM %s WHERE kind = '%s')" % (cast, PARAMS_TABLE, kind)


def columns(pg, table):
    schema, name = table.split(".")
    return set(row[0] for row in pg.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = '%s' AND table_name = '%s'" % (schema, name)))


def auth_database(module, tokens_needed_for):
    """(database, audited) of the module's project. With tokens_needed_for (what needs them), the
    auth tables must exist; without public.audit_events the revocation runs unaudited, with a warning."""
    pg = project_database(module)
    present = set(pg.existing_tables(["public.audit_events", "auth.refresh_tokens", "auth.sessions"]))
    if tokens_needed_for and not {"auth.refresh_tokens", "auth.sessions"} <= present:
        raise RevocationError("%s needs auth.refresh_tokens and auth.sessions, which this database lacks; check the project "
                              "and POSTGRES_DB" % tokens_needed_for)
    audited = "public.audit_events" in present
    if not audited:
        module.warn("public.audit_events does not exist: this revocation is not audited in the database")
    return pg, audited


def device_schema(pg):
    """How this database marks a revoked device: {"revoked": SQL condition of a revoked device,
    "set": SET list, "still_live": condition of a row the revocation would change}."""
    cols = columns(pg, DEVICE_TABLE)
    if not cols:
        raise RevocationError("%s does not exist in this database; check the project and POSTGRES_DB" % DEVICE_TABLE)
    clear = [c for c in ("credential",) if c in cols]
    if "is_revoked" in cols:
        sets, live = ["is_revoked = true"], ["NOT d.is_revoked"]
        kind = "is_revoked"
    elif "status" in cols:
        sets, live = ["status = 'revoked'"], ["d.status IS DISTINCT FROM 'revoked'"]
        kind = "status"
    else:
        raise RevocationError("%s has neither is_revoked nor status; this schema is not one nfamily.ops knows" % DEVICE_TABLE)
    sets += ["%s = NULL" % c for c in clear]
    live += ["d.%s IS NOT NULL" % c for c in clear]
    return {"kind": kind, "columns": cols, "set": sets, "live": live}


def device_statement(schema, clear_bootstrap, revoke_tokens, audit):
    """The revocation of the devices in scope (family, ids, names from the parameter table)."""
    sets, live = list(schema["set"]), list(schema["live"])
    if clear_bootstrap and "bootstrap_token" in schema["columns"]:
        sets.append("bootstrap_token = NULL")
        live.append("d.bootstrap_token IS NOT NULL")
    if "updated_at" in schema["columns"]:
        sets.append("updated_at = now()")  # also where the trigger function is missing (nfamily-backend.md §2.4)
    parts = ["p AS (SELECT %s::uuid AS family_id, %s AS device_ids, %s AS device_names, %s AS run_id)"
             % (param("family"), param_array("device", "uuid"), param_array("name", "text"), param("run")),
             "target AS (SELECT d.id FROM %s d, p WHERE (p.family_id IS NULL OR d.family_id = p.family_id) "
             "AND (cardinality(p.device_ids) = 0 OR d.id = ANY(p.device_ids)) "
             "AND (cardinality(p.device_names) = 0 OR d.device_name = ANY(p.device_names)))" % DEVICE_TABLE,
             "revoked AS (UPDATE %s d SET %s FROM target t WHERE d.id = t.id AND (%s) "
             "RETURNING d.id, d.family_id, d.user_id, d.device_name, d.device_type)" % (DEVICE_TABLE, ", ".join(sets), " OR ".join(live))]
    parts += token_parts("SELECT user_id FROM revoked", revoke_tokens)
    if audit:
        parts.append(
            "audit AS (INSERT INTO public.audit_events (family_id, event_type, subject_type, subject_id, old_state, new_state, user_agent) "
            "SELECT (SELECT family_id FROM p), 'devices.revoked', 'registered_devices', "
            "coalesce((SELECT family_id FROM p)::text, 'devices'), "
            "jsonb_build_object('devices', (SELECT jsonb_agg(id ORDER BY id) FROM revoked)), "
            "jsonb_build_object('revoked', (SELECT count(*) FROM revoked), 'refresh_tokens_revoked', (SELECT count(*) FROM tokens), "
            "'sessions_deactivated', (SELECT count(*) FROM sessions), 'run_id', (SELECT run_id FROM p)), "
            "'nfamily.ops device_revocation' WHERE EXISTS (SELECT 1 FROM revoked) RETURNING id)")
    return ("WITH " + ", ".join(parts) + " SELECT json_build_object("
            "'family_exists', (SELECT p.family_id IS NULL OR EXISTS (SELECT 1 FROM public.families f WHERE f.id = p.family_id) FROM p), "
            "'matched', (SELECT count(*) FROM target), "
            "'revoked', coalesce((SELECT json_agg(json_build_object('id', id, 'family_id', family_id, 'user_id', user_id, "
            "'name', device_name, 'type', device_type) ORDER BY device_name, id) FROM revoked), '[]'::json), "
            "'refresh_tokens_revoked', (SELECT count(*) FROM tokens), 'sessions_deactivated', (SELECT count(*) FROM sessions), "
            "'audit_event', %s)" % ("(SELECT id FROM audit)" if audit else "NULL"))


def token_parts(users_sql, revoke):
    """CTEs `tokens` and `sessions`: refresh tokens revoked and sessions deactivated for the users
    users_sql selects (NULL for every user); empty CTEs when revoke is false."""
    if not revoke:
        return ["tokens AS (SELECT NULL::uuid AS id, NULL::uuid AS user_id WHERE false)",
                "sessions AS (SELECT NULL::uuid AS id, NULL::uuid AS user_id WHERE false)"]
    scope = "true" if users_sql is None else "user_id IN (%s)" % users_sql
    return ["tokens AS (UPDATE auth.refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND %s "
            "RETURNING id, user_id)" % scope,
            "sessions AS (UPDATE auth.sessions SET is_active = false WHERE is_active AND %s RETURNING id, user_id)" % scope]


def session_statement(all_users, audit):
    """Refresh tokens revoked and sessions deactivated for every user, or for the users in the parameter table."""
    users = None if all_users else "SELECT value::uuid FROM %s WHERE kind = 'user'" % PARAMS_TABLE
    parts = ["p AS (SELECT %s AS run_id, %s AS reason)" % (param("run"), param("reason"))] + token_parts(users, True)
    if audit:
        parts.append(
            "audit AS (INSERT INTO public.audit_events (event_type, subject_type, subject_id, old_state, new_state, user_agent) "
            "SELECT 'auth.sessions_revoked', 'auth.refresh_tokens', %s, NULL, "
            "jsonb_build_object('refresh_tokens_revoked', (SELECT count(*) FROM tokens), 'sessions_deactivated', "
            "(SELECT count(*) FROM sessions), 'users', (SELECT count(DISTINCT user_id) FROM (SELECT user_id FROM tokens "
            "UNION SELECT user_id FROM sessions) u), 'reason', (SELECT reason FROM p), 'run_id', (SELECT run_id FROM p)), "
            "'nfamily.ops session_revocation' WHERE EXISTS (SELECT 1 FROM tokens) OR EXISTS (SELECT 1 FROM sessions) RETURNING id)"
            % ("'all'" if all_users else "'users'"))
    return ("WITH " + ", ".join(parts) + " SELECT json_build_object("
            "'refresh_tokens_revoked', (SELECT count(*) FROM tokens), 'sessions_deactivated', (SELECT count(*) FROM sessions), "
            "'users', (SELECT count(DISTINCT user_id) FROM (SELECT user_id FROM tokens UNION SELECT user_id FROM sessions) u), "
            "'audit_event', %s)" % ("(SELECT id FROM audit)" if audit else "NULL"))
