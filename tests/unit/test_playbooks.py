"""How the playbooks run across many hosts: a runbook whose role declares itself destructive
(runbook_destructive: true) runs one host at a time and stops at the first failed host; the
read-only ones run on all hosts at once (forks). make bench-fleet proves the stop on real hosts."""
import glob
import os
import re

import pytest
import yaml

COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DESTRUCTIVE_RE = re.compile(r"^\s*runbook_destructive:\s*true\s*$", re.M)
# Plays of a destructive role that run none of its destructive actions.
NOT_DESTRUCTIVE = {"db_pitr_base_backup.yml": "a base backup of the pitr role changes no data"}


def destructive_roles():
    roles = set()
    for path in glob.glob(os.path.join(COLLECTION, "roles", "*", "tasks", "*.yml")):
        with open(path, encoding="utf-8") as handle:
            if DESTRUCTIVE_RE.search(handle.read()):
                roles.add("nfamily.ops." + path.split(os.sep)[-3])
    return roles


def plays():
    """(playbook file name, play, the FQCN roles the play runs) for every play of every playbook."""
    found = []
    for path in sorted(glob.glob(os.path.join(COLLECTION, "playbooks", "*.yml"))):
        with open(path, encoding="utf-8") as handle:
            for play in yaml.safe_load(handle):
                roles = [r["role"] if isinstance(r, dict) else r for r in play.get("roles", [])]
                includes = ("ansible.builtin.include_role", "ansible.builtin.import_role")
                roles += [t[key]["name"] for t in play.get("tasks", []) for key in includes if key in t]
                found.append((os.path.basename(path), play, roles))
    return found


def test_the_destructive_roles_are_found():
    assert {"nfamily.ops.restore", "nfamily.ops.rotate_jwt", "nfamily.ops.deploy"} <= destructive_roles()


@pytest.mark.parametrize("playbook, play, roles", plays(), ids=lambda value: value if isinstance(value, str) else "")
def test_a_destructive_play_runs_one_host_at_a_time_and_stops_at_the_first_failure(playbook, play, roles):
    if set(roles) & destructive_roles() and playbook not in NOT_DESTRUCTIVE:
        assert play.get("serial") == 1, "%s runs %s on several hosts at once" % (playbook, roles)
        assert play.get("max_fail_percentage") == 0, "%s goes on to the next host after a failed one" % playbook
    else:
        assert "serial" not in play, "%s is not destructive: it runs on every host at once" % playbook
