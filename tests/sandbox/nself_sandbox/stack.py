"""Compose-like operations on a project's containers: up, down, stop, restart, status."""
import os
import subprocess
import time

from . import envfiles, faults, paths, runtime


class ComposeError(Exception):
    pass


def status_of(project, service):
    """The `nself status --json` status word for one service."""
    record = runtime.load(project.container(service))
    state = runtime.docker_state(record)
    return status_word(state, runtime.health_status(record, state) if record else None)


def status_word(state, health):
    """nself's check_service_health (src/cli/status.sh): Docker's health first, then the state. So a
    stopped, paused or restarting container with a healthcheck reads `unhealthy`, as on a real host."""
    if state is None:
        return "stopped"
    if health in ("healthy", "starting", "unhealthy"):
        return health
    return "healthy" if state == "running" else state


def up_service(project, service, force_recreate=False):
    """`docker compose up -d <svc>`: create, recreate on config change, or start."""
    if faults.active("start_fail") or faults.active("compose_up_fail", service):
        raise ComposeError("Error response from daemon: failed to create %s" % project.container(service))
    spec = project.spec(service)
    name = project.container(service)
    record = runtime.load(name)
    if record and (force_recreate or record.get("config_hash") != runtime.config_hash(spec)):
        runtime.stop(record)
        runtime.remove(name)
        record = None
    if record is None:
        record = runtime.create(name, service, spec, project.dir)
    if runtime.docker_state(record) != "running":
        _started(runtime.start(record))
        return True
    return False


def _started(record):
    """Compose reports what the daemon said when it could not start a container."""
    if record.get("start_error"):
        raise ComposeError(record["start_error"])
    return record


def up(project, force_recreate=False):
    changed = []
    for service in project.service_names():
        if up_service(project, service, force_recreate):
            changed.append(service)
    return changed


def stop_service(project, service, timeout=10):
    record = runtime.load(project.container(service))
    if record is None:
        return False
    return runtime.stop(record, timeout)


def restart_service(project, service):
    """`docker compose restart <svc>`: same container, same env; falls back to up -d."""
    record = runtime.load(project.container(service))
    if record is None:
        return up_service(project, service)
    runtime.stop(record)
    _started(runtime.start(runtime.load(record["name"])))
    return True


def down(project, timeout=10, volumes=False):
    """`docker compose down`: stop and remove every project container."""
    names = project.service_names() if project.has_compose() else []
    records = project.records()
    order = {project.container(s): i for i, s in enumerate(names)}
    for record in sorted(records, key=lambda r: -order.get(r["name"], 0)):
        runtime.stop(record, timeout)
        runtime.remove(record["name"])
    if volumes:
        for path in (paths.PG_DATA, paths.REDIS_DATA):
            subprocess.run(["rm", "-rf", path], check=False)
        subprocess.run(["find", paths.MINIO_DATA, "-mindepth", "1", "-delete"], check=False)
    return len(records)


def running(project):
    return [r for r in project.records() if runtime.docker_state(r) == "running"]


def write_runtime_env(project):
    """`.env.runtime` (mode 600): the cascade without .env.local, plus nself's defaults."""
    values = envfiles.load_cascade(project.dir, project.env_name, envfiles.RUNTIME_CASCADE)
    user = values.get("POSTGRES_USER", "postgres")
    values.setdefault("DATABASE_URL", "postgresql://%s:%s@postgres:5432/%s" % (
        user, values.get("POSTGRES_PASSWORD", ""), values.get("POSTGRES_DB", project.name)))
    values.setdefault("AUTH_JWT_SECRET", "change-this-secret-in-production")
    values.setdefault("AUTH_JWT_KEY", values["AUTH_JWT_SECRET"])
    values.setdefault("HASURA_GRAPHQL_JWT_SECRET", '{"type":"HS256","key":"%s"}' % values["AUTH_JWT_SECRET"])
    values.setdefault("HASURA_GRAPHQL_ADMIN_SECRET", "change-this-secret")
    envfiles.write_env_file(os.path.join(project.dir, ".env.runtime"), values)


def psql(project, sql, database=None, timeout=30):
    user = project.vars.get("POSTGRES_USER", "postgres")
    db = database or project.vars.get("POSTGRES_DB") or project.name
    return subprocess.run([os.path.join(paths.PG_BIN, "psql"), "-h", paths.PG_SOCKET_DIR, "-U", user, "-d", db,
                           "-v", "ON_ERROR_STOP=1", "-tAc", sql], capture_output=True, text=True, timeout=timeout, check=False)


def post_start(project, timeout):
    """start.sh's post-start work: wait for pg_isready, ensure db/schemas/extensions, then health."""
    deadline = time.time() + 60
    ready = False
    while time.time() < deadline:
        if subprocess.run([os.path.join(paths.PG_BIN, "pg_isready"), "-q", "-h", paths.PG_SOCKET_DIR],
                          check=False).returncode == 0:
            ready = True
            break
        time.sleep(0.5)
    if ready:
        db = project.vars.get("POSTGRES_DB") or project.name
        exists = psql(project, "SELECT 1 FROM pg_database WHERE datname = '%s'" % db.replace("'", "''"), database="postgres")
        if exists.stdout.strip() != "1":
            psql(project, 'CREATE DATABASE "%s"' % db.replace('"', '""'), database="postgres")
        psql(project, "CREATE SCHEMA IF NOT EXISTS auth; CREATE SCHEMA IF NOT EXISTS storage; "
                      "CREATE SCHEMA IF NOT EXISTS public; CREATE EXTENSION IF NOT EXISTS pgcrypto; "
                      "CREATE EXTENSION IF NOT EXISTS citext;")
    required = int(os.environ.get("NSELF_HEALTH_CHECK_REQUIRED", "80"))
    deadline = time.time() + timeout
    while True:
        checked = [r for r in running(project) if r.get("healthcheck")]
        states = runtime.health_many(checked) if checked else {}
        healthy = sum(1 for s in states.values() if s == "healthy")
        total = len(checked)
        if total == 0 or healthy * 100 >= required * total or time.time() >= deadline:
            return healthy, total
        time.sleep(1)
