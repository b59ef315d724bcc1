# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""PostgreSQL of an nself project, reached the way nself reaches it: client tools run inside the
postgres container (`nself exec [-i] postgres ...`, or `docker exec [-i] <project>_postgres ...`),
as POSTGRES_USER on POSTGRES_DB from the env cascade. The port is not published on a prod host,
so nothing here connects over TCP from the host. Dumps and restores stream through pipes in
fixed-size chunks, so memory does not grow with the database.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import os
import subprocess
import threading

from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.module_utils._nself import clean_output

CHUNK = 1024 * 1024
FIELD_SEP = "\x1f"
END_MARK = "__nfamily_ops_end__"
# The tables whose row counts identify an nFamily database (nfamily-backend.md §2.2).
KEY_TABLES = ["public.users", "public.families", "public.family_members", "public.registered_devices",
              "public.device_pairing_codes", "public.audit_events", "public.media_items",
              "auth.refresh_tokens", "auth.sessions", "public.schema_migrations", "public._migrations"]


# Row text is rendered the same way wherever a checksum is taken (backup, drill), whatever the server's defaults.
CHECKSUM_MIN_SERVER = 140000  # bit_xor(); older servers' backups carry no content checksums
CHECKSUM_SETTINGS = ["SET TimeZone TO 'UTC'", "SET DateStyle TO 'ISO, YMD'", "SET IntervalStyle TO 'postgres'",
                     "SET extra_float_digits TO 1", "SET bytea_output TO 'hex'"]


class PostgresError(Exception):
    """A client tool that failed, or output that makes no sense."""


def pg_argument_spec():
    return dict(
        via=dict(type="str", choices=["nself", "docker"], default="nself"),
        postgres_service=dict(type="str", default="postgres"),
    )


def project_database(module):
    """The database of the module's nself project (options of nself_argument_spec and pg_argument_spec),
    checked with SELECT 1. Raises PostgresError with what to do when it does not answer."""
    params = module.params
    env_name = params["environment"] or nenv.detect_environment(params["project_dir"])
    env, _files = nenv.load_cascade(params["project_dir"], env_name)
    environ = {"NSELF_ENV": params["environment"]} if params["environment"] else None
    pg = PostgresContainer(module, params["project_dir"], env, params["nself_bin"], params["via"],
                           params["postgres_service"], environ)
    up, why = pg.ping()
    if not up:
        raise PostgresError("the database %s does not answer (%s); start postgres (nself start), check "
                            "`nself status`, then re-run" % (pg.database, why))
    return pg


def connection_settings(env):
    """(user, database) from the merged env cascade, with nself HEAD's defaults."""
    user = env.get("POSTGRES_USER") or "postgres"
    database = env.get("POSTGRES_DB") or env.get("PROJECT_NAME")
    if not database:
        raise PostgresError("neither POSTGRES_DB nor PROJECT_NAME is set in the env cascade; set POSTGRES_DB "
                            "in the project's env files")
    return user, database


def quote_ident(name):
    return '"%s"' % name.replace('"', '""')


def qualified(table):
    schema, _dot, name = table.rpartition(".")
    return "%s.%s" % (quote_ident(schema or "public"), quote_ident(name))


def quote_literal(value):
    return "'%s'" % value.replace("'", "''")


