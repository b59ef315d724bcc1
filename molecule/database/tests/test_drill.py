"""Restore drills against the scenario's sandbox host, with the playbook AWX schedules weekly: a good
backup passes without a service stopped or the live database touched; a backup rewritten and
checksummed after it was taken is caught, marked, and skipped by restore_source=latest; a database
volume too small for the copy is refused before anything starts; an offsite copy is drilled too."""
import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_shared"))
from runbook_host import OFFSITE_KEY, PROJECT, STATE, Instance, assert_failed_with, wait_for  # noqa: E402

BACKUPS = PROJECT + "/backups"
VOLUMES = "/srv/volumes"  # a filesystem of its own in this scenario (molecule.yml), so a short disk is real
FORGE = """set -e
P="psql -X -q -h /var/run/postgresql -U postgres"
$P -d postgres -c "DROP DATABASE IF EXISTS forged" -c "CREATE DATABASE forged"
pg_restore -h /var/run/postgresql -U postgres -d forged "$1"
$P -d forged -c "UPDATE public.users SET email = 'attacker@example.com' WHERE email = 'ops-verify@nself.org'"
pg_dump -h /var/run/postgresql -U postgres -d forged -Fc -f "$1"
$P -d postgres -c "DROP DATABASE forged"
python3 - "$1" <<'PY'
import hashlib, json, os, sys
dump = sys.argv[1]
manifest = json.load(open(dump + ".manifest.json"))
manifest["sha256"] = hashlib.sha256(open(dump, "rb").read()).hexdigest()
manifest["size"] = os.path.getsize(dump)
json.dump(manifest, open(dump + ".manifest.json", "w"), indent=1, sort_keys=True)
PY
"""


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    instance = Instance("nfamily-molecule-database", tmp_path_factory.mktemp("drill"))
    instance.sh("rm -rf %s" % STATE)
    return instance


def backup(box, name, *extra):
    proc = box.playbook("db_backup.yml", "-e", "backup_name=%s" % name, *extra)
    assert proc.returncode == 0, proc.stdout[-2000:]
    return box.read_json("%s/%s.manifest.json" % (BACKUPS, name))


def drill(box, *extra):
    return box.playbook("db_restore_drill.yml", *extra)


def drill_databases(box):
    return box.psql("SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '%\\_drill\\_%'")


def user_emails(box):
    return box.psql("SELECT string_agg(email, ',' ORDER BY email) FROM public.users")


def all_healthy(box):
    return set(box.statuses().values()) == {"healthy"}


def test_a_good_backup_passes_without_a_service_stopped_or_the_live_database_touched(box):
    taken = backup(box, "drill-good.dump")
    before = user_emails(box)
    proc = drill(box, "-e", "restore_drill_source=drill-good.dump")
    assert proc.returncode == 0, proc.stdout[-3000:]
    marked = box.read_json(BACKUPS + "/drill-good.dump.manifest.json")["drill"]
    assert marked["result"] == "passed" and marked["checksums_compared"] and marked["problems"] == []
    assert marked["restore_estimate_seconds"] >= marked["restore_seconds"] > 0
    record = box.records()[-1]
    assert record["runbook"] == "db_restore_drill" and record["result"] == "success"
    assert "drill-good.dump restores to what its manifest says (row counts, migrations and content checksums)" in record["summary"]
    assert not [argv for argv in box.calls(record["run_id"]) if argv[:1] in (["start"], ["stop"], ["restart"], ["build"])]
    assert drill_databases(box) == "" and user_emails(box) == before and all_healthy(box)
    report = open(os.path.join(box.reports, record["run_id"], box.name + ".md"), encoding="utf-8").read()
    assert "a real restore would take about %s s (%s s with a safety backup first" % (
        marked["restore_seconds"], marked["restore_estimate_seconds"]) in report
    assert taken["sha256"] == box.read_json(BACKUPS + "/drill-good.dump.manifest.json")["sha256"]


