"""A tiny container runtime: each compose service is a supervised process ("container").

A container record lives in CONTAINERS_DIR/<container_name>.json. Its shim process
(nself_sandbox.shim) is the container's lifetime, like containerd-shim: it runs the
service, time-stamps its output into the log and records the exit code.
States follow Docker: running (+health), restarting (its restart policy's back-off), paused,
exited, created; no record means no container. A container's processes are its service's session
(see shim.py), so stopping, killing or pausing one reaches all of them.
"""
import concurrent.futures
import datetime
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from . import faults, paths, services

START_PERIOD = 20.0


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def record_path(container):
    return os.path.join(paths.CONTAINERS_DIR, container + ".json")


def log_path(container):
    return os.path.join(paths.LOG_DIR, container + ".log")


def load(container):
    try:
        with open(record_path(container), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def save(record):
    os.makedirs(paths.CONTAINERS_DIR, exist_ok=True)
    path = record_path(record["name"])
    tmp = path + ".%d.tmp" % os.getpid()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def remove(container):
    try:
        os.unlink(record_path(container))
    except FileNotFoundError:
        pass


def all_records():
    try:
        names = sorted(os.listdir(paths.CONTAINERS_DIR))
    except FileNotFoundError:
        return []
    records = [load(name[:-5]) for name in names if name.endswith(".json")]
    return [r for r in records if r]


def proc_stat(pid):
    """The fields of /proc/<pid>/stat after the command name (state first, session fourth), or None."""
    try:
        with open("/proc/%s/stat" % pid, encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def pid_alive(pid):
    fields = proc_stat(pid) if pid else None
    return bool(fields) and fields[0] not in ("Z", "X")


def session_pids(session):
    """The live processes of a container: those in its service's session, whoever their parent now is."""
    if not session:
        return []
    found = []
    for entry in os.listdir("/proc"):
        fields = proc_stat(entry) if entry.isdigit() else None
        if fields and fields[0] not in ("Z", "X") and int(fields[3]) == session:
            found.append(int(entry))
    return found


def signal_session(session, signum):
    for pid in session_pids(session):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def kill_session(session, timeout=5):
    """SIGKILL every process of the session and wait until none is left."""
    deadline = time.time() + timeout
    while session_pids(session) and time.time() < deadline:
        signal_session(session, signal.SIGKILL)
        time.sleep(0.05)


def busy_ports(published):
    """The host addresses of compose `ports` entries ([ip:]host:container) that something else holds."""
    import socket
    busy = []
    for entry in published:
        parts = str(entry).split(":")
        if len(parts) < 2:
            continue
        address = (parts[0] if len(parts) > 2 else "0.0.0.0", int(parts[-2]))
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError:
                busy.append("%s:%d" % address)
    return busy


def config_hash(spec):
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def docker_state(record):
    """Docker's State.Status for a record: running, restarting, paused, exited or created."""
    if record is None:
        return None
    if record.get("shim_pid") and pid_alive(record["shim_pid"]):
        if record.get("restarting"):
            return "restarting"
        return "paused" if record.get("paused") else "running"
    if not record.get("shim_pid") and record.get("exit_code") is None and time.time() - record.get("started_ts", 0) < 10:
        return "running"  # started a moment ago: its shim has not put its pid on record yet
    if record.get("started_at"):
        return "exited"
    return "created"


def create(name, service, spec, project_dir):
    record = {"name": name, "service": service, "image": spec["image"], "env": spec["env"],
              "healthcheck": spec.get("healthcheck"), "restart": spec.get("restart") or "no", "volumes": spec.get("volumes") or [],
              "ports": spec.get("ports") or [], "config_hash": config_hash(spec),
              "project_dir": project_dir, "created_at": now_iso(), "labels": {"com.docker.compose.service": service}}
    save(record)
    return record


def start(record):
    if docker_state(record) in ("running", "restarting", "paused"):
        return record
    os.makedirs(paths.LOG_DIR, exist_ok=True)
    record.update(started_at=now_iso(), started_ts=time.time(), finished_at=None, exit_code=None, child_pid=None,
                  shim_pid=None, restarting=False, paused=False, restart_count=0, start_error=None)
    save(record)
    env = dict(os.environ)
    env["PYTHONPATH"] = paths.PYTHONPATH
    # The shim records its own pid before anything else, so no write here can race its records.
    subprocess.Popen([sys.executable, "-m", "nself_sandbox.shim", record["name"]],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, close_fds=True, env=env)
    deadline = time.time() + 5
    while time.time() < deadline:
        current = load(record["name"]) or record
        if current.get("child_pid") or current.get("exit_code") is not None:
            return current
        time.sleep(0.05)
    return load(record["name"]) or record


def stop(record, timeout=10):
    """Docker stop: the image's stop signal, SIGKILL of every process after the grace period.
    True if it had to act. A stopped container is not restarted by its policy."""
    if docker_state(record) not in ("running", "restarting", "paused"):
        return False
    shim_pid, deadline = record.get("shim_pid"), time.time() + 5
    while not shim_pid and time.time() < deadline:  # started a moment ago: its shim puts its pid on record
        time.sleep(0.05)
        shim_pid = (load(record["name"]) or {}).get("shim_pid")
    if not shim_pid:
        return False
    signum, grace = services.stop_policy(record["image"])
    try:
        os.kill(shim_pid, signum)
    except ProcessLookupError:
        return False
    deadline = time.time() + min(timeout, grace)
    while time.time() < deadline and pid_alive(shim_pid):
        time.sleep(0.05)
    if pid_alive(shim_pid):
        kill(load(record["name"]) or record)
    _clear_paused(record["name"])
    return True


def kill(record):
    """Docker kill: SIGKILL the container's processes; exit code 137, and no restart (the shim goes first)."""
    shim_pid = record.get("shim_pid")
    if shim_pid and pid_alive(shim_pid):
        try:
            os.kill(shim_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    kill_session((load(record["name"]) or record).get("session"))
    deadline = time.time() + 5
    while time.time() < deadline and pid_alive(shim_pid):
        time.sleep(0.05)
    latest = load(record["name"])
    if latest and latest.get("exit_code") is None:
        latest.update(exit_code=137, finished_at=now_iso(), child_pid=None, restarting=False)
        save(latest)


def pause(record):
    """Docker pause: freeze every process of the container, and return once they all are."""
    signal_session(record.get("session"), signal.SIGSTOP)
    deadline = time.time() + 5
    while time.time() < deadline and not all(_stopped(pid) for pid in session_pids(record.get("session"))):
        time.sleep(0.05)
    latest = load(record["name"]) or record
    latest["paused"] = True
    save(latest)


def _stopped(pid):
    fields = proc_stat(pid)
    return not fields or fields[0] in ("T", "t")


def unpause(record):
    signal_session(record.get("session"), signal.SIGCONT)
    _clear_paused(record["name"])


def _clear_paused(name):
    latest = load(name)
    if latest and latest.get("paused"):
        latest["paused"] = False
        save(latest)


def _http_ok(url, timeout):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 400, ""
    except Exception as exc:  # any failure is an unhealthy probe
        return False, str(exc)


def _run_ok(argv, timeout, env=None):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def probe(record, timeout=3.0):
    """Run the container's healthcheck once. Returns (ok, output)."""
    service = record["service"]
    if faults.active("unhealthy", service):
        return False, "fault injected: %s is unhealthy" % service
    test = record.get("healthcheck") or {}
    argv = test.get("test") if isinstance(test, dict) else None
    if not argv:
        return True, ""
    joined = " ".join(argv)
    if "pg_isready" in joined:
        return _run_ok([os.path.join(paths.PG_BIN, "pg_isready"), "-h", paths.PG_SOCKET_DIR, "-U",
                        record["env"].get("POSTGRES_USER", "postgres")], timeout)
    if "redis-cli" in joined:
        ok, out = _run_ok(["redis-cli", "--no-auth-warning", "-a", record["env"].get("REDIS_PASSWORD", ""), "ping"], timeout)
        return ok and "PONG" in out, out
    for word in argv:
        if word.startswith("http://"):
            return _http_ok(word.replace("localhost", "127.0.0.1"), timeout)
    return True, ""


def health(record):
    """Docker health for a running container: healthy, unhealthy or starting; None if no healthcheck."""
    if not record.get("healthcheck"):
        return None
    ok = probe(record)[0]
    if ok:
        return "healthy"
    if time.time() - record.get("started_ts", 0) < START_PERIOD:
        return "starting"
    return "unhealthy"


def health_status(record, state):
    """Docker's State.Health.Status: None without a healthcheck or before the first start, the probe's
    verdict while running, and unhealthy once the container stops, pauses or waits between restarts:
    moby closes the health monitor then and marks it so (daemon/container/health.go)."""
    if not record.get("healthcheck") or not record.get("started_at"):
        return None
    return health(record) if state == "running" else "unhealthy"


def health_many(records):
    """health_status of many records at once (their probes run in parallel): {name: status}."""
    states = [docker_state(r) for r in records]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(records))) as pool:
        return dict(zip([r["name"] for r in records], pool.map(health_status, records, states)))


def stats(record):
    """(cpu, memory) strings in the shape `docker stats` prints."""
    pid = record.get("child_pid")
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/%d/status" % pid, encoding="utf-8") as handle:
            rss_kb = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
        ticks = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        elapsed = max(time.time() - record.get("started_ts", time.time()), 1.0)
        with open("/proc/meminfo", encoding="utf-8") as handle:
            total_kb = int(handle.readline().split()[1])
    except (OSError, TypeError, ValueError, StopIteration, IndexError):
        return "0%\t0B", "0B / 0B"
    return "%.2f%%" % (100.0 * ticks / elapsed), "%.1fMiB / %.1fGiB" % (rss_kb / 1024.0, total_kb / 1048576.0)
