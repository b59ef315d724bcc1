"""Every runbook launched the way AWX launches it (ansible-runner's Python API in a private data directory, the job id in
the environment and in extra variables, survey answers as extra variables, credentials injected as environment
variables, no one to answer a prompt) ends as the same run from ansible-playbook: the same result, run record, report
and host state; the run id is AWX's job id, and set_stats lands in the runner's artifacts.

Each test puts the host in the same starting state before each of the two runs, and compares what two runs of the same
request share: the record and report without who, when and which run (run ids and times are replaced by placeholders
wherever they appear, as in a backup's name), the report's sections, and the state the runbook is for (its rows,
files, keys or services). The same answers from a shell come as -e (a string for name=value, JSON for a list), from
AWX as JSON: the runbooks take both."""
import itertools
import json
import os
import re
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_shared"))
import awx_job  # noqa: E402
from awx_job import JOB_IDS, TIMES, VERIFY_PASSWORD, compare  # noqa: E402
from runbook_host import OFFSITE_KEY, PROJECT, STATE, Instance, wait_for  # noqa: E402

NAME = "nfamily-molecule-awx"
BACKUPS = PROJECT + "/backups"
DEMO_FAMILY = "00000000-0000-0000-0000-000000000001"


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    instance = Instance(NAME, tmp_path_factory.mktemp("awx"))
    instance.sh("rm -rf %s/*" % BACKUPS)
    instance.psql("CREATE TABLE IF NOT EXISTS public.devices_saved AS SELECT * FROM public.registered_devices")
    base = instance.playbook("db_backup.yml", "-e", "backup_name=base.dump")  # the tests that restore it keep devices_saved
    assert base.returncode == 0, base.stdout[-2000:]
    return instance


@pytest.fixture(scope="module")
def awx_inventory(box):
    return awx_job.inventory(box)


def healthy(box):
    if set(box.statuses().values()) != {"healthy"}:
        box.nself("start")
    assert wait_for(lambda: set(box.statuses().values()) == {"healthy"}, timeout=120)


def nothing(box):
    def setup():
        box.run("sandbox-fault", "clear")
        healthy(box)
    return setup


def counts(box):
    tables = ["public.users", "public.families", "public.family_members", "public.registered_devices", "auth.refresh_tokens"]
    sql = " UNION ALL ".join("SELECT '%s', count(*) FROM %s" % (t, t) for t in tables)
    return dict(line.split("|") for line in box.psql(sql).splitlines())


def databases(box):
    """The databases by kind: a replaced one kept as <db>_pre_restore_<time> counts as its kind once."""
    return box.psql("SELECT string_agg(DISTINCT regexp_replace(datname, '[0-9TZ_]+$', ''), ',' "
                    "ORDER BY regexp_replace(datname, '[0-9TZ_]+$', '')) FROM pg_database")


def backups(box):
    return sorted(name for name in box.run("ls", BACKUPS).stdout.split() if not name.endswith(".tmp"))


# ------------------------------------------------------------------ runbooks that change the host

def minio_keys(box):
    """The project's MinIO keys as its env cascade gives them (the last file that sets one wins)."""
    found = {}
    for name in (".env.dev", ".env.prod", ".env.secrets", ".env"):
        for line in box.run("cat", "%s/%s" % (PROJECT, name)).stdout.splitlines():
            key, _sep, value = line.partition("=")
            if key in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
                found[key] = value.strip().strip("'\"")
    return found["MINIO_ROOT_USER"], found["MINIO_ROOT_PASSWORD"]


def test_db_backup_with_its_offsite_copy(box, awx_inventory, tmp_path):
    """A backup with its offsite copy: the shell run takes the store's keys from the project's env files, the AWX-shaped
    one from the offsite credential (NFAMILY_OFFSITE_ACCESS_KEY, NFAMILY_OFFSITE_SECRET_KEY); both seal the copy with
    the operator's key (NFAMILY_OFFSITE_KEY)."""
    made = []

    def state():
        added = [name for name in backups(box) if name not in made]
        made.extend(added)
        dump = [n for n in added if n.endswith(".dump")][0]
        manifest = box.read_json("%s/%s.manifest.json" % (BACKUPS, dump))
        return {"added": sorted(TIMES.sub("<time>", n) for n in added), "manifest_keys": sorted(manifest),
                "offsite": TIMES.sub("<time>", manifest["offsite"]["key"]), "sealed": manifest["offsite"]["encryption"]["algorithm"]}
    made.extend(backups(box))
    access, secret = minio_keys(box)
    answers = {"backup_keep_count": 30, "backup_offsite": {"bucket": "nf-backups"}}
    compare(box, awx_inventory, tmp_path, "db_backup.yml", answers, nothing(box), state, shell_env={"NFAMILY_OFFSITE_KEY": OFFSITE_KEY},
            credentials={"NFAMILY_OFFSITE_KEY": OFFSITE_KEY, "NFAMILY_OFFSITE_ACCESS_KEY": access, "NFAMILY_OFFSITE_SECRET_KEY": secret})
    assert secret not in json.dumps(box.records()[-2:]) and secret not in box.sh("cat %s/runs/*.json" % STATE).stdout


