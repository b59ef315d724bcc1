"""What the Molecule test suites share: the scenario's sandbox instance driven with podman exec,
an inventory that puts it in the prod group with the sandbox group_vars, and ansible-playbook
runs of the collection's playbooks as an operator would start them. Ansible reaches the instance
through tests/connection_plugins/podman_pipelined.py: pipelined, as over SSH to a real host."""
import json
import os
import re
import subprocess
import textwrap
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_ENV = {"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_CONNECTION_PLUGINS": os.path.join(REPO, "tests", "connection_plugins")}
PROJECT = "/opt/nself-family/backend"
# The operator's offsite key in the tests (bytes 0..31 in base64), given as AWX's credential gives it.
OFFSITE_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
STATE = "/var/lib/nfamily-ops"
# Directories of the instances' root filesystems (no mount below them) whose files the tests read directly.
ROOTFS_DIRS = (STATE + "/", "/var/lib/nself-sandbox/", "/var/lib/selftest/")


def confirm(host_name, playbook):
    """The -e that confirms a destructive run of playbook on the host: <runbook>@<inventory hostname>."""
    return ("-e", "runbook_confirm=%s@%s" % (os.path.basename(playbook)[:-len(".yml")], host_name))


def layout_vars(group_vars, layout):
    """The sandbox inventory's variables for a host of layout (tests/sandbox/nself_sandbox/layout.py):
    the repository's committed layout has no scheduler and no /auth or /api route on the family domain."""
    if layout == "committed":
        group_vars = dict(group_vars, nfamily_services=[s for s in group_vars["nfamily_services"] if s != "scheduler"],
                          nfamily_nginx_routes=[r for r in group_vars["nfamily_nginx_routes"] if r.get("host")])
    return group_vars


