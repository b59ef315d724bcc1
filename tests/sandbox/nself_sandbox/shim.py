"""Container shim: runs one service, time-stamps its output like `docker logs --timestamps`,
records the exit code when the service ends, and restarts it as its restart policy says.
Usage: python3 -m nself_sandbox.shim <container>.

The service runs in a session of its own, which stands in for the container's cgroup: when its
main process ends, every process left in the session is killed, as Docker kills a container's
processes when its init exits (nginx workers, postgres backends). A stop (`docker stop`, `docker
kill`, `compose down`) reaches the shim as a signal and is final; any other exit is restarted under
`restart: always|unless-stopped|on-failure[:N]` with Docker's back-off (100 ms doubling to 1 min,
back to 100 ms after a run of 10 s), the container being `restarting` in between.
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

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 60.0
RESET_AFTER_S = 10.0


def _stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def restarts(policy, code, count):
    """Whether Docker restarts a container that exited with code by itself under policy."""
    name, _sep, limit = (policy or "no").partition(":")
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        return code != 0 and (not limit or count < int(limit))
    return False


class Shim:
    def __init__(self, container):
        self.container = container
        self.stopping = False
        self.stop_signal = signal.SIGTERM
        self.child = None
        self.log = open(runtime.log_path(container), "a", buffering=1, encoding="utf-8")

    def forward(self, signum, _frame):
        """A stop: deliver the image's stop signal to the service, and never restart it."""
        self.stop_signal = signum
        self.stopping = True
        child = self.child
        if child is not None and child.poll() is None:
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                return
        runtime.signal_session(child.pid if child else None, signal.SIGCONT)  # a paused or hung one must see it

    def run_once(self, record):
        """Run the service until its main process ends: (exit code, None), or (None, error) when Docker
        could not start it (a published port is taken), which no restart policy retries."""
        service = record["service"]
        busy = runtime.busy_ports(record.get("ports") or [])
        if busy:
            return None, ("driver failed programming external connectivity on endpoint %s: Bind for %s failed: "
                          "port is already allocated" % (self.container, busy[0]))
        if faults.active("refuse", service):
            self.log.write("%s FATAL: %s refuses to start (fault injected: refuse)\n" % (_stamp(), service))
            return 1, None
        argv, user, cwd = services.launch(service, record["image"], record["env"], record["project_dir"])
        volumes.bind_mounts(record.get("volumes") or [], record["project_dir"], self.log)
        if record["image"].startswith("postgres"):
            volumes.init_postgres(record["env"], record["project_dir"])
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
               "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "PYTHONUNBUFFERED": "1",
               "HOME": pwd.getpwnam(user).pw_dir, "NSELF_SERVICE": service}
        env.update(record["env"])
        if self.stopping:
            return 0, None
        self.child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      cwd=cwd, env=env, user=user if user != "root" else None, start_new_session=True)
        if self.stopping:  # the stop came while it was being launched, before forward() could see it
            self.child.send_signal(self.stop_signal)
        latest = runtime.load(self.container) or record
        latest.update(child_pid=self.child.pid, session=self.child.pid, restarting=False)
        runtime.save(latest)
        reader = threading.Thread(target=self.pump, args=(self.child,), daemon=True)
        reader.start()
        code = self.child.wait()
        runtime.kill_session(self.child.pid)  # the container's other processes go with its init
        reader.join(timeout=2)
        return (128 - code if code < 0 else code), None

    def pump(self, child):
        for raw in iter(child.stdout.readline, b""):
            self.log.write("%s %s\n" % (_stamp(), raw.decode("utf-8", "replace").rstrip("\n")))

    def main(self):
        signal.signal(signal.SIGTERM, self.forward)
        signal.signal(signal.SIGINT, self.forward)
        record = runtime.load(self.container)
        record["shim_pid"] = os.getpid()
        runtime.save(record)
        delay = 0.0
        while True:
            record = runtime.load(self.container)
            began = time.time()
            try:
                code, start_error = self.run_once(record)
            except Exception as exc:  # the daemon could not run it: say why instead of dying silently
                code, start_error = None, "cannot start %s: %s" % (self.container, exc)
            latest = runtime.load(self.container) or record
            if start_error:
                code = 128 if "port is already allocated" in start_error else 127
                latest["start_error"] = "Error response from daemon: %s" % start_error
            latest.update(exit_code=code, finished_at=runtime.now_iso(), finished_ts=time.time(), child_pid=None)
            count = latest.get("restart_count", 0)
            if self.stopping or start_error or not restarts(latest.get("restart"), code, count):
                latest["restarting"] = False
                runtime.save(latest)
                return code
            delay = BACKOFF_FIRST_S if time.time() - began >= RESET_AFTER_S or not delay else min(delay * 2, BACKOFF_MAX_S)
            latest.update(restarting=True, restart_count=count + 1)
            runtime.save(latest)
            deadline = time.time() + delay
            while time.time() < deadline and not self.stopping:
                time.sleep(0.05)
            latest = runtime.load(self.container) or latest
            if self.stopping:
                latest["restarting"] = False
                runtime.save(latest)
                return code
            # still `restarting` until the next process is on record, as Docker is until the start completes
            latest.update(started_at=runtime.now_iso(), started_ts=time.time(), finished_at=None, exit_code=None)
            runtime.save(latest)


if __name__ == "__main__":
    sys.exit(Shim(sys.argv[1]).main())