def test_the_offsite_stores_keys_are_the_credentials_when_it_injects_some(box, tmp_path, awx_inventory):
    """Keys the store refuses, injected by the credential, are the ones the copy is sent with: the job fails on them
    and says so (the project's own MinIO keys, which would work, are not used behind the credential's back)."""
    answers = {"backup_offsite": {"bucket": "nf-backups"}, "backup_name": "refused.dump"}
    runner = awx_job.run(box, awx_inventory, "db_backup.yml", next(JOB_IDS), answers, tmp_path, {
        "NFAMILY_OFFSITE_KEY": OFFSITE_KEY, "NFAMILY_OFFSITE_ACCESS_KEY": "not-a-key", "NFAMILY_OFFSITE_SECRET_KEY": "not-a-secret"})
    assert (runner.status, runner.rc) == ("failed", 2)
    record = box.records()[-1]
    assert record["result"] == "failed" and "not-a-secret" not in json.dumps(record), record
    assert "nf-backups" in record["summary"], record["summary"]


def test_db_restore_drill(box, awx_inventory, tmp_path):
    before = counts(box), databases(box)
    compare(box, awx_inventory, tmp_path, "db_restore_drill.yml", {"restore_drill_source": "base.dump"}, nothing(box),
            lambda: (counts(box), databases(box), box.statuses()))
    assert (counts(box), databases(box)) == before  # the live database untouched, no drill database left


def test_db_restore(box, awx_inventory, tmp_path):
    def setup():
        healthy(box)
        box.psql("DELETE FROM public.family_members WHERE role IN ('CHILD_MEMBER', 'YOUTH_MEMBER')")
        box.psql("INSERT INTO public.families (name) VALUES ('written after the backup')")

    base = counts(box)
    answers = {"restore_source": "base.dump", "runbook_confirm": "db_restore@" + NAME}
    compare(box, awx_inventory, tmp_path, "db_restore.yml", answers, setup, lambda: (counts(box), databases(box), box.statuses()))
    assert counts(box) == base


def test_service_recovery(box, awx_inventory, tmp_path):
    answers = {"service_recovery_services": ["api"], "runbook_confirm": "service_recovery@" + NAME}
    shell, awx = compare(box, awx_inventory, tmp_path, "service_recovery.yml", answers, nothing(box), box.statuses)
    assert shell["changed_steps"] and [argv for argv in box.calls(awx["run_id"]) if argv[:1] == ["restart"]]


def test_rotate_jwt(box, awx_inventory, tmp_path):
    """A forced rotation, verified with the verification account's password: from the inventory in the shell run, from
    AWX's credential (NFAMILY_VERIFY_PASSWORD) in the AWX-shaped one."""
    record = STATE + "/jwt_signing_key/nself-family.json"

    def state():
        keys = box.read_json(record)
        last = keys["history"][-1]
        return {"pending": keys["pending"], "outcome": last["outcome"], "history": len(keys["history"]) - start[0],
                "services": box.statuses()}

    start = [len((box.read_json(record) or {"history": []})["history"])]

    def setup():
        healthy(box)
        start[0] = len((box.read_json(record) or {"history": []})["history"])

    answers = {"rotate_jwt_mode": "forced", "runbook_confirm": "rotate_jwt@" + NAME}
    shell, awx = compare(box, awx_inventory, tmp_path, "rotate_jwt.yml", answers, setup, state)
    assert shell["result"] == awx["result"] == "success"
    assert VERIFY_PASSWORD not in json.dumps(box.records()[-2:])