class Instance:
    """One sandbox instance and an inventory that reaches it: by podman exec as root, or with ssh_user
    as production is reached (over SSH as that user, with become unless become=False); its modules run
    with interpreter."""

    def __init__(self, name, workdir, layout="nself", ssh_user=None, become=True, interpreter="/usr/bin/python3"):
        self.name = name
        self._rootfs = None
        self.layout = layout
        self.workdir = str(workdir)
        self.reports = os.path.join(self.workdir, "reports")
        with open(os.path.join(REPO, "inventories", "sandbox", "group_vars", "nfamily_backend.yml"), encoding="utf-8") as handle:
            group_vars = layout_vars(yaml.safe_load(handle), layout)
        host_vars = self.ssh_vars(ssh_user, become) if ssh_user else {"ansible_connection": "podman_pipelined"}
        host_vars["ansible_python_interpreter"] = interpreter
        self.host_vars = host_vars
        inventory = {"all": {"children": {"nfamily_backend": {"vars": group_vars, "children": {"prod": {"hosts": {name: host_vars}}}}}}}
        self.inventory = os.path.join(self.workdir, "hosts.yml")
        with open(self.inventory, "w", encoding="utf-8") as handle:
            yaml.safe_dump(inventory, handle)

    def ssh_vars(self, user, become):
        """The instance as inventories/prod reaches a host: SSH (its port 22 is published on the loopback
        address) as user with a key of this test run, the host key pinned in a known_hosts of its own, and
        become through sudo. The key goes into the user's authorized_keys as provisioning would put it."""
        key = os.path.join(self.workdir, "id_ed25519")
        if not os.path.exists(key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nfamily-ops-test", "-f", key], check=True)
        with open(key + ".pub", encoding="utf-8") as handle:
            public = handle.read().strip()
        home = "/home/%s/.ssh" % user
        self.sh("install -d -m 0700 -o {u} -g {u} {h} && touch {h}/authorized_keys && "
                "{{ grep -qxF '{k}' {h}/authorized_keys || printf '%s\\n' '{k}' >> {h}/authorized_keys; }} && "
                "chown {u}:{u} {h}/authorized_keys && chmod 0600 {h}/authorized_keys".format(u=user, h=home, k=public))
        published = subprocess.run(["podman", "port", self.name, "22/tcp"], capture_output=True, text=True, check=True).stdout
        address, port = published.split()[0].rsplit(":", 1)
        host_key = self.run("cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
        known_hosts = os.path.join(self.workdir, "known_hosts")
        with open(known_hosts, "w", encoding="utf-8") as handle:
            handle.write("[%s]:%s %s\n" % (address, port, " ".join(host_key)))
        return {"ansible_connection": "ssh", "ansible_host": address, "ansible_port": int(port), "ansible_user": user,
                "ansible_ssh_private_key_file": key, "ansible_become": become,
                "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
                                           % known_hosts}

    def run(self, *argv, workdir=None):
        cmd = ["podman", "exec", "-i"] + (["-w", workdir] if workdir else []) + [self.name] + list(argv)
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, check=False)

    def sh(self, script):
        return self.run("sh", "-c", script)

    def nself(self, *argv):
        return self.run("nself", *argv, workdir=PROJECT)

    def psql(self, sql, database="nself_family"):
        proc = self.run("psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "/var/run/postgresql", "-U", "postgres",
                        "-d", database, "-c", sql)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def statuses(self):
        """Each service's status as the collection reads it (nself_info): nself's word, or the container's
        state where nself calls a container that does not run unhealthy (it reads Docker's health first)."""
        words = {s["name"]: s["status"] for s in json.loads(self.nself("status", "--json").stdout, strict=False)["services"]}
        states = self.states() if "unhealthy" in words.values() else {}
        return {name: states[name] if word == "unhealthy" and states.get(name, "running") != "running" else word
                for name, word in words.items()}

    def states(self):
        """Docker's State.Status of each service's container, from `docker inspect`."""
        listing = self.run("ls", "/var/lib/nself-sandbox/containers").stdout.split()
        names = [n[:-len(".json")] for n in listing if n.endswith(".json")]
        documents = json.loads(self.run("docker", "inspect", *names).stdout) if names else []
        return {d["Config"]["Labels"]["com.docker.compose.service"]: d["State"]["Status"] for d in documents}

    def read_text(self, path):
        """The text of a file on the host, or None. The run state and the sandbox's records are read through
        the container's root filesystem as the machine sees it (`podman mount`): the tests poll them while a
        playbook runs, and a podman exec per look would take the CPU the playbook under test needs."""
        local = self._rootfs_path(path)
        if local:
            try:
                with open(local, encoding="utf-8") as handle:
                    return handle.read()
            except FileNotFoundError:
                return None
        proc = self.run("cat", path)
        return proc.stdout if proc.returncode == 0 else None

    def _rootfs_path(self, path):
        """Where path is in the machine's view of the container's root filesystem, or None when it is not
        a plain file of the image's layers (a mount, a symlink out of it) or podman cannot mount it."""
        if not path.startswith(ROOTFS_DIRS):
            return None
        if self._rootfs is None or (self._rootfs and not os.path.isdir(os.path.join(self._rootfs, "var", "lib"))):
            # a new mount when the container was removed (a recreated one has another root); "" once podman cannot
            proc = subprocess.run(["podman", "mount", self.name], capture_output=True, text=True, check=False)
            self._rootfs = os.path.realpath(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else ""
        if not self._rootfs:
            return None
        local = os.path.join(self._rootfs, path.lstrip("/"))
        return local if os.path.realpath(local).startswith(self._rootfs + os.sep) else None

    def read_json(self, path):
        text = self.read_text(path)
        return json.loads(text) if text is not None else None

    def calls(self, run_id=None):
        """The nself invocations on the host (argv lists), all or those of one run."""
        entries = [json.loads(line) for line in (self.read_text("/var/lib/nself-sandbox/calls.jsonl") or "").splitlines()]
        return [e["argv"] for e in entries if run_id is None or e.get("run_id") == run_id]

    def hold_lock(self, family, runbook, run_id="held-by-another-run", owner="alice"):
        """Make a run of runbook alive on the host and holding family's lock (a process carries its run id,
        as a task of a run does); returns the function that ends it."""
        holder = {"run_id": run_id, "runbook": runbook, "family": family, "owner": owner, "target": "elsewhere",
                  "acquired_at": "2026-11-29T02:00:00Z", "expires_at": "2000-01-01T00:00:00Z"}
        self.sh("mkdir -p %s/locks && cat > %s/locks/%s.json <<'EOF'\n%s\nEOF" % (STATE, STATE, family, json.dumps(holder)))
        # a task as Ansible starts one: a shell that names the run, with the module below it (in a detached
        # exec session: podman ends what is left of a finished one)
        subprocess.run(["podman", "exec", "-d", self.name, "sh", "-c", "NFAMILY_OPS_RUN_ID=%s sleep 300 && sleep 0" % run_id],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=True)

        def release():
            self.sh("pkill -f '^sh -c NFAMILY_OPS_RUN_ID=%s '; pkill -f '^sleep 300'; rm -f %s/locks/%s.json" % (run_id, STATE, family))
        return release

    def triage_observes(self, holder):
        """The hourly triage, run while another run (holder, its lock) holds the host for maintenance:
        it succeeds, says who holds the host, and neither restarts, stops nor rebuilds anything."""
        triage = self.playbook("api_triage.yml")
        assert triage.returncode == 0, triage.stdout[-3000:]
        record = self.records()[-1]
        assert record["runbook"] == "api_triage" and record["changed_steps"] == []
        assert record["summary"].startswith("maintenance by run %s of %s" % (holder["run_id"], holder["runbook"])), record["summary"]
        assert self.calls(record["run_id"]), "the triage left no nself call on record"
        assert not [argv for argv in self.calls(record["run_id"]) if argv[:1] in (["start"], ["stop"], ["restart"], ["build"])]
        return record

    def records(self):
        return [json.loads(line) for line in (self.read_text(STATE + "/runs.jsonl") or "").splitlines()]

    def module(self, name, args, *extra):
        """Run one nfamily.ops module ad hoc (args as a dict), as `ansible -m` would; returns (rc, result, output)."""
        argv = ["ansible", self.name, "-i", self.inventory, "-m", "nfamily.ops." + name, "-a", json.dumps(args)] + list(extra)
        env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", **ANSIBLE_ENV)
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              stdin=subprocess.DEVNULL, check=False)
        try:
            result = json.loads(proc.stdout[proc.stdout.index("{"):])["plays"][0]["tasks"][0]["hosts"][self.name]
        except (ValueError, KeyError, IndexError):
            result = {}
        return proc.returncode, result, proc.stdout

    def playbook(self, playbook, *extra, background=False, env=None):
        path = playbook if os.path.isabs(playbook) else os.path.join(REPO, "playbooks", playbook)
        argv = ["ansible-playbook", "-i", self.inventory, path, "-e", "runbook_report_dir=%s" % self.reports] + list(extra)
        env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", **dict(ANSIBLE_ENV, **(env or {})))
        if background:
            return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True, text=True)
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              stdin=subprocess.DEVNULL, check=False)


