"""First-start initialisation of empty volumes, as the postgres image's entrypoint does it."""
import glob
import os
import pwd
import subprocess
import tempfile

from . import paths


def _as_postgres(argv, **kwargs):
    return subprocess.run(argv, user="postgres", check=True, **kwargs)


def init_postgres(env, project_dir):
    """initdb into an empty PG_DATA, set the superuser password, run postgres/init/*.sql."""
    if os.path.exists(os.path.join(paths.PG_DATA, "PG_VERSION")):
        return False
    pw = pwd.getpwnam("postgres")
    os.makedirs(paths.PG_DATA, exist_ok=True)
    os.chown(paths.PG_DATA, pw.pw_uid, pw.pw_gid)
    os.chmod(paths.PG_DATA, 0o700)
    os.makedirs(paths.PG_SOCKET_DIR, exist_ok=True)
    os.chown(paths.PG_SOCKET_DIR, pw.pw_uid, pw.pw_gid)
    user = env.get("POSTGRES_USER") or "postgres"
    with tempfile.NamedTemporaryFile("w", delete=False, dir="/tmp") as handle:
        handle.write(env.get("POSTGRES_PASSWORD") or "postgres")
        pwfile = handle.name
    os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    try:
        _as_postgres([os.path.join(paths.PG_BIN, "initdb"), "-D", paths.PG_DATA, "-U", user, "--pwfile", pwfile,
                      "-A", "scram-sha-256", "-E", "UTF8", "--locale", "C.UTF-8"], capture_output=True)
    finally:
        os.unlink(pwfile)
    with open(os.path.join(paths.PG_DATA, "pg_hba.conf"), "w", encoding="utf-8") as handle:
        handle.write("# docker postgres image style: trust on the socket, passwords over TCP\n"
                     "local all all trust\nlocal replication all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n")
    os.chown(os.path.join(paths.PG_DATA, "pg_hba.conf"), pw.pw_uid, pw.pw_gid)
    scripts = sorted(glob.glob(os.path.join(project_dir, "postgres", "init", "*.sql")))
    db = env.get("POSTGRES_DB") or "postgres"
    _as_postgres([os.path.join(paths.PG_BIN, "pg_ctl"), "-D", paths.PG_DATA, "-w", "-o",
                  "-c listen_addresses='' -c unix_socket_directories=%s" % paths.PG_SOCKET_DIR, "start"], capture_output=True)
    try:
        psql = [os.path.join(paths.PG_BIN, "psql"), "-h", paths.PG_SOCKET_DIR, "-U", user, "-v", "ON_ERROR_STOP=1"]
        if db != "postgres":
            _as_postgres(psql + ["-d", "postgres", "-c", 'CREATE DATABASE "%s"' % db.replace('"', '""')], capture_output=True)
        for script in scripts:
            _as_postgres(psql + ["-d", db, "-f", script], capture_output=True)
    finally:
        _as_postgres([os.path.join(paths.PG_BIN, "pg_ctl"), "-D", paths.PG_DATA, "-w", "-m", "fast", "stop"], capture_output=True)
    return True


def bind_mounts(binds, project_dir, log):
    """A bind mount `host:container[:mode]` becomes a symlink at the container path: the sandbox's
    services share the host's filesystem, so this is what a mount looks like from inside."""
    for bind in binds:
        source, _sep, rest = bind.partition(":")
        target = rest.split(":")[0]
        source = os.path.normpath(os.path.join(project_dir, source))
        if os.path.islink(target):
            if os.readlink(target) == source:
                continue
            os.unlink(target)
        elif os.path.exists(target):
            log.write("bind mount %s: %s exists and is not a mount; left alone\n" % (bind, target))
            continue
        os.makedirs(source, exist_ok=True)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(source, target)
