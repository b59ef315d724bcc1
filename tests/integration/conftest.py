"""Fixtures for tests that run against a live sandbox host container."""
import json
import os
import subprocess
import time

import pytest

PROJECT = "/opt/nself-family/backend"
IMAGE = os.environ.get("SANDBOX_IMAGE", "localhost/nfamily-sandbox:latest")


class Sandbox:
    """A sandbox nFamily host container, driven with podman exec."""

    def __init__(self, name):
        self.name = name

    def run(self, *argv, stdin=None, cwd=PROJECT, check=False, timeout=300):
        cmd = ["podman", "exec", "-i" if stdin is not None else "-t=false", "-w", cwd, self.name] + list(argv)
        cmd = [c for c in cmd if c != "-t=false"]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError("%s failed (rc %d): %s %s" % (" ".join(argv), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def nself(self, *args, stdin=None, cwd=PROJECT):
        return self.run("nself", *args, stdin=stdin, cwd=cwd)

    def nself_raw(self, *args):
        """stdout as bytes: text mode would turn the spinner's \r into newlines."""
        return subprocess.run(["podman", "exec", "-w", PROJECT, self.name, "nself"] + list(args),
                              capture_output=True, check=False, stdin=subprocess.DEVNULL).stdout

    def sh(self, script, check=True):
        return self.run("sh", "-c", script, check=check)

    def fault(self, *args):
        return self.run("sandbox-fault", *args, check=True)

    def psql(self, sql):
        proc = self.run("psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d", "nself_family", "-tAc", sql, check=True)
        return proc.stdout.strip()

    def status(self):
        return {s["name"]: s["status"] for s in json.loads(self.nself("status", "--json").stdout, strict=False)["services"]}

    def env(self, key):
        """A value of the prod env cascade, read the way nself reads it."""
        code = "import sys; from nself_sandbox import envfiles; print(envfiles.load_cascade('.', 'prod').get(sys.argv[1], ''), end='')"
        return self.run("env", "PYTHONPATH=/opt/nself-sandbox", "python3", "-c", code, key, check=True).stdout

    def wait_healthy(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = self.status()
            if all(s == "healthy" for s in status.values()):
                return status
            time.sleep(1)
        raise AssertionError("sandbox not healthy: %s" % self.status())

    def states(self):
        """Docker's State.Status of each service's container (`docker inspect`): nself's status reads the
        health first, so it calls a stopped or restarting container that has a healthcheck unhealthy."""
        names = [n[:-5] for n in self.run("ls", "/var/lib/nself-sandbox/containers", check=True).stdout.split() if n.endswith(".json")]
        documents = json.loads(self.run("docker", "inspect", *names).stdout) if names else []
        return {d["Config"]["Labels"]["com.docker.compose.service"]: d["State"]["Status"] for d in documents}

    def wait_status(self, service, wanted, timeout=30):
        """The service's status once it is wanted (a crash loop is `running` for a moment between exits)."""
        return _wait_for_value(lambda: self.status()[service], wanted, timeout)

    def wait_state(self, service, wanted, timeout=30):
        """The state of the service's container once it is wanted."""
        return _wait_for_value(lambda: self.states()[service], wanted, timeout)

    def reset(self):
        """Back to a healthy stack with no fault set."""
        self.fault("clear")
        status = self.status()
        broken = [name for name, state in status.items() if state not in ("healthy", "stopped")]
        if broken:
            self.nself("restart", *broken)
        if "stopped" in status.values():
            # no container: `nself restart` would create it from `.env` alone (it deletes .env.runtime),
            # without the secrets; `nself start` writes .env.runtime first
            self.nself("start")
        self.wait_healthy()


def _wait_for_value(read, wanted, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = read()
        if value == wanted:
            return value
        time.sleep(0.2)
    return read()


def start_container(name):
    subprocess.run(["podman", "rm", "-f", "-t", "2", name], capture_output=True, check=False)
    subprocess.run(["podman", "run", "-d", "--name", name, "--hostname", name, "--tmpfs", "/srv/minio:rw,size=2g,mode=0755",
                    "--label", "nfamily.ops.sandbox=1", IMAGE], check=True, capture_output=True)
    box = Sandbox(name)
    box.wait_healthy(180)
    return box


@pytest.fixture(scope="session")
def sandbox():
    name = "nfamily-test-%d" % os.getpid()
    box = start_container(name)
    yield box
    subprocess.run(["podman", "rm", "-f", "-t", "5", name], capture_output=True, check=False)


@pytest.fixture
def healthy(sandbox):
    """A test that breaks things leaves the shared sandbox healthy again."""
    sandbox.reset()
    yield sandbox
    sandbox.reset()