def kill_points(every, in_suite):
    """The points a kill-matrix test kills a run at: in_suite (one point of the runbook's riskiest step) in
    `make test`, which must fit its time; all of every under `make kill-matrix` (NFAMILY_OPS_KILL_MATRIX=all)."""
    every = list(every)
    assert all(point in every for point in in_suite), in_suite
    return every if os.environ.get("NFAMILY_OPS_KILL_MATRIX") == "all" else list(in_suite)


def wait_for(predicate, timeout=90, interval=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def recap(output):
    """{'ok': n, 'changed': n, 'failed': n, ...} of the last PLAY RECAP line."""
    line = [l for l in output.splitlines() if " : ok=" in l][-1]
    return {k: int(v) for k, v in (item.split("=") for item in line.split(":", 1)[1].split())}


def last_failure(output):
    """The message of the last failed task of a playbook run: what AWX shows as the job's failure."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^(fatal|failed): \[", line)]
    assert starts, "the run failed no task:\n" + output[-2000:]
    first = lines[starts[-1]]
    inline = first.split("=>", 1)[1].strip() if "=>" in first else ""
    if inline.startswith("{"):
        return " ".join(str(json.loads(inline).get("msg", "")).split())
    block = []
    for line in lines[starts[-1] + 1:]:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    return " ".join(str(yaml.safe_load(textwrap.dedent("\n".join(block))).get("msg", "")).split())


def assert_failed_with(proc, *fragments):
    """The run failed (rc 2) and its last line is its first cause: it names each fragment, and is
    never a secondary error (a templating error, a missing run to finish)."""
    assert proc.returncode == 2, proc.stdout[-3000:]
    message = last_failure(proc.stdout)
    for bad in ("is undefined", "has no run", "Task failed:", "object of type"):
        assert bad not in message, message
    for fragment in fragments:
        assert " ".join(fragment.split()) in message, "%r not in the last line: %s" % (fragment, message)
    return message
