"""`nself db …` and the deprecated `nself backup …`, as 0.9.9 behaves (nself-cli.md §1.10, §1.11, §3, §4)."""
import datetime
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

from . import faults, paths, runtime, stack, ui
from .project import Project

DB_HELP = """\
╔══════════════════════════════════════════════════════════╗
║ nself db                                                  ║
║ Database management and utilities                         ║
╚══════════════════════════════════════════════════════════╝

USAGE:
  nself db <command> [options]

COMMANDS:
  migrate <action>    Database migrations (up/down/status/create)
  seed [options]      Apply seed data
  shell               Open PostgreSQL shell
  backup [file]       Create database backup
  restore <file>      Restore from backup
  reset               Reset database (dev only)
  hasura <sub>        Hasura console and metadata (console, metadata apply/export/reload)
  help                Show this help message

MIGRATION COMMANDS:
  nself db migrate up         Apply pending migrations
  nself db migrate down       Rollback last migration
  nself db migrate status     Show migration status
  nself db migrate create <name>  Create new migration"""
# The v0.9.8 tag's `db` (nself-cli.md §4.6): only its help is modelled, for the version gate.
DB_HELP_098 = """nself db - Database Management (v0.4.4)

USAGE:
  nself db <command> [options]

COMMANDS:
  Migrations:
    migrate status          Show migration status
    migrate up              Run pending migrations
    migrate down [n]        Rollback n migrations
    migrate create <name>   Create new migration
    migrate fresh           Drop all & re-migrate (local only)

  Interactive:
    shell [--readonly]      Open PostgreSQL shell
    query '<sql>'           Execute SQL query

  Backup & Restore:
    backup [type] [--compress]  Create backup (full, database, schema, data)
    backup list                 List available backups
    restore [name]              Restore from backup"""


def _prompt(question):
    """read -p under set -e: EOF ends the process with rc 1."""
    sys.stdout.write(question)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if line == "":
        sys.stdout.write("\n")
        raise EOFError
    return line.strip()


def _pg_container_running(project):
    name = project.container("postgres")
    if runtime.docker_state(runtime.load(name)) != "running":
        ui.error("Database container not running: %s" % name)
        return False
    return True


def _conn(project):
    user = project.vars.get("POSTGRES_USER") or "postgres"
    db = project.vars.get("POSTGRES_DB") or project.name
    return user, db


def _psql_argv(project):
    user, db = _conn(project)
    return [os.path.join(paths.PG_BIN, "psql"), "-h", paths.PG_SOCKET_DIR, "-U", user, "-d", db]


def cmd_db(args):
    sub = args[0] if args else "help"
    rest = args[1:]
    if sub in ("help", "-h", "--help"):
        ui.out(DB_HELP_098 if faults.installed_tag() == "v0.9.8" else DB_HELP)
        return 0
    handlers = {"migrate": _migrate, "seed": _seed, "shell": _shell, "backup": _backup,
                "restore": _restore, "reset": _reset}
    if sub not in handlers:
        ui.error("Unknown subcommand: %s" % sub)
        ui.out(DB_HELP)
        return 1
    project = Project()
    return handlers[sub](project, rest)


def _shell(project, _args):
    if not _pg_container_running(project):
        return 1
    if not sys.stdin.isatty():
        sys.stderr.write("the input device is not a TTY\n")
        return 1
    return subprocess.call(_psql_argv(project))


def _seed(project, args):
    if not _pg_container_running(project):
        return 1
    files = [args[0]] if args else sorted(
        os.path.join(project.dir, "seeds", n) for n in os.listdir(os.path.join(project.dir, "seeds"))
        if n.endswith(".sql")) if (args or os.path.isdir(os.path.join(project.dir, "seeds"))) else []
    for path in files:
        with open(path, "rb") as handle:
            subprocess.run(_psql_argv(project), stdin=handle, capture_output=True, check=False)
        ui.ok("Seeded %s" % os.path.basename(path))
    return 0


