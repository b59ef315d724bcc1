"""`sandbox-fault`: flip the sandbox host's fault switches.

  sandbox-fault set <fault> [target...]    sandbox-fault clear [fault]
  sandbox-fault list                       sandbox-fault bug <name> on|off

Faults: crash SVC (its main process dies; the restart policy brings it back), kill SVC (docker
kill: exited 137, not restarted), crash_loop SVC (exits on every start: restarting), pause SVC,
hang SVC, unhealthy SVC, refuse SVC, stop_fail SVC, stop_postgres, foreign_port SVC (a process
outside the stack holds the service's published ports), malformed_json (status and health
print invalid JSON), bad_claims auth (its tokens lack Hasura's claims namespace),
exhaust_connections, break_nginx [route|syntax], fill_disk [free%] (cleared, the store takes writes again, as
MinIO does once there is room: SeaweedFS is restarted if it kept its volumes read-only), delete_bucket BUCKET,
storage_credentials, stale_key SVC (hasura, api or auth keep verifying with today's JWT key after
a rotation), doctor_fail, start_fail, build_compose_fail, gate COMMAND (every `nself COMMAND`
waits there until the gate is cleared: a test's breakpoint in a runbook), nself_tag v0.9.9|v0.9.8
(nself is that release tag: both report 0.9.8; v0.9.8's `nself db help` is 0.9.8's).
"""
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from . import faults, paths, runtime, stack
from .project import Project

FLAG_ONLY = {"unhealthy", "refuse", "stop_fail", "doctor_fail", "start_fail", "build_compose_fail", "malformed_json",
             "bad_claims", "gate", "nself_tag"}
NEEDS_TARGET = {"crash", "kill", "crash_loop", "pause", "foreign_port", "hang", "unhealthy", "refuse", "stop_fail",
                "delete_bucket", "stale_key", "bad_claims", "gate", "nself_tag"}
FOREIGN_NGINX_CONF = """pid %s/foreign-nginx.pid;
error_log stderr;
events {}
http { access_log off; server { %s return 404 "not nFamily\\n"; } }
"""
BALLAST = ".nself-sandbox-ballast"


def _project():
    return Project(os.environ.get("NSELF_PROJECT_DIR", paths.DEFAULT_PROJECT))


def _running(project, service):
    record = project.record(service)
    if runtime.docker_state(record) != "running" or not record.get("child_pid"):
        raise SystemExit("sandbox-fault: %s is not running" % service)
    return record


def _child(project, service):
    return _running(project, service)["child_pid"]


def _crash(project, service):
    """SIGKILL the service's main process, as an OOM kill or a segfault would, and wait until the
    container has ended (its other processes gone with it); its restart policy then applies."""
    record = _running(project, service)
    os.kill(record["child_pid"], signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline:
        latest = project.record(service) or {}
        ended = latest.get("child_pid") != record["child_pid"] or latest.get("exit_code") is not None
        if ended and not runtime.session_pids(record.get("session")):
            return
        time.sleep(0.05)
    raise SystemExit("sandbox-fault: %s did not end within 10 s of SIGKILL" % service)


def _reload_nginx(record, timeout=10):
    """SIGHUP nginx's master and wait until the workers of the old configuration are gone, so that
    what is asked next is answered by the new one."""
    master = record["child_pid"]
    old_workers = set(runtime.session_pids(record["session"])) - {master}
    os.kill(master, signal.SIGHUP)
    deadline = time.time() + timeout
    while time.time() < deadline and old_workers & set(runtime.session_pids(record["session"])):
        time.sleep(0.05)


def _published_ports(record):
    """Host ports of the container's `ports` entries (host_ip:host:container or host:container)."""
    return [int(str(entry).split(":")[-2]) for entry in record.get("ports") or [] if ":" in str(entry)]


def _hold_ports(project, targets):
    """Stop each service, start a process outside the stack on its published ports (a distribution
    nginx for nginx, a Python web server otherwise), then start the service again, which Docker cannot
    do: its container is left exited (128), "port is already allocated"."""
    held = _foreign_pids()
    for service in targets:
        record = _running(project, service)
        ports = _published_ports(record)
        if not ports:
            raise SystemExit("sandbox-fault: %s publishes no port" % service)
        stack.stop_service(project, service)
        os.makedirs(paths.FOREIGN_DIR, exist_ok=True)
        if service == "nginx":
            conf = os.path.join(paths.FOREIGN_DIR, "nginx.conf")
            with open(conf, "w", encoding="utf-8") as handle:
                handle.write(FOREIGN_NGINX_CONF % (paths.FOREIGN_DIR, " ".join("listen %d;" % p for p in ports)))
            argvs = [["nginx", "-c", conf, "-g", "daemon off;"]]
        else:
            argvs = [[sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(p)] for p in ports]
        for argv in argvs:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True, cwd=paths.FOREIGN_DIR)
            held.append(proc.pid)
        _wait_listening(ports)
        with open(paths.FOREIGN_PIDS_FILE, "w", encoding="utf-8") as handle:
            json.dump(held, handle)
        runtime.start(runtime.load(record["name"]))  # `docker start`, refused: "port is already allocated"


