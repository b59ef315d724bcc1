"""The runbooks reached as production reaches a host (issue 20): over SSH as the operator `ops`, who
has a key and sudo, with the host key pinned, on a host whose project belongs to `nfamily`. The same
runs as over podman give the same results; what the collection writes has the owner and mode it
should; no secret shows at -vvv; the run record names `ops`; and without become every runbook stops
at its preflight, before any change, saying which right is missing."""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_shared"))
from runbook_host import PROJECT, STATE, Instance, confirm, assert_failed_with, wait_for  # noqa: E402

NAME = "nfamily-molecule-ssh"
ENV_FILES = [".env", ".env.dev", ".env.prod", ".env.secrets"]
SECRET_KEYS = ("PASSWORD", "SECRET", "_KEY")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The instance by podman exec, as root: the baseline, and the hands that set faults."""
    return Instance(NAME, tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="module")
def ops(tmp_path_factory, root):
    return Instance(NAME, tmp_path_factory.mktemp("ssh"), ssh_user="ops")


@pytest.fixture
def host(root):
    """Every test starts with no fault, every service healthy and no run state."""
    root.run("sandbox-fault", "clear")
    root.sh("rm -rf %s" % STATE)
    if set(root.statuses().values()) != {"healthy"}:
        root.nself("stop")
        root.nself("start")
    assert wait_for(lambda: set(root.statuses().values()) == {"healthy"}, timeout=120)
    return root


def owner_and_mode(box, *paths):
    """{path: "owner octal-mode"} of paths on the host (missing ones left out)."""
    proc = box.run("stat", "-c", "%n %U %a", *paths)
    return dict((line.split(" ", 1)[0], line.split(" ", 1)[1]) for line in proc.stdout.splitlines())


def secret_values(box):
    """Every secret-looking value of the host's env files, as they are now."""
    values = set()
    for name in ENV_FILES:
        for line in box.run("cat", os.path.join(PROJECT, name)).stdout.splitlines():
            key, value = line.split("=", 1) if "=" in line else (line, "")
            value = value.strip().strip("'\"")
            if any(word in key for word in SECRET_KEYS) and len(value) >= 8:
                values.add(value)
    return values


def ssh(ops, *argv, user="ops", known_hosts=None):
    hostvars = ops.host_vars
    cmd = ["ssh", "-p", str(hostvars["ansible_port"]), "-i", hostvars["ansible_ssh_private_key_file"], "-o", "BatchMode=yes",
           "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes", "-o",
           "UserKnownHostsFile=%s" % (known_hosts or os.path.join(ops.workdir, "known_hosts")),
           "%s@%s" % (user, hostvars["ansible_host"])] + list(argv)
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False)


def test_the_host_is_reached_as_production_is(host, ops):
    published = subprocess.run(["podman", "port", NAME, "22/tcp"], capture_output=True, text=True, check=True).stdout
    assert published.startswith("127.0.0.1:"), published  # the loopback address only
    assert ssh(ops, "id", "-un").stdout.strip() == "ops"
    assert ssh(ops, "nself", "-v").returncode == 0 and host.calls()[-1] == ["-v"]  # ops's calls are on record too
    refused = ssh(ops, "true", user="root")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    empty = os.path.join(ops.workdir, "empty_known_hosts")
    open(empty, "w").close()
    unknown = ssh(ops, "true", known_hosts=empty)
    assert unknown.returncode == 255 and "Host key verification failed" in unknown.stderr
    rc, result, output = ops.module("nself_info", {"project_dir": PROJECT, "gather": ["status"]})
    assert rc == 0 and set(s["status"] for s in result["services"]) == {"healthy"}, output[-2000:]
    files = owner_and_mode(host, PROJECT, PROJECT + "/.env.secrets", PROJECT + "/.env.prod")
    assert files == {PROJECT: "nfamily 755", PROJECT + "/.env.secrets": "nfamily 600", PROJECT + "/.env.prod": "nfamily 644"}


def test_the_report_over_ssh_is_the_report_over_podman(host, ops):
    args = {"project_dir": PROJECT, "gather": ["status", "health"]}
    over_podman, over_ssh = host.module("nself_info", args)[1], ops.module("nself_info", args)[1]
    assert [(s["name"], s["status"]) for s in over_ssh["services"]] == [(s["name"], s["status"]) for s in over_podman["services"]]
    assert over_ssh["health"]["total"] == over_podman["health"]["total"] and over_ssh["healthy"] is True
    report = ops.playbook("service_report.yml")
    assert report.returncode == 0 and "failed=0" in report.stdout, report.stdout[-3000:]