def _backup(project, args):
    if args and args[0] == "list":
        found = sorted(n for n in os.listdir(os.path.join(project.dir, "backups")) if n.endswith(".sql")) \
            if os.path.isdir(os.path.join(project.dir, "backups")) else []
        if not found:
            ui.out("No database backups found in ./backups/")
            return 0
        for name in found:
            size = os.path.getsize(os.path.join(project.dir, "backups", name))
            ui.out("-rw-r--r-- 1 root root %7d %s backups/%s" % (size, time.strftime("%b %d %H:%M"), name))
        return 0
    if not args:
        if faults.bug("db_backup_unbound_name"):
            sys.stderr.write("/usr/local/lib/nself/src/cli/db.sh: line 155: $1: unbound variable\n")
            return 1
        args = ["backup_%s_%s.sql" % (_conn(project)[1], time.strftime("%Y%m%d_%H%M%S"))]
    if not _pg_container_running(project):
        return 1
    name = args[0]
    target = os.path.join(project.dir, "backups", name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    ui.step("Creating backup: %s..." % name)
    user, db = _conn(project)
    with open(target, "wb") as handle:
        proc = subprocess.run([os.path.join(paths.PG_BIN, "pg_dump"), "-h", paths.PG_SOCKET_DIR, "-U", user, db],
                              stdout=handle, stderr=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        os.unlink(target)
        ui.error("Backup failed")
        return 1
    ui.ok("Backup created: backups/%s (%s)" % (name, _human(os.path.getsize(target))))
    ui.ok("Database backup complete")
    return 0


def _human(size):
    for unit in ("B", "K", "M", "G"):
        if size < 1024:
            return "%d%s" % (size, unit)
        size //= 1024
    return "%dT" % size


def _restore(project, args):
    if not args:
        ui.error("Backup file required")
        ui.out("Usage: nself db restore <file>")
        return 1
    path = args[0] if "/" in args[0] else os.path.join("backups", args[0])
    if not os.path.isabs(path):
        path = os.path.join(project.dir, path)
    if not os.path.isfile(path):
        ui.error("Backup file not found: %s" % (args[0] if "/" in args[0] else "backups/" + args[0]))
        return 1
    if not _pg_container_running(project):
        return 1
    if project.env_name == "prod":
        ui.warn("You are about to restore the PRODUCTION database")
        if _prompt("Continue? (type 'yes' to confirm): ") != "yes":
            ui.out("Restore cancelled")
            return 0
    ui.step("Restoring database from %s..." % os.path.basename(path))
    with open(path, "rb") as handle:
        # no ON_ERROR_STOP and all output discarded: SQL errors still "succeed" (0.9.9)
        subprocess.run(_psql_argv(project), stdin=handle, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    ui.ok("Database restored")
    ui.ok("Restore complete")
    return 0


def _reset(project, _args):
    if not _pg_container_running(project):
        return 1
    ui.warn("This will DROP all data in the public schema")
    answer = _prompt("Type 'yes' to confirm: ")
    if answer != "yes":
        ui.out("Reset cancelled")
        return 0
    if project.env_name == "prod":
        ui.error("Refusing to reset a production database")
        return 1
    subprocess.run(_psql_argv(project) + ["-c", "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"],
                   capture_output=True, check=False)
    ui.ok("Database reset")
    return 0


# ---------------------------------------------------------------- migrations (§3)

def _migrations_dir(project):
    return os.path.join(project.dir, "hasura", "migrations", "default")


def _migration_dirs(project):
    root = _migrations_dir(project)
    return sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)))


def _run_sql_file(project, path):
    with open(path, "rb") as handle:
        return subprocess.run(_psql_argv(project), stdin=handle, capture_output=True, check=False)


def _applied(project):
    proc = subprocess.run(_psql_argv(project) + ["-tAc", "SELECT version FROM schema_migrations ORDER BY version"],
                          capture_output=True, text=True, check=False)
    return [int(v) for v in proc.stdout.split()] if proc.returncode == 0 else []


def _migrate(project, args):
    action = args[0] if args else "help"
    if action not in ("up", "down", "status", "create"):
        ui.out("Usage: nself db migrate up|down|status|create <name>")
        return 1 if action != "help" else 0
    if action == "create":
        if len(args) < 2:
            ui.error("Migration name required")
            return 1
        version = "%d000" % int(time.time())
        path = os.path.join(_migrations_dir(project), "%s_%s" % (version, args[1]))
        os.makedirs(path, exist_ok=True)
        for name in ("up.sql", "down.sql"):
            with open(os.path.join(path, name), "w", encoding="utf-8") as handle:
                handle.write("-- %s migration: %s\n" % (name[:-4], args[1]))
        ui.ok("Created %s/up.sql" % path)
        ui.ok("Created %s/down.sql" % path)
        return 0
    if not os.path.isdir(_migrations_dir(project)):
        if action == "status":
            ui.warn("Migrations directory not found: hasura/migrations/default")
            return 0
        ui.error("Migrations directory not found: hasura/migrations/default")
        return 1
    if not _pg_container_running(project):
        return 1
    if action == "status":
        return _migrate_status(project)
    if action == "up":
        return _migrate_up(project)
    return _migrate_down(project)