def _wait_listening(ports, timeout=10):
    import socket
    deadline = time.time() + timeout
    for port in ports:
        while time.time() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)


def _foreign_pids():
    try:
        with open(paths.FOREIGN_PIDS_FILE, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return []


def _holder(project, ready):
    """Open client connections until PostgreSQL refuses more, say so on the file descriptor ready, then
    hold them."""
    import psycopg2
    held = []
    while True:
        try:
            held.append(psycopg2.connect(host="127.0.0.1", port=5432, user=project.vars.get("POSTGRES_USER", "postgres"),
                                         password=project.vars.get("POSTGRES_PASSWORD", ""),
                                         dbname=project.vars.get("POSTGRES_DB", "postgres"), application_name="leaky-pool"))
        except psycopg2.OperationalError:
            break
    os.write(ready, b"x")
    os.close(ready)
    while True:
        time.sleep(2)
        try:
            with held[0].cursor() as cur:
                cur.execute("SELECT 1")
        except Exception:  # server restarted: the leak is gone
            return


def _nginx_conf(project):
    return os.path.join(project.dir, "nginx", "nginx.conf")


def set_fault(name, targets):
    project = _project()
    if name in NEEDS_TARGET and not targets:
        raise SystemExit("sandbox-fault: %s needs a target" % name)
    if name == "nself_tag" and targets not in (["v0.9.9"], ["v0.9.8"]):
        raise SystemExit("sandbox-fault: nself_tag is v0.9.9 or v0.9.8")
    if name in ("crash", "crash_loop"):
        if name == "crash_loop":
            faults.set_fault("refuse", targets)
        for service in targets:
            _crash(project, service)
        if name == "crash":
            return
    elif name == "kill":
        for service in targets:
            runtime.kill(_running(project, service))
        return
    elif name == "pause":
        for service in targets:
            runtime.pause(_running(project, service))
    elif name == "foreign_port":
        _hold_ports(project, targets)
    elif name == "hang":
        for service in targets:
            os.kill(_child(project, service), signal.SIGSTOP)
    elif name == "stop_postgres":
        stack.stop_service(project, "postgres")
        return
    elif name == "exhaust_connections":
        ready_read, ready_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_read)
            os.setsid()
            _holder(project, ready_write)
            os._exit(0)
        os.close(ready_write)
        # the fault is set once PostgreSQL refuses connections (or the holder died: its end closed)
        ready = select.select([ready_read], [], [], 60)[0]
        os.close(ready_read)
        if not ready:
            raise SystemExit("sandbox-fault: the connection holder did not exhaust PostgreSQL's connections in 60 s")
        targets = [str(pid)]
    elif name == "break_nginx":
        mode = targets[0] if targets else "route"
        with open(_nginx_conf(project), encoding="utf-8") as handle:
            conf = handle.read()
        if mode == "syntax":
            conf = conf.replace("events {", "events { this_is_not_a_directive;", 1)
        else:
            conf = conf.replace("server 127.0.0.1:%s;" % "4000", "server 127.0.0.1:4999;").replace(
                "server 127.0.0.1:4001;", "server 127.0.0.1:4998;").replace("server 127.0.0.1:8080;", "server 127.0.0.1:8999;")
        with open(_nginx_conf(project), "w", encoding="utf-8") as handle:
            handle.write(conf)
        if mode != "syntax" and runtime.docker_state(project.record("nginx")) == "running":
            _reload_nginx(project.record("nginx"))
        targets = [mode]
    elif name == "fill_disk":
        if not os.path.ismount(paths.MINIO_DATA):
            raise SystemExit("sandbox-fault: %s is not its own filesystem (run the sandbox with --tmpfs %s)"
                             % (paths.MINIO_DATA, paths.MINIO_DATA))
        free_percent = float(targets[0]) if targets else 2.0
        stats = os.statvfs(paths.MINIO_DATA)
        keep = stats.f_blocks * stats.f_frsize * free_percent / 100.0
        size = max(int(stats.f_bavail * stats.f_frsize - keep), 0)
        subprocess.run(["fallocate", "-l", str(size), os.path.join(paths.MINIO_DATA, BALLAST)], check=True)
    elif name == "delete_bucket":
        _delete_buckets(project, targets)
        return
    elif name == "stale_key":
        keys = {}
        for service in targets:
            config = project.vars.get("HASURA_GRAPHQL_JWT_SECRET") if service == "hasura" else None
            keys[service] = json.loads(config)["key"] if config else project.vars.get("JWT_SECRET", "")
        with open(paths.STALE_KEYS_FILE, "w", encoding="utf-8") as handle:
            json.dump(keys, handle)
    elif name == "storage_credentials":
        faults.set_fault(name)
        stack.restart_service(project, "minio")
        return
    elif name not in FLAG_ONLY:
        raise SystemExit("sandbox-fault: unknown fault %s" % name)
    faults.set_fault(name, targets or None)


