"""A fresh production host (issue 21): Debian's python3 without boto3, PyYAML or python3-apt, reached
over SSH as `ops` with sudo. A runbook that needs a library is refused at its preflight, before the
lock and before nself runs, naming the library and the command that installs it; host_prepare.yml
lists in check mode what it would install and changes nothing, then installs it without touching
Docker or the project, and a second run changes nothing; afterwards the refused runbooks pass.
The tests run in order: each leaves the host as the next expects it."""
import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_shared"))
from runbook_host import OFFSITE_KEY, PROJECT, STATE, Instance, assert_failed_with, recap, wait_for  # noqa: E402

NAME = "nfamily-molecule-bare"
OFFSITE = ("-e", "backup_name=offsite.dump", "-e", json.dumps({"backup_offsite": {"bucket": "nf-backups", "encryption_key": OFFSITE_KEY}}))
IMPORTS = "import boto3, cryptography, yaml"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The instance by podman exec, as root: the hands that look."""
    return Instance(NAME, tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="module")
def ops(tmp_path_factory, root):
    assert wait_for(lambda: set(root.statuses().values()) == {"healthy"}, timeout=120)
    return Instance(NAME, tmp_path_factory.mktemp("ssh"), ssh_user="ops")


def imports(box, statement=IMPORTS):
    return box.run("python3", "-c", statement).returncode == 0


def untouched_by_host_prepare(box):
    """What host_prepare must leave as it found it: the project's files, the containers (each one's
    start time) and nself's calls."""
    project = box.sh("cd %s && find . -path ./backups -prune -o -type f -print0 | sort -z | xargs -0 sha256sum" % PROJECT).stdout
    names = [n[:-len(".json")] for n in box.run("ls", "/var/lib/nself-sandbox/containers").stdout.split() if n.endswith(".json")]
    containers = sorted((d["Name"], d["State"]["StartedAt"]) for d in json.loads(box.run("docker", "inspect", *names).stdout))
    return project, containers, len(box.calls())


def test_the_bare_host_lacks_the_libraries_and_the_report_needs_none(root, ops):
    assert not any(imports(root, "import " + name) for name in ("boto3", "cryptography", "yaml", "apt"))
    report = ops.playbook("service_report.yml")
    assert report.returncode == 0 and "failed=0" in report.stdout, report.stdout[-3000:]


def test_a_storage_recovery_and_an_offsite_backup_are_refused_naming_the_library_and_its_command(root, ops):
    before = len(root.calls())
    storage = ops.playbook("storage_recovery.yml")
    assert_failed_with(storage, "this host's Python (/usr/bin/python3) lacks boto3 (python3-boto3)",
                       "install it with `sudo apt-get install -y python3-boto3` (or run playbooks/host_prepare.yml)")
    backup = ops.playbook("db_backup.yml", *OFFSITE)
    assert_failed_with(backup, "lacks boto3 (python3-boto3), cryptography (python3-cryptography)",
                       "`sudo apt-get install -y python3-boto3 python3-cryptography`")
    assert root.calls()[before:] == []  # refused before nself ran at all
    assert root.sh("ls %s/locks 2>/dev/null" % STATE).stdout.strip() == ""  # and before any lock
    assert root.run("test", "-e", PROJECT + "/backups/offsite.dump").returncode == 1
    records = root.records()
    assert [(r["runbook"], r["result"]) for r in records[-2:]] == [("storage_recovery", "failed"), ("db_backup", "failed")]
    assert "lacks boto3" in records[-1]["summary"]


def test_host_prepare_in_check_mode_names_the_packages_and_changes_nothing(root, ops):
    lists = root.sh("ls -A /var/lib/apt/lists").stdout
    check = ops.playbook("host_prepare.yml", "--check")
    assert check.returncode == 0, check.stdout[-3000:]
    assert recap(check.stdout)["changed"] == 1, check.stdout[-3000:]
    assert "would install python3-boto3, python3-cryptography, python3-yaml for /usr/bin/python3" in check.stdout
    assert not any(imports(root, "import " + name) for name in ("boto3", "cryptography", "yaml"))
    assert root.sh("ls -A /var/lib/apt/lists").stdout == lists  # not even the package lists


def test_host_prepare_installs_them_and_touches_neither_docker_nor_the_project(root, ops):
    before = untouched_by_host_prepare(root)
    prepare = ops.playbook("host_prepare.yml")
    assert prepare.returncode == 0, prepare.stdout[-3000:]
    assert recap(prepare.stdout)["changed"] == 1, prepare.stdout[-3000:]
    assert imports(root) and imports(root, "import apt")  # apt's own binding came with it
    assert untouched_by_host_prepare(root) == before


def test_a_second_host_prepare_changes_nothing_and_calls_no_apt(root, ops):
    apt_state = "stat -c '%n %Y %s' /var/cache/apt/pkgcache.bin /var/lib/apt/lists /var/log/apt/history.log"
    before = root.sh(apt_state).stdout
    again = ops.playbook("host_prepare.yml")
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    install = re.search(r"TASK \[nfamily\.ops\.host_prepare : Install the missing libraries' packages\] \**\n(\S+)", again.stdout)
    assert install and install.group(1) == "skipping:", again.stdout[-3000:]
    assert root.sh(apt_state).stdout == before and "history.log" in before


def test_the_refused_runbooks_pass_after_host_prepare(root, ops):
    storage = ops.playbook("storage_recovery.yml")
    assert storage.returncode == 0, storage.stdout[-3000:]
    backup = ops.playbook("db_backup.yml", *OFFSITE)
    assert backup.returncode == 0, backup.stdout[-3000:]
    manifest = root.read_json(PROJECT + "/backups/offsite.dump.manifest.json")
    assert manifest["offsite"]["key"] == "db/offsite.dump" and manifest["offsite"]["encryption"]["algorithm"] == "AES-256-GCM"
    records = root.records()
    assert [(r["runbook"], r["result"], r["host_user"]) for r in records[-2:]] == [
        ("storage_recovery", "success", "ops"), ("db_backup", "success", "ops")]