class PostgresContainer(object):
    """Client tools inside the project's postgres container."""

    def __init__(self, module, project_dir, env, nself_bin, via="nself", service="postgres", environ=None):
        self.module = module
        self.project_dir = project_dir
        self.env = env
        self.user, self.database = connection_settings(env)
        self.via = via
        self.service = service
        self.container = nenv.container_name(nenv.project_name(project_dir, env), service)
        self.environ_update = dict(environ or {})  # NSELF_ENV when the environment is forced: psql and pg_dump alike
        self.environ = dict(os.environ, **self.environ_update)
        self.binary = module.get_bin_path(nself_bin if via == "nself" else "docker", required=True,
                                          opt_dirs=["/usr/local/bin", "/opt/nself/bin"])
        self.commands = []

    def argv(self, tool, interactive=False):
        """The argv that runs `tool` (a list) in the container, with stdin attached when interactive."""
        if self.via == "nself":
            return [self.binary, "exec"] + (["-i"] if interactive else []) + [self.service] + list(tool)
        return [self.binary, "exec"] + (["-i"] if interactive else []) + [self.container] + list(tool)

    def psql_argv(self, *extra):
        return ["psql", "-X", "-q", "-A", "-t", "-F", FIELD_SEP, "-v", "ON_ERROR_STOP=1",
                "-U", self.user, "-d", self.database] + list(extra)

    def on(self, database):
        """The same container and user, connected to another database of the cluster."""
        other = copy.copy(self)
        other.database = database
        return other

    def run(self, tool):
        """Run a tool in the container; returns its stdout. Raises PostgresError on a non-zero exit."""
        argv = self.argv(tool)
        self.commands.append(argv)
        rc, out, err = self.module.run_command(argv, cwd=self.project_dir, environ_update=dict(self.environ_update, NO_COLOR="1"))
        if rc != 0:
            raise PostgresError("%s failed (rc %d): %s" % (tool[0], rc, clean_output(err or out).strip()[:400]))
        return out

    def data_free_bytes(self):
        """Free bytes on the filesystem of the cluster's data directory, seen from inside the container."""
        data_dir = self.value("SHOW data_directory")
        lines = self.run(["df", "-Pk", data_dir]).strip().splitlines()
        try:
            return int(lines[-1].split()[3]) * 1024
        except (IndexError, ValueError):
            raise PostgresError("cannot read the free space of %s from df: %s" % (data_dir, lines[-1:] or "no output"))

    def _popen(self, argv, stdin, stdout):
        self.commands.append(argv)
        return subprocess.Popen(argv, cwd=self.project_dir, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                                env=self.environ)

    def query(self, *statements):
        """Rows printed by the statements, as lists of strings (NULL is ''). Several statements run in
        one psql call, each its own -c (and transaction), stopping at the first error; each statement
        that returns rows adds them, so give one SELECT when you read the result."""
        tool = self.psql_argv()
        for sql in statements:
            tool += ["-c", sql]
        out = self.run(tool)
        return [line.split(FIELD_SEP) for line in out.splitlines() if line]

    def value(self, sql):
        rows = self.query(sql)
        return rows[0][0] if rows and rows[0] else None

    def ping(self):
        """Whether the database answers SELECT 1, and why not."""
        try:
            return self.value("SELECT 1") == "1", None
        except PostgresError as exc:
            return False, str(exc)

    def server_version(self):
        return self.value("SHOW server_version")

    def database_size(self):
        return int(self.value("SELECT pg_database_size(current_database())"))

    def existing_tables(self, tables):
        sql = "SELECT t FROM unnest(ARRAY[%s]::text[]) AS t WHERE to_regclass(t) IS NOT NULL" % ", ".join(
            quote_literal(qualified(t)) for t in tables)
        present = set(row[0] for row in self.query(sql))
        return [t for t in tables if qualified(t) in present]

    def migration_state(self, session=None):
        """Applied migrations per tracking table: nself's schema_migrations and the repo's _migrations."""
        run = session.query if session else self.query
        state = {}
        rows = run("SELECT to_regclass('public.schema_migrations') IS NOT NULL, to_regclass('public._migrations') IS NOT NULL")
        has_nself, has_repo = [v == "t" for v in rows[0]]
        if has_nself:
            rows = run("SELECT version, name FROM public.schema_migrations ORDER BY version DESC LIMIT 1")
            count = run("SELECT count(*) FROM public.schema_migrations")[0][0]
            state["schema_migrations"] = {"version": rows[0][0] if rows else None, "name": rows[0][1] if rows else None,
                                          "applied": int(count)}
        if has_repo:
            rows = run("SELECT name FROM public._migrations ORDER BY id DESC LIMIT 1")
            count = run("SELECT count(*) FROM public._migrations")[0][0]
            state["_migrations"] = {"name": rows[0][0] if rows else None, "applied": int(count)}
        return state

    def row_counts(self, tables, session=None):
        run = session.query if session else self.query
        tables = self.existing_tables(tables)
        if not tables:
            return {}
        sql = " UNION ALL ".join("SELECT %s, count(*) FROM %s" % (quote_literal(t), qualified(t)) for t in tables)
        return dict((row[0], int(row[1])) for row in run(sql))

    def checksum_sql(self, tables):
        """One query: each table's content checksum, the XOR of a 64-bit hash of every row's text (order does
        not matter, any changed, added or removed row changes it). Tables must exist."""
        return " UNION ALL ".join(
            "SELECT %s, coalesce(bit_xor(('x' || left(md5(t::text), 16))::bit(64)::bigint), 0) FROM %s AS t"
            % (quote_literal(table), qualified(table)) for table in tables)

    def table_checksums(self, tables):
        """{table: checksum} of existing tables, read with CHECKSUM_SETTINGS."""
        tables = self.existing_tables(tables)
        if not tables:
            return {}
        return dict((row[0], row[1]) for row in self.query(*(CHECKSUM_SETTINGS + [self.checksum_sql(tables)])))

    def snapshot_session(self):
        return SnapshotSession(self)

    def dump(self, dest_handle, snapshot=None, compress=None):
        """Stream `pg_dump -Fc` into an open binary file; returns (sha256 hex, bytes)."""
        tool = ["pg_dump", "-U", self.user, "-d", self.database, "-Fc"]
        if compress is not None:
            tool.append("--compress=%d" % compress)
        if snapshot:
            tool.append("--snapshot=%s" % snapshot)
        return self.stream_out(tool, dest_handle)

    def stream_out(self, tool, dest_handle):
        """Stream a tool's stdout into an open binary file; returns (sha256 hex, bytes).
        Raises PostgresError when the tool fails or writes nothing."""
        proc = self._popen(self.argv(tool), subprocess.DEVNULL, subprocess.PIPE)
        digest, size = hashlib.sha256(), 0
        try:
            while True:
                chunk = proc.stdout.read(CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
                dest_handle.write(chunk)
        finally:
            proc.stdout.close()
            err = clean_output(proc.stderr.read().decode("utf-8", "replace"))
            proc.wait()
        if proc.returncode != 0 or size == 0:
            raise PostgresError("%s failed (rc %d): %s" % (tool[0], proc.returncode, err.strip()[:400] or "no output"))
        return digest.hexdigest(), size

    def feed(self, tool, source_path):
        """Stream a file into a tool's stdin in the container; returns (stdout text, stderr text)."""
        with open(source_path, "rb") as source:
            return self._feed(tool, iter(lambda: source.read(CHUNK), b""))

    def feed_bytes(self, tool, data):
        """Give a tool in the container data on stdin; returns (stdout text, stderr text)."""
        return self._feed(tool, [data])

    def _feed(self, tool, chunks):
        proc = self._popen(self.argv(tool, interactive=True), subprocess.PIPE, subprocess.PIPE)
        out_chunks, err_chunks = [], []
        readers = [_Drain(proc.stdout, out_chunks), _Drain(proc.stderr, err_chunks)]
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
        except (IOError, OSError):
            pass  # the tool stopped reading (it failed): its exit code and stderr say why
        finally:
            try:
                proc.stdin.close()
            except (IOError, OSError):
                pass
            proc.wait()
            for reader in readers:
                reader.join()
        out = b"".join(out_chunks).decode("utf-8", "replace")
        err = clean_output(b"".join(err_chunks).decode("utf-8", "replace"))
        if proc.returncode != 0:
            raise PostgresError("%s failed (rc %d): %s" % (tool[0], proc.returncode, err.strip()[-600:] or out.strip()[-300:]))
        return out, err

    def archive_toc(self, path):
        """Table-of-contents entries of a custom-format archive, read by pg_restore in the container."""
        out, _err = self.feed(["pg_restore", "-l"], path)
        return [line for line in out.splitlines() if line and not line.startswith(";")]

    def archive_readable(self, path):
        """Read the whole archive (every data block decompressed) without restoring anything."""
        self.feed(["pg_restore", "-f", "/dev/null"], path)


class SnapshotSession(object):
    """A psql session holding a REPEATABLE READ transaction whose snapshot is exported, so row
    counts and pg_dump --snapshot see exactly the same data."""

    def __init__(self, pg):
        self.pg = pg
        self.proc = None
        self.snapshot = None

    def __enter__(self):
        self.proc = self.pg._popen(self.pg.argv(self.pg.psql_argv(), interactive=True), subprocess.PIPE, subprocess.PIPE)
        self.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        self.snapshot = self.query("SELECT pg_export_snapshot()")[0][0]
        return self

    def query(self, sql):
        self.send(sql)
        return self.receive(sql)

    def send(self, sql):
        """Start a statement without waiting for it: the server runs it while the caller does other work."""
        self.proc.stdin.write(("%s;\n\\echo %s\n" % (sql.rstrip().rstrip(";"), END_MARK)).encode())
        self.proc.stdin.flush()

    def receive(self, sql=""):
        """The rows of the statement sent last."""
        rows = []
        while True:
            line = self.proc.stdout.readline().decode("utf-8", "replace")
            if not line:
                err = self.proc.stderr.read().decode("utf-8", "replace")
                raise PostgresError("psql session ended (%s): %s" % (sql[:60], err.strip()[:400]))
            line = line.rstrip("\n")
            if line == END_MARK:
                return rows
            if line:
                rows.append(line.split(FIELD_SEP))

    def __exit__(self, *exc):
        try:
            self.proc.stdin.write(b"COMMIT;\n")
            self.proc.stdin.close()
        except (IOError, OSError):
            pass
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return False


class _Drain(object):
    """Read a pipe to the end in a thread, so a tool writing to it never blocks our writes."""

    def __init__(self, pipe, sink):
        self.thread = threading.Thread(target=self._run, args=(pipe, sink))
        self.thread.daemon = True
        self.thread.start()

    @staticmethod
    def _run(pipe, sink):
        for chunk in iter(lambda: pipe.read(65536), b""):
            sink.append(chunk)

    def join(self):
        self.thread.join()