def _migrate_up(project):
    ui.step("Initializing migration tracking...")
    init = subprocess.run(_psql_argv(project) + ["-c", "CREATE TABLE IF NOT EXISTS public.schema_migrations "
                          "(version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ DEFAULT NOW())"],
                          capture_output=True, check=False)
    if init.returncode != 0:
        ui.error("Could not connect to the database")
        return 1
    applied = set(_applied(project))
    dirs = _migration_dirs(project)
    count = 0
    for name in dirs:
        version = int(name.split("_", 1)[0])
        if version in applied:
            continue
        up = os.path.join(_migrations_dir(project), name, "up.sql")
        if not os.path.isfile(up):
            ui.warn("No up.sql in %s, skipping" % name)
            continue
        started = time.time()
        _run_sql_file(project, up)  # SQL errors do not fail the step (0.9.9)
        subprocess.run(_psql_argv(project) + ["-c", "INSERT INTO schema_migrations (version, name) VALUES (%d, '%s')"
                                              % (version, name.replace("'", "''"))], capture_output=True, check=False)
        ui.ok("%s (%ds)" % (name, time.time() - started))
        count += 1
    if count:
        ui.ok("All migrations applied successfully")
        ui.out("  Applied: %d" % count)
        ui.out("  Total: %d" % len(dirs))
    else:
        ui.ok("Database is up to date")
    return 0


def _migrate_down(project):
    applied = _applied(project)
    if not applied:
        ui.info("No migrations to rollback")
        return 0
    version = max(applied)
    match = [n for n in _migration_dirs(project) if n.split("_", 1)[0] == str(version)]
    down = os.path.join(_migrations_dir(project), match[0], "down.sql") if match else None
    if not down or not os.path.isfile(down):
        ui.error("No down.sql for version %d" % version)
        return 1
    ui.warn("Rolling back migration: %s" % match[0])
    if _prompt("Continue? (y/N): ").lower() != "y":
        ui.out("Cancelled")
        return 0
    _run_sql_file(project, down)
    subprocess.run(_psql_argv(project) + ["-c", "DELETE FROM schema_migrations WHERE version = %d" % version],
                   capture_output=True, check=False)
    ui.ok("Rolled back: %s" % match[0])
    return 0


def _migrate_status(project):
    applied = set(_applied(project))
    if faults.bug("migrate_status_always_pending"):
        applied = set()  # '^\s*<ver>\s' never matches psql -t output (0.9.9)
    done = pending = 0
    for name in _migration_dirs(project):
        if int(name.split("_", 1)[0]) in applied:
            ui.out("  %s✓%s %s (applied)" % (ui.GREEN, ui.RESET, name))
            done += 1
        else:
            ui.out("  %s○%s %s (pending)" % (ui.GREY, ui.RESET, name))
            pending += 1
    ui.out()
    ui.ok("%d applied" % done)
    ui.out("⏳ %d pending" % pending)
    return 0


# ---------------------------------------------------------------- deprecated `nself backup` (§1.11)

def cmd_backup(args):
    sys.stderr.write("⚠  WARNING: 'nself backup' is deprecated. Use: nself db backup|restore …\n")
    here = os.getcwd()
    if not any(n.startswith(".env") for d in (here, os.path.join(here, "backend")) if os.path.isdir(d) for n in os.listdir(d)):
        ui.error("No .env file found. Run 'nself init' first.")
        return 1
    project = Project(fallback_backend=True)
    for sub in ("logs", "certs/local", "hasura/migrations", "hasura/metadata", "bin/dbsyncs"):
        os.makedirs(os.path.join(project.dir, sub), exist_ok=True)
    backup_dir = os.path.join(project.dir, os.environ.get("BACKUP_DIR", "backups"))
    os.makedirs(backup_dir, exist_ok=True)
    sub = args[0] if args else "help"
    rest = args[1:]
    if sub == "create":
        rc = _backup_create(project, backup_dir, rest)
    elif sub == "list":
        rc = _backup_list(backup_dir)
    elif sub == "verify":
        rc = _backup_verify(backup_dir, rest)
    elif sub == "restore":
        rc = _backup_restore(project, backup_dir, rest)
    else:
        ui.out("Usage: nself backup create|list|restore|verify …")
        return 1 if sub != "help" else 0
    if rc == 0:
        ui.ok("Command completed successfully\033[0m\033[?25h")
    return rc