def test_revoke_devices(box, awx_inventory, tmp_path):
    def setup():
        healthy(box)
        box.psql("UPDATE public.registered_devices d SET is_revoked = s.is_revoked, credential = s.credential, "
                 "bootstrap_token = s.bootstrap_token, is_trusted = s.is_trusted FROM public.devices_saved s WHERE d.id = s.id")

    def state():
        return box.psql("SELECT json_agg(json_build_array(id, is_revoked, credential IS NULL, bootstrap_token IS NULL) ORDER BY id) "
                        "FROM public.registered_devices")

    answers = {"revoke_devices_family_id": DEMO_FAMILY, "runbook_confirm": "revoke_devices@" + NAME}
    shell, _awx = compare(box, awx_inventory, tmp_path, "revoke_devices.yml", answers, setup, state)
    assert shell["changed_steps"]


def test_migration_rollback(box, awx_inventory, tmp_path):
    def setup():
        rc, result, output = box.module("db_restore", {"project_dir": PROJECT, "source": BACKUPS + "/base.dump", "keep_previous": 0})
        assert rc == 0 and result.get("row_counts"), output[-2000:]
        healthy(box)

    def rollback_backups():
        return len([n for n in backups(box) if n.startswith("pre-rollback-") and n.endswith(".dump")])
    counted = [rollback_backups()]

    def state():
        counted.append(rollback_backups())
        return (box.psql("SELECT max(version), count(*) FROM public.schema_migrations"),
                box.psql("SELECT to_regclass('public.search_index') IS NULL, to_regclass('public.registered_devices') IS NULL"),
                counted[-1] - counted[-2])

    answers = {"migration_rollback_version": "010", "runbook_confirm": "migration_rollback@" + NAME}
    try:
        shell, _awx = compare(box, awx_inventory, tmp_path, "migration_rollback.yml", answers, setup, state)
        assert shell["changed_steps"]
    finally:
        setup()


# PITR last: archiving stays on once enabled.
def test_db_pitr_enable_on_an_archiving_host_and_a_base_backup(box, awx_inventory, tmp_path):
    enabled = box.playbook("db_pitr_enable.yml", "-e", "runbook_confirm=db_pitr_enable@" + NAME)
    assert enabled.returncode == 0, enabled.stdout[-3000:]
    answers = {"runbook_confirm": "db_pitr_enable@" + NAME}
    compare(box, awx_inventory, tmp_path / "enable", "db_pitr_enable.yml", answers, nothing(box),
            lambda: (box.psql("SHOW archive_mode"), box.statuses()))

    def bases():
        return len(box.sh("ls %s/backups/base/*.tar.gz.json 2>/dev/null" % PROJECT).stdout.split())
    counted = [bases()]

    def state():
        counted.append(bases())
        return {"added": counted[-1] - counted[-2], "archive_mode": box.psql("SHOW archive_mode"), "services": box.statuses()}
    compare(box, awx_inventory, tmp_path / "base", "db_pitr_base_backup.yml", {}, nothing(box), state)


def test_db_pitr_to_a_time(box, awx_inventory, tmp_path):
    """Each run recovers to a time of its own, between a commit it keeps and one it drops (a second recovery to the
    same time is recognised as done): the same run but for the time."""
    box.psql("CREATE TABLE IF NOT EXISTS public.pitr_probe (mark text PRIMARY KEY, at timestamptz DEFAULT now())")
    rounds = itertools.count(1)

    def setup():
        healthy(box)
        n = next(rounds)
        box.psql("INSERT INTO public.pitr_probe (mark) VALUES ('kept-%d')" % n)
        time.sleep(1.1)
        target = box.run("date", "-u", "+%Y-%m-%dT%H:%M:%SZ").stdout.strip()
        time.sleep(1.1)
        box.psql("INSERT INTO public.pitr_probe (mark) VALUES ('dropped-%d')" % n)
        return target

    def state():
        marks = box.psql("SELECT string_agg(mark, ',' ORDER BY at) FROM public.pitr_probe").split(",")
        return {"last": re.sub(r"-\d+$", "", marks[-1]), "dropped": [m for m in marks if m.startswith("dropped")],
                "services": box.statuses()}

    def answers(target):
        return {"pitr_target_time": target, "runbook_confirm": "db_pitr@" + NAME}
    compare(box, awx_inventory, tmp_path, "db_pitr.yml", answers, setup, state)
