"""Container shim: runs one service, time-stamps its output like `docker logs --timestamps`,
and records the exit code when the service ends. Usage: python3 -m nself_sandbox.shim <container>.
"""
import datetime
import os
import pwd
import signal
import subprocess
import sys
import threading
import time

from . import faults, runtime, services, volumes


def _stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def main(container):
    record = runtime.load(container)
    argv, user, cwd = services.launch(record["service"], record["image"], record["env"], record["project_dir"])
    log = open(runtime.log_path(container), "a", buffering=1, encoding="utf-8")
    if faults.active("refuse", record["service"]):
        log.write("%s FATAL: %s refuses to start (fault injected: refuse)\n" % (_stamp(), record["service"]))
        record.update(exit_code=1, finished_at=runtime.now_iso(), child_pid=None)
        runtime.save(record)
        return 1
    volumes.bind_mounts(record.get("volumes") or [], record["project_dir"], log)
    if record["image"].startswith("postgres"):
        volumes.init_postgres(record["env"], record["project_dir"])
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "PYTHONUNBUFFERED": "1",
           "HOME": pwd.getpwnam(user).pw_dir, "NSELF_SERVICE": record["service"]}
    env.update(record["env"])
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             cwd=cwd, env=env, user=user if user != "root" else None)
    record["child_pid"] = child.pid
    runtime.save(record)

    def forward(signum, _frame):
        try:
            child.send_signal(signum)
            child.send_signal(signal.SIGCONT)  # a hung (SIGSTOPped) service must still see it
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    def pump():
        for raw in iter(child.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            log.write("%s %s\n" % (_stamp(), line))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    code = child.wait()
    reader.join(timeout=2)
    code = 128 - code if code < 0 else code
    latest = runtime.load(container) or record
    latest.update(exit_code=code, finished_at=runtime.now_iso(), child_pid=None, finished_ts=time.time())
    runtime.save(latest)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