def _delete_buckets(project, buckets):
    import boto3
    import botocore.config
    client = boto3.client("s3", endpoint_url="http://127.0.0.1:9000", aws_access_key_id=project.vars["MINIO_ROOT_USER"],
                          aws_secret_access_key=project.vars["MINIO_ROOT_PASSWORD"], region_name="us-east-1",
                          config=botocore.config.Config(s3={"addressing_style": "path"}))
    for bucket in buckets:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        client.delete_bucket(Bucket=bucket)


def clear(name=None):
    project = _project()
    state = faults.load()["faults"]
    names = [name] if name else list(state)
    for fault in names:
        value = state.get(fault)
        if fault == "hang" and value:
            for service in value:
                record = project.record(service)
                if record and record.get("child_pid"):
                    os.kill(record["child_pid"], signal.SIGCONT)
        elif fault == "pause" and value:
            for service in value:
                if project.record(service):
                    runtime.unpause(project.record(service))
        elif fault == "crash_loop" and value:
            refused = [s for s in (faults.load()["faults"].get("refuse") or []) if s not in value]
            faults.clear_fault("refuse")
            if refused:
                faults.set_fault("refuse", refused)
        elif fault == "foreign_port":
            for pid in _foreign_pids():
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.unlink(paths.FOREIGN_PIDS_FILE)
            except FileNotFoundError:
                pass
        elif fault == "exhaust_connections" and value:
            for pid in value:
                try:
                    os.killpg(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        elif fault == "stale_key":
            try:
                os.unlink(paths.STALE_KEYS_FILE)
            except FileNotFoundError:
                pass
        elif fault == "fill_disk":
            try:
                os.unlink(os.path.join(paths.MINIO_DATA, BALLAST))
            except FileNotFoundError:
                pass
        faults.clear_fault(fault)
        if fault == "storage_credentials":
            stack.restart_service(project, "minio")
        if fault == "fill_disk" and _minio_running(project) and not _store_ready():
            # MinIO takes writes again once there is room; SeaweedFS keeps the volumes it marked read-only
            # while the disk was full until it restarts. Clearing the fault leaves the store as MinIO would.
            stack.restart_service(project, "minio")
            _wait(_store_ready, 90)
    if name is None:
        faults.clear_fault()


def _minio_running(project):
    return runtime.docker_state(runtime.load(project.container("minio"))) == "running"


def _store_ready():
    try:
        with urllib.request.urlopen("http://127.0.0.1:9000/minio/health/ready", timeout=10) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _wait(predicate, timeout):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise SystemExit("sandbox-fault: the object store still refuses writes %d s after the disk was freed" % timeout)
        time.sleep(0.5)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if argv[0] == "set" and len(argv) >= 2:
        set_fault(argv[1], argv[2:])
    elif argv[0] == "clear":
        clear(argv[1] if len(argv) > 1 else None)
    elif argv[0] == "list":
        print(json.dumps(faults.load(), indent=2, sort_keys=True))
    elif argv[0] == "bug" and len(argv) == 3 and argv[2] in ("on", "off"):
        faults.set_bug(argv[1], argv[2] == "on")
    else:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
