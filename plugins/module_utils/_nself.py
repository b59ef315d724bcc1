# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""Running the nself CLI (0.9.9) from modules, the way community.docker wraps docker compose:
argv lists only, explicit stdin, output cleaned of ANSI and spinner carriage returns, JSON parsed
leniently, and never a decision taken on nself's exit code alone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import tempfile
from collections import namedtuple

from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.module_utils._redact import scrub

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")
VERSION_RE = re.compile(r"(?<![\d.])(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.]+)?)")
# An entry's leading "<key>": "...", "status": "..." pair, readable in a document that is not valid JSON.
ENTRY_RE = r'\{\s*"%s"\s*:\s*"([^"]+)"\s*,\s*"status"\s*:\s*"([^"]+)"'
HEALTH_ENTRY_RE = re.compile(ENTRY_RE % "service")
STATUS_ENTRY_RE = re.compile(ENTRY_RE % "name")
ENVIRONMENT_RE = re.compile(r'"environment"\s*:\s*"([^"]*)"')
PROJECT_MARKERS = ("docker-compose.yml", ".env", ".env.dev", ".env.prod", ".env.local")
MINIMUM_VERSION = (0, 9, 8)

NselfResult = namedtuple("NselfResult", ["cmd", "rc", "stdout", "stderr"])


class NselfError(Exception):
    """A failure to run nself or to make sense of what it printed."""

    def __init__(self, msg, result=None):
        super(NselfError, self).__init__(msg)
        self.result = result


def nself_argument_spec():
    return dict(
        project_dir=dict(type="path", required=True),
        nself_bin=dict(type="str", default="nself"),
        environment=dict(type="str", choices=["dev", "staging", "prod"]),
    )


def clean_output(text):
    """Drop ANSI escapes, and keep what a terminal would show of lines a spinner rewrote with \\r."""
    text = ANSI_RE.sub("", text or "")
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            segments = [s for s in line.split("\r") if s.strip()]
            line = segments[-1] if segments else ""
        lines.append(line.rstrip())
    return "\n".join(lines).strip("\n")


def extract_json(text):
    """The first JSON object in text (nself may print noise around it). Raises ValueError."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the output")
    obj, _end = json.JSONDecoder(strict=False).raw_decode(text[start:])
    return obj


def parse_version(text):
    match = VERSION_RE.search(clean_output(text))
    if not match:
        raise ValueError("no version number in %r" % text[:80])
    return match.group(1)


# `nself db help` tells the two `db` commands apart; the v0.9.9 tag reports its version as 0.9.8
# (nself-cli.md §0), so the number alone cannot.
DB_DIALECTS = [
    ("0.9.9", re.compile(r"migrate down\s+Rollback last migration")),  # one step; backup FILE into backups/
    ("0.9.8", re.compile(r"migrate down \[n\]")),  # n steps; backups in _backups/, restore [name|latest]
]


def parse_db_dialect(text):
    """Which nself `db` command a `nself db help` text belongs to: "0.9.9", "0.9.8", or None."""
    text = clean_output(text)
    return next((name for name, pattern in DB_DIALECTS if pattern.search(text)), None)


def version_tuple(version):
    return tuple(int(p) for p in re.findall(r"\d+", version.split("-")[0])[:3])


def parse_health(text):
    """`nself health --json`. Its `details` are not escaped by 0.9.9, so fall back to the
    service/status pairs when the document is not valid JSON. Returns (health, warning)."""
    try:
        data = extract_json(text)
        return data, None
    except ValueError:
        pairs = HEALTH_ENTRY_RE.findall(text)
        if not pairs:
            raise
        services = [{"service": s, "status": st, "details": None} for s, st in pairs]
        unhealthy = sum(1 for e in services if e["status"] in ("unhealthy", "stopped", "not_found"))
        healthy = sum(1 for e in services if e["status"] in ("healthy", "running"))
        data = {"healthy": healthy, "unhealthy": unhealthy, "total": len(services), "services": services}
        return data, "nself health printed invalid JSON (unescaped details); used the service/status pairs"


def parse_status(text):
    """`nself status --json`. 0.9.9 builds it with printf, so a value it copied from docker
    unescaped makes it invalid: fall back to the name/status pairs. Returns (status, warning)."""
    try:
        data = extract_json(text)
        if isinstance(data.get("services"), list):
            return data, None
        raise ValueError("no service list")
    except ValueError as exc:
        pairs = STATUS_ENTRY_RE.findall(text)
        if not pairs:
            raise
        environment = ENVIRONMENT_RE.search(text)
        data = {"environment": environment.group(1) if environment else None,
                "services": [{"name": name, "status": status} for name, status in pairs]}
        return data, "nself status --json printed invalid JSON (%s); used its name/status pairs" % str(exc)[:80]


def log_message(line):
    """A line of `nself logs` without nself's "<time> [<service>   ] " prefix, its secrets scrubbed."""
    return scrub(line.split("] ", 1)[-1].strip())