def _backup_create(project, backup_dir, args):
    kind = args[0] if args else "full"
    if kind not in ("full", "database", "config"):
        ui.error("Unknown backup type: %s" % kind)
        return 1
    name = args[1] if len(args) > 1 else "nself_backup_%s_%s.tar.gz" % (kind, time.strftime("%Y%m%d_%H%M%S"))
    staging = tempfile.mkdtemp(prefix="nself-backup-")
    try:
        if kind in ("full", "database"):
            os.makedirs(os.path.join(staging, "database"))
            user = project.vars.get("POSTGRES_USER") or "postgres"
            with open(os.path.join(staging, "database", "postgres_dump.sql"), "wb") as handle:
                proc = subprocess.run([os.path.join(paths.PG_BIN, "pg_dumpall"), "-h", paths.PG_SOCKET_DIR, "-U", user],
                                      stdout=handle, stderr=subprocess.DEVNULL, check=False)
            if proc.returncode != 0:
                ui.warn("Database dump failed")  # rc stays 0 (0.9.9)
        if kind in ("full", "config"):
            config = os.path.join(staging, "config")
            os.makedirs(config)
            for item in (".env", ".env.dev", ".env.production", ".env.local", "docker-compose.yml",
                         "docker-compose.override.yml", "nginx"):
                source = os.path.join(project.dir, item)
                if os.path.isdir(source):
                    shutil.copytree(source, os.path.join(config, item))
                elif os.path.isfile(source):
                    shutil.copy2(source, config)
        if kind == "full":
            volumes = os.path.join(staging, "volumes")
            os.makedirs(volumes)
            for volume, source in (("redis_data", paths.REDIS_DATA), ("minio_data", paths.MINIO_DATA)):
                if os.path.isdir(source):
                    with tarfile.open(os.path.join(volumes, "%s_%s.tar.gz" % (project.name, volume)), "w:gz") as tar:
                        tar.add(source, arcname=".")
        target = os.path.join(backup_dir, name)
        with tarfile.open(target, "w:gz") as tar:
            tar.add(staging, arcname=".")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ui.ok("Backup created: %s" % target)
    return 0


def _backup_list(backup_dir):
    ui.out("╔══════════════════════════════════════════╦══════════╦═════════╗")
    ui.out("║ Name                                     ║ Size     ║ Created ║")
    for name in sorted(os.listdir(backup_dir)):
        if name.endswith(".tar.gz"):
            ui.out("║ %-40s ║ %-8s ║ %-7s ║" % (name[:40], _human(os.path.getsize(os.path.join(backup_dir, name))), "?"))
    ui.out("╚══════════════════════════════════════════╩══════════╩═════════╝")
    return 0


def _backup_verify(backup_dir, args):
    if not args:
        ui.error("Backup name required")
        return 1
    path = args[0] if os.path.isabs(args[0]) else os.path.join(backup_dir, args[0])
    try:
        with tarfile.open(path, "r:gz") as tar:
            tar.getmembers()
    except (OSError, tarfile.TarError):
        ui.error("Backup is corrupt or missing: %s" % args[0])
        return 1
    ui.ok("Backup verified: %s" % args[0])
    return 0


def _backup_restore(project, backup_dir, args):
    if not args:
        ui.error("Backup name required")
        return 1
    path = args[0] if os.path.isabs(args[0]) else os.path.join(backup_dir, args[0])
    if not os.path.isfile(path):
        ui.error("Backup not found: %s" % args[0])
        return 1
    if _prompt("Are you sure? (y/N): ").lower() != "y":
        ui.out("Restore cancelled")
        return 0
    kind = args[1] if len(args) > 1 else "full"
    staging = tempfile.mkdtemp(prefix="nself-restore-")
    try:
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(staging)
        dump = os.path.join(staging, "database", "postgres_dump.sql")
        if kind in ("full", "database") and os.path.isfile(dump):
            if runtime.docker_state(project.record("postgres")) != "running":
                stack.up_service(project, "postgres")
            user = project.vars.get("POSTGRES_USER") or "postgres"
            with open(dump, "rb") as handle:
                subprocess.run([os.path.join(paths.PG_BIN, "psql"), "-h", paths.PG_SOCKET_DIR, "-U", user, "-d", "postgres"],
                               stdin=handle, capture_output=True, check=False)
        config = os.path.join(staging, "config")
        if kind in ("full", "config") and os.path.isdir(config):
            for item in os.listdir(config):
                source, dest = os.path.join(config, item), os.path.join(project.dir, item)
                if os.path.isdir(source):
                    shutil.rmtree(dest, ignore_errors=True)
                    shutil.copytree(source, dest)
                else:
                    shutil.copy2(source, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ui.ok("Restore complete (%s)" % datetime.datetime.now().strftime("%H:%M:%S"))
    return 0
