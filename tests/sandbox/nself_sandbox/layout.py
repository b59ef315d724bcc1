"""The host's layout, chosen when the sandbox container first starts (`NFAMILY_SANDBOX_LAYOUT`):

- `nself` (the image as built): auth, api and scheduler are custom services CS_1..CS_3, nginx also
  routes `/auth/` and `/api/` on the family domain, and the migrations are nself's
  `hasura/migrations/default/<version>_<name>/` tracked in `schema_migrations`.
- `committed`: as nFamily's repository commits it (nfamily-backend.md §2.3, §5): auth and api are
  CS_1 and CS_2 and there is no scheduler, nginx has no `/auth` or `/api` route under the family
  domain (`api.<domain>` is Hasura's), and the migrations are `db/migrations/NNN_name.{up,down}.sql`
  tracked by the repo's runner (`npx tsx db/migrate.ts`) in `public._migrations`.

The choice is made at the first start, before the stack starts, and kept in LAYOUT_FILE: a container
restarted with another value keeps the layout its data was converted to.
"""
import os
import pwd
import re
import shutil
import subprocess

from . import envfiles, paths

LAYOUTS = ("nself", "committed")
LAYOUT_FILE = os.path.join(paths.STATE_DIR, "layout")
NSELF_MIGRATIONS = os.path.join("hasura", "migrations", "default")
REPO_MIGRATIONS = os.path.join("db", "migrations")

# schema_migrations' rows become the runner's, in version order: `1770000000010_notifications` -> `010_notifications`.
TO_REPO_TRACKING = """DO $$ BEGIN
IF to_regclass('public.schema_migrations') IS NOT NULL THEN
 CREATE TABLE IF NOT EXISTS public._migrations (id SERIAL PRIMARY KEY, name TEXT UNIQUE NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
 INSERT INTO public._migrations (name, applied_at)
  SELECT lpad((version % 1000)::text, 3, '0') || substr(name, strpos(name, '_')), applied_at
  FROM public.schema_migrations ORDER BY version ON CONFLICT (name) DO NOTHING;
 DROP TABLE public.schema_migrations;
END IF;
END $$;

"""
DONE_FILE = LAYOUT_FILE + ".done"


def current():
    """The layout this host has: `nself` until a start converted it."""
    try:
        with open(LAYOUT_FILE, encoding="utf-8") as handle:
            return handle.read().strip() or "nself"
    except OSError:
        return "nself"


def apply(project_dir, wanted):
    """Lay the project out as `wanted` (the stack must be down). Returns (layout in force, whether the
    stack must be rebuilt). Every step is idempotent and the layout counts as laid out only once
    done() is called after the rebuild, so a start killed half-way finishes on the next one."""
    chosen = current() if os.path.exists(LAYOUT_FILE) else (wanted or "nself")
    if chosen not in LAYOUTS:
        raise SystemExit("NFAMILY_SANDBOX_LAYOUT must be one of %s, not %r" % (", ".join(LAYOUTS), chosen))
    if chosen == "nself" or os.path.exists(DONE_FILE):
        return chosen, False
    os.makedirs(paths.STATE_DIR, exist_ok=True)
    with open(LAYOUT_FILE, "w", encoding="utf-8") as handle:  # `nself build` reads it for nginx
        handle.write(chosen + "\n")
    _drop_scheduler(project_dir)
    _move_migrations(project_dir)
    _convert_tracking(project_dir)
    return chosen, True


def done():
    open(DONE_FILE, "w").close()


def _drop_scheduler(project_dir):
    path = os.path.join(project_dir, ".env.dev")
    values = envfiles.parse_file(path)
    values.pop("CS_3", None)
    envfiles.write_env_file(path, values, mode=0o644)


def _move_migrations(project_dir):
    source = os.path.join(project_dir, NSELF_MIGRATIONS)
    target = os.path.join(project_dir, REPO_MIGRATIONS)
    if not os.path.isdir(source):  # moved by an earlier start
        return
    os.makedirs(target, exist_ok=True)
    for entry in sorted(os.listdir(source)):
        version, name = re.match(r"^(\d+)_(.+)$", entry).groups()
        for direction in ("up", "down"):
            shutil.copy2(os.path.join(source, entry, direction + ".sql"),
                         os.path.join(target, "%03d_%s.%s.sql" % (int(version) % 1000, name, direction)))
    shutil.rmtree(os.path.join(project_dir, "hasura"))


def _convert_tracking(project_dir):
    """Rewrite the tracking table with PostgreSQL in single-user mode: the server is not running yet."""
    database = envfiles.load_cascade(project_dir, "prod").get("POSTGRES_DB", "nself_family")
    user = pwd.getpwnam("postgres")

    def as_postgres():
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    proc = subprocess.run([os.path.join(paths.PG_BIN, "postgres"), "--single", "-j", "-D", paths.PG_DATA, database],
                          input=TO_REPO_TRACKING, text=True, capture_output=True, preexec_fn=as_postgres, check=False)
    if proc.returncode != 0 or "ERROR" in proc.stdout + proc.stderr:
        raise SystemExit("sandbox layout: converting schema_migrations to _migrations failed: %s%s" % (proc.stdout, proc.stderr))
