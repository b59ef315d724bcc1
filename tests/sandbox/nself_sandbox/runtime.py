"""A tiny container runtime: each compose service is a supervised process ("container").

A container record lives in CONTAINERS_DIR/<container_name>.json. Its shim process
(nself_sandbox.shim) is the container's lifetime, like containerd-shim: it runs the
service, time-stamps its output into the log and records the exit code.
States follow Docker: running (+health), exited, created; no record means no container.
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


def pid_alive(pid):
    if not pid:
        return False
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def config_hash(spec):
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def docker_state(record):
    """Docker's State.Status for a record: running, exited or created."""
    if record is None:
        return None
    if record.get("shim_pid") and pid_alive(record["shim_pid"]):
        return "running"
    if record.get("started_at"):
        return "exited"
    return "created"


def create(name, service, spec, project_dir):
    record = {"name": name, "service": service, "image": spec["image"], "env": spec["env"],
              "healthcheck": spec.get("healthcheck"), "volumes": spec.get("volumes") or [], "config_hash": config_hash(spec),
              "project_dir": project_dir, "created_at": now_iso(), "labels": {"com.docker.compose.service": service}}
    save(record)
    return record


def start(record):
    if docker_state(record) == "running":
        return record
    os.makedirs(paths.LOG_DIR, exist_ok=True)
    record.update(started_at=now_iso(), started_ts=time.time(), finished_at=None, exit_code=None, child_pid=None)
    save(record)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(paths.SHARE_DIR)
    shim = subprocess.Popen([sys.executable, "-m", "nself_sandbox.shim", record["name"]],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True, env=env)
    record["shim_pid"] = shim.pid
    save(record)
    deadline = time.time() + 5
    while time.time() < deadline:
        current = load(record["name"]) or record
        if current.get("child_pid") or current.get("exit_code") is not None:
            return current
        time.sleep(0.05)
    return load(record["name"]) or record


def stop(record, timeout=10):
    """Docker stop: the image's stop signal, SIGKILL after the grace period. True if it had to act."""
    if docker_state(record) != "running":
        return False
    shim_pid = record["shim_pid"]
    signum, grace = services.stop_policy(record["image"])
    try:
        os.kill(shim_pid, signum)
    except ProcessLookupError:
        return False
    deadline = time.time() + min(timeout, grace)
    while time.time() < deadline and pid_alive(shim_pid):
        time.sleep(0.05)
    if pid_alive(shim_pid):
        child = (load(record["name"]) or {}).get("child_pid")
        for pid in (child, shim_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, TypeError):
                pass
        deadline = time.time() + 5
        while time.time() < deadline and pid_alive(shim_pid):
            time.sleep(0.05)
        latest = load(record["name"])
        if latest and latest.get("exit_code") is None:
            latest.update(exit_code=137, finished_at=now_iso(), child_pid=None)
            save(latest)
    return True


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
    if "/minio/health/live" in joined:
        # SeaweedFS has no MinIO health endpoints: probe its S3 port the way the
        # sandbox can (documented in tests/sandbox/README.md).
        return _http_ok("http://127.0.0.1:9000/healthz", timeout)
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


def health_many(records):
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(records))) as pool:
        return dict(zip([r["name"] for r in records], pool.map(health, records)))


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
