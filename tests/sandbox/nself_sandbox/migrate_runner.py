"""`npx tsx db/migrate.ts up|down|status`: nFamily's own migration runner (backend/db/migrate.ts,
nfamily-backend.md §2.3), run from backend/ on a host of the `committed` layout.

As the TypeScript does with node-pg: each `*.up.sql` is sent as one multi-statement query (one
implicit transaction unless the file has its own BEGIN/COMMIT), then the name is inserted into
`public._migrations` in a statement of its own; `down` rolls back only the last applied migration
(by id) and exits 1 when its down file is missing. The connection comes from DATABASE_URL, else
POSTGRES_HOST (localhost), POSTGRES_PORT (5433), POSTGRES_DB (nself_family_dev), POSTGRES_USER,
POSTGRES_PASSWORD.
"""
import os
import sys

import psycopg2

DIRECTORY = os.path.join("db", "migrations")
TRACKING = ("CREATE TABLE IF NOT EXISTS public._migrations (id SERIAL PRIMARY KEY, name TEXT UNIQUE NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")


def connect():
    if os.environ.get("DATABASE_URL"):
        connection = psycopg2.connect(os.environ["DATABASE_URL"])
    else:
        connection = psycopg2.connect(host=os.environ.get("POSTGRES_HOST", "localhost"),
                                      port=os.environ.get("POSTGRES_PORT", "5433"),
                                      dbname=os.environ.get("POSTGRES_DB", "nself_family_dev"),
                                      user=os.environ.get("POSTGRES_USER", "postgres"),
                                      password=os.environ.get("POSTGRES_PASSWORD", ""))
    connection.autocommit = True
    return connection


def names():
    return sorted(f[:-len(".up.sql")] for f in os.listdir(DIRECTORY) if f.endswith(".up.sql"))


def applied(cursor):
    cursor.execute(TRACKING)
    cursor.execute("SELECT name FROM public._migrations ORDER BY id")
    return [row[0] for row in cursor.fetchall()]


def read(name, direction):
    with open(os.path.join(DIRECTORY, "%s.%s.sql" % (name, direction)), encoding="utf-8") as handle:
        return handle.read()


def up(cursor):
    done = set(applied(cursor))
    pending = [n for n in names() if n not in done]
    for name in pending:
        print("Applying %s..." % name)
        cursor.execute(read(name, "up"))
        cursor.execute("INSERT INTO public._migrations (name) VALUES (%s)", (name,))
    print("Applied %d migration(s)" % len(pending) if pending else "No pending migrations")
    return 0


def down(cursor):
    done = applied(cursor)
    if not done:
        print("No migrations to roll back")
        return 0
    name = done[-1]
    if not os.path.isfile(os.path.join(DIRECTORY, name + ".down.sql")):
        print("Down migration not found: %s.down.sql" % name, file=sys.stderr)
        return 1
    print("Rolling back %s..." % name)
    cursor.execute(read(name, "down"))
    cursor.execute("DELETE FROM public._migrations WHERE name = %s", (name,))
    print("Rolled back %s" % name)
    return 0


def status(cursor):
    done = set(applied(cursor))
    every = names()
    for name in every:
        print("  [%s] %s" % ("x" if name in done else " ", name))
    print("\n%d/%d applied" % (len([n for n in every if n in done]), len(every)))
    return 0


def main(argv):
    if argv[:2] != ["tsx", "db/migrate.ts"]:
        print("npx (sandbox): only `npx tsx db/migrate.ts up|down|status` is available here", file=sys.stderr)
        return 1
    command = argv[2] if len(argv) > 2 else ""
    actions = {"up": up, "down": down, "status": status}
    if command not in actions:
        print("Usage: tsx db/migrate.ts [up|down|seed|reset|status]", file=sys.stderr)
        return 1
    try:
        with connect() as connection, connection.cursor() as cursor:
            return actions[command](cursor)
    except (psycopg2.Error, OSError) as exc:
        print("Migration failed: %s" % str(exc).strip(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