def test_a_backup_rewritten_and_checksummed_after_is_caught_and_skipped_from_then_on(box):
    backup(box, "drill-ok.dump")
    backup(box, "drill-forged.dump")
    box.sh("cat > /tmp/forge.sh <<'EOF'\n%sEOF" % FORGE)
    forged = box.run("bash", "/tmp/forge.sh", BACKUPS + "/drill-forged.dump")
    assert forged.returncode == 0, forged.stderr
    try:
        verified = box.module("db_restore", {"project_dir": PROJECT, "source": "drill-forged.dump", "state": "verified"})
        assert verified[0] == 0  # its sha256 and size match its manifest: only a restore shows what it holds
        proc = drill(box)  # latest: the forged one
        assert_failed_with(proc, "db_restore_drill failed on %s: restore drill of drill-forged.dump FAILED:" % box.name,
                           "public.users content differs from the backup's", "marked failed-drill in its manifest")
        marked = box.read_json(BACKUPS + "/drill-forged.dump.manifest.json")["drill"]
        assert marked["result"] == "failed" and marked["run_id"] == box.records()[-1]["run_id"]
        assert drill_databases(box) == ""
        plan = box.playbook("db_restore.yml", "-e", "restore_source=latest", "--check")
        assert plan.returncode == 0, plan.stdout[-3000:]
        assert "skipping drill-forged.dump, which failed its restore drill" in " ".join(plan.stdout.split())
        run_id = re.search(r"db_restore run (\S+) on ", plan.stdout).group(1)
        with open(os.path.join(box.reports, run_id, box.name + ".json"), encoding="utf-8") as handle:
            assert json.load(handle)["parameters"]["backup"] == "drill-ok.dump"  # what the restore would restore
    finally:
        box.sh("rm -f %s/drill-forged.dump*" % BACKUPS)


def test_a_database_volume_too_small_for_the_copy_is_refused_before_anything_starts(box):
    taken = backup(box, "drill-space.dump")
    needed = taken["database_size"] + taken["size"]
    free = int(box.sh("df -B1 --output=avail %s | tail -1" % VOLUMES).stdout)
    assert free > needed
    assert box.sh("fallocate -l %d %s/ballast" % (free - needed // 2, VOLUMES)).returncode == 0
    try:
        state = box.read_json(STATE + "/runs/db_restore_drill.json")
        proc = drill(box, "-e", "restore_drill_source=drill-space.dump")
        assert_failed_with(proc, "the database volume has", "the restore drill needs about", "Nothing was started")
        assert drill_databases(box) == "" and "drill" not in box.read_json(BACKUPS + "/drill-space.dump.manifest.json")
        assert box.read_json(STATE + "/runs/db_restore_drill.json") == state  # refused before the run began
    finally:
        box.sh("rm -f %s/ballast" % VOLUMES)
    assert all_healthy(box)


def test_the_offsite_copy_is_drilled_and_its_record_goes_offsite_too(box):
    offsite = json.dumps({"backup_offsite": {"bucket": "nf-backups", "encryption_key": OFFSITE_KEY}})
    backup(box, "drill-offsite.dump", "-e", offsite)
    box.sh("rm -f %s/drill-offsite.dump*" % BACKUPS)  # the host lost its copy
    proc = drill(box, "-e", "restore_drill_source=drill-offsite.dump",
                 "-e", json.dumps({"restore_drill_offsite": {"bucket": "nf-backups", "encryption_key": OFFSITE_KEY}}))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert box.read_json(BACKUPS + "/drill-offsite.dump.manifest.json")["drill"]["result"] == "passed"
    rc, result, output = box.module("minio_object", {"project_dir": PROJECT, "bucket": "nf-backups", "key": "db/drill-offsite.dump.manifest.json",
                                                     "mode": "get", "dest": "/tmp/remote-manifest.json"})
    assert rc == 0, output[-2000:]
    remote = box.read_json("/tmp/remote-manifest.json")
    assert remote["drill"]["result"] == "passed" and remote["authentication"]["algorithm"] == "HMAC-SHA256"  # signed again
    assert wait_for(lambda: all_healthy(box), timeout=30)