def parse_container_states(text):
    """`docker inspect <container>...` (a JSON list, printed for the containers found even when others are
    missing) as {container name: {state, restart_count, exit_code}}."""
    states = {}
    for document in json.loads(text):
        state = document.get("State") or {}
        states[(document.get("Name") or "").lstrip("/")] = {
            "state": state.get("Status"), "restart_count": document.get("RestartCount", 0), "exit_code": state.get("ExitCode")}
    return states


class NselfCLI(object):
    """One nself project on the managed host."""

    def __init__(self, module, project_dir, nself_bin="nself", environment=None):
        self.module = module
        self.project_dir = project_dir
        self.commands = []
        self.warnings = []  # what was read around nself's malformed output
        if not os.path.isdir(project_dir):
            raise NselfError("project_dir %s does not exist; set it to the nself project (the directory holding "
                             "docker-compose.yml and the .env files)" % project_dir)
        if not any(os.path.exists(os.path.join(project_dir, m)) for m in PROJECT_MARKERS):
            raise NselfError("%s holds no docker-compose.yml or .env file, so it is not an nself project; "
                             "check project_dir" % project_dir)
        self.binary = module.get_bin_path(nself_bin, opt_dirs=["/usr/local/bin", "/opt/nself/bin"])
        if not self.binary:
            raise NselfError("nself (%s) was not found on PATH on this host; install nself or set nself_bin" % nself_bin)
        self.environ = {"NO_COLOR": "1", "TERM": "dumb"}
        if environment:
            self.environ["NSELF_ENV"] = environment
        _detach_stdin()

    def run(self, args, answer=None, cwd=None):
        """Run nself with argv `args` in the project dir (or cwd). `answer` is the line written to its stdin
        (prompts); without it stdin is /dev/null so a prompt fails fast instead of hanging."""
        cmd = [self.binary] + list(args)
        rc, out, err = self.module.run_command(cmd, cwd=cwd or self.project_dir, data=answer, environ_update=self.environ,
                                               check_rc=False)
        result = NselfResult(cmd=cmd, rc=rc, stdout=clean_output(out), stderr=clean_output(err))
        self.commands.append({"cmd": cmd, "rc": rc})
        return result

    def version(self):
        result = self.run(["-v"])
        try:
            version = parse_version(result.stdout)
        except ValueError:
            raise NselfError("could not read the nself version from `nself -v` (rc %d): %s"
                             % (result.rc, (result.stdout or result.stderr)[:200]), result)
        if version_tuple(version) < MINIMUM_VERSION:
            raise NselfError("nself %s is older than %s, which this collection supports; upgrade nself"
                             % (version, ".".join(str(p) for p in MINIMUM_VERSION)), result)
        return version

    def db_dialect(self):
        """The `db` command this nself has, by its help text (None when it is neither known one). Asked in an
        empty directory: 0.9.8's `db` creates its directories (_backups/, nself/...) in the cwd before it
        reads its arguments, and a probe must not write into the project."""
        scratch = tempfile.mkdtemp(prefix="nfamily-ops-nself-")
        try:
            result = self.run(["db", "help"], cwd=scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return parse_db_dialect(result.stdout + result.stderr), result

    def status(self):
        """Per-service status from `nself status --json` (rc is 0 whatever the health, so parse)."""
        result = self.run(["status", "--json"])
        try:
            data, warning = parse_status(result.stdout)
        except ValueError:
            raise NselfError("`nself status --json` gave no service list (rc %d): %s"
                             % (result.rc, (result.stderr or result.stdout)[:300]), result)
        if warning:
            self._warn(warning)
        self._tell_stopped_from_unhealthy(data["services"])
        return data, data["services"]

    def _tell_stopped_from_unhealthy(self, services):
        """nself's status reads Docker's health before the state, and Docker marks a container's health
        `unhealthy` when it stops, pauses or waits between restarts. So an `unhealthy` service may not run at
        all: ask Docker, and report its state (exited, restarting, paused...) instead, keeping nself's word
        in `reported_status`. A service nself saw running is asked about too: if Docker knows it but not a
        suspect, that container was removed since nself looked (`stopped`)."""
        suspects = [s for s in services if s.get("status") == "unhealthy" and s.get("name")]
        if not suspects:
            return
        try:
            prefix = nenv.project_name(self.project_dir, nenv.load_cascade(self.project_dir, self.env_name())[0])
        except (IOError, OSError) as exc:
            return self._warn("cannot read the env cascade for PROJECT_NAME (%s), so an unhealthy service may be stopped" % exc)
        names = dict((nenv.container_name(prefix, s["name"]), s) for s in suspects)
        docker = self.module.get_bin_path("docker")
        if not docker:
            return self._warn("docker is not on PATH, so %s may be stopped rather than unhealthy (nself says unhealthy "
                              "for both)" % ", ".join(sorted(s["name"] for s in suspects)))
        running = [nenv.container_name(prefix, s["name"]) for s in services if s.get("status") in ("healthy", "starting")]
        cmd = [docker, "inspect", "--type=container"] + sorted(names) + running[:1]
        rc, out, err = self.module.run_command(cmd, check_rc=False)
        self.commands.append({"cmd": cmd, "rc": rc})
        try:
            states = parse_container_states(out)
        except (ValueError, TypeError, AttributeError):
            return self._warn("`docker inspect` gave no container states (rc %d: %s), so an unhealthy service may be "
                              "stopped" % (rc, clean_output(err or out)[:200]))
        unknown = sorted(name for name in names if name not in states)
        if unknown and not states:  # Docker knows no container of the project by these names
            return self._warn("Docker has no container %s, so whether it runs is unknown (is PROJECT_NAME in the env "
                              "files the one nself uses?)" % ", ".join(unknown))
        for name, service in names.items():
            found = states.get(name)
            if found is None:  # Docker knows the project's other containers: this one was removed since nself looked
                service.update(status="stopped", reported_status=service["status"])
            elif found["state"] and found["state"] != "running":
                service.update(found, status=found["state"], reported_status=service["status"])

    def env_name(self):
        return nenv.selected_environment(self.project_dir, self.environ.get("NSELF_ENV"))

    def _warn(self, warning):
        if warning not in self.warnings:
            self.warnings.append(warning)

    def health(self):
        """`nself health --json`: rc is 0 iff nothing is unhealthy; the document says which."""
        result = self.run(["health", "--json"])
        try:
            data, warning = parse_health(result.stdout)
        except ValueError:
            raise NselfError("`nself health --json` gave no parsable result (rc %d): %s"
                             % (result.rc, (result.stderr or result.stdout)[:300]), result)
        return data, warning

    def urls(self):
        result = self.run(["urls", "--json"])
        try:
            return extract_json(result.stdout)
        except ValueError:
            return {}

    def doctor(self):
        result = self.run(["doctor"])
        lines = (result.stdout + "\n" + result.stderr).splitlines()
        findings = [scrub(line.strip()[1:].strip()) for line in lines if line.strip().startswith(("✗", "⚠", "✱"))]
        return {"rc": result.rc, "ok": result.rc == 0, "findings": findings, "output": scrub(result.stdout)}


def _detach_stdin():
    """Point this process's stdin at /dev/null. run_command() leaves the child's stdin inherited
    when no data is given, and an open but silent stdin makes nself prompts hang forever."""
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
    except OSError:
        pass