def test_backup_and_restore_over_ssh_write_root_only_files_and_name_ops(host, ops):
    backup = ops.playbook("db_backup.yml", "-e", "backup_name=ssh.dump")
    assert backup.returncode == 0, backup.stdout[-3000:]
    host.psql("DELETE FROM public.family_members WHERE role = 'CHILD_MEMBER'")
    restore = ops.playbook("db_restore.yml", "-e", "restore_source=ssh.dump", *confirm(NAME, "db_restore.yml"))
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert host.psql("SELECT count(*) FROM public.family_members WHERE role = 'CHILD_MEMBER'") != "0"
    written = owner_and_mode(host, STATE, STATE + "/runs.jsonl", PROJECT + "/backups/ssh.dump",
                             PROJECT + "/backups/ssh.dump.manifest.json")
    assert written == {STATE: "root 700", STATE + "/runs.jsonl": "root 600", PROJECT + "/backups/ssh.dump": "root 600",
                       PROJECT + "/backups/ssh.dump.manifest.json": "root 600"}
    records = host.records()
    assert [(r["runbook"], r["result"], r["host_user"]) for r in records[-2:]] == [
        ("db_backup", "success", "ops"), ("db_restore", "success", "ops")]


def test_rotation_over_ssh_keeps_the_env_files_owner_and_shows_no_secret_at_vvv(host, ops):
    before = secret_values(host)
    proc = ops.playbook("rotate_jwt.yml", "-e", "rotate_jwt_mode=forced", "-vvv", *confirm(NAME, "rotate_jwt.yml"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    after = secret_values(host)
    assert after - before, "the rotation changed no secret"
    shown = [value[:4] + "..." for value in before | after if value in proc.stdout]
    assert not shown, "secrets in the -vvv output over SSH: %s" % shown
    assert "SSH: EXEC ssh" in proc.stdout and "sudo" in proc.stdout  # -vvv did show the connection
    backups = host.sh("ls -1 %s/.env*.bak" % PROJECT).stdout.split()
    files = owner_and_mode(host, *[os.path.join(PROJECT, name) for name in ENV_FILES] + backups)
    assert backups and all(files[path] == "nfamily 600" for path in backups), files
    rewritten = [path[:-len(".bak")].rsplit(".", 1)[0] for path in backups]
    assert all(files[path] == "nfamily 600" for path in rewritten), files  # they hold a key now
    assert all(value.split()[0] == "nfamily" for value in files.values()), files
    assert host.records()[-1]["host_user"] == "ops"


def test_triage_remediates_over_ssh(host, ops):
    host.run("sandbox-fault", "set", "kill", "auth")
    assert wait_for(lambda: host.statuses()["auth"] == "exited", timeout=30)
    proc = ops.playbook("api_triage.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert wait_for(lambda: set(host.statuses().values()) == {"healthy"}, timeout=60)
    record = host.records()[-1]
    assert record["runbook"] == "api_triage" and record["changed_steps"] == ["remediate"] and record["host_user"] == "ops"


# Every playbook, with inputs that pass their own checks, so that what stops it is the missing rights.
RUNBOOKS = [
    ("service_report.yml",),
    ("api_triage.yml",),
    ("service_recovery.yml",) + confirm(NAME, "service_recovery.yml"),
    ("storage_recovery.yml",),
    ("db_backup.yml",),
    ("db_restore.yml", "-e", "restore_source=ssh.dump") + confirm(NAME, "db_restore.yml"),
    ("db_restore_drill.yml",),
    ("migration_rollback.yml", "-e", "migration_rollback_version=010") + confirm(NAME, "migration_rollback.yml"),
    ("db_pitr_enable.yml",) + confirm(NAME, "db_pitr_enable.yml"),
    ("db_pitr_base_backup.yml",),
    ("db_pitr.yml", "-e", "pitr_target_time=2026-11-27T03:05:00Z") + confirm(NAME, "db_pitr.yml"),
    ("rotate_jwt.yml", "-e", "rotate_jwt_mode=forced") + confirm(NAME, "rotate_jwt.yml"),
    ("revoke_devices.yml", "-e", "revoke_devices_family_id=00000000-0000-0000-0000-000000000001") + confirm(NAME, "revoke_devices.yml"),
]


def test_without_become_every_runbook_stops_at_its_first_check(host, tmp_path):
    """Each playbook as ops without become: refused by the rights check, before anything is written or
    nself runs. Four at a time (they take no lock): sshd's MaxStartups drops more at once."""
    plain = Instance(NAME, tmp_path, ssh_user="ops", become=False)
    env_files = host.sh("cd %s && sha256sum .env*" % PROJECT).stdout
    before = len(host.calls())
    wrong = []
    for first in range(0, len(RUNBOOKS), 4):
        runs = [(runbook[0], plain.playbook(*runbook, background=True)) for runbook in RUNBOOKS[first:first + 4]]
        for name, run in runs:
            output = run.communicate()[0]
            try:
                assert_failed_with(subprocess.CompletedProcess(run.args, run.returncode, output),
                                   "ops cannot read %s/.env.secrets (nfamily, 0600)" % PROJECT, "ansible_become: true")
            except AssertionError as exc:
                wrong.append("%s: %s" % (name, str(exc)[:600]))
    assert not wrong, "\n".join(wrong)
    assert host.run("test", "-e", STATE).returncode == 1  # no lock, checkpoint or record
    assert host.sh("cd %s && sha256sum .env*" % PROJECT).stdout == env_files
    assert host.calls()[before:] == []  # the rights are checked before nself runs at all
