"""The backup and restore runbooks against the scenario's sandbox host, started with
ansible-playbook as an operator would: a restore brings back exactly the backed-up data and a
second run changes nothing; bad backups and bad input are refused before anything stops; a
restore killed at any step converges on re-run without restoring twice."""
import json
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_shared"))
from runbook_host import OFFSITE_KEY, PROJECT, STATE, Instance, confirm, assert_failed_with, kill_points, recap, wait_for  # noqa: E402

BACKUPS = PROJECT + "/backups"
KEY_TABLES = ["public.users", "public.families", "public.family_members", "public.registered_devices",
              "public.audit_events", "auth.refresh_tokens", "auth.sessions", "public.schema_migrations"]
STOPPED = ["hasura", "auth", "api", "scheduler"]


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    instance = Instance("nfamily-molecule-database", tmp_path_factory.mktemp("database"))
    proc = instance.playbook("db_backup.yml", "-e", "backup_name=base.dump")
    assert proc.returncode == 0, proc.stdout[-2000:]
    return instance


@pytest.fixture
def host(box):
    """Every test starts from the base backup restored, all services healthy and no run state.
    The reset calls the db_restore module alone (the swap while the services run, which reconnect):
    the tests themselves prove the runbook around it."""
    box.sh("rm -rf %s %s/safety" % (STATE, BACKUPS))
    rc, result, output = box.module("db_restore", {"project_dir": PROJECT, "source": BACKUPS + "/base.dump", "keep_previous": 0})
    assert rc == 0 and result.get("row_counts"), output[-2000:]
    if not all_healthy(box):
        box.nself("start")
    assert wait_for(lambda: all_healthy(box), timeout=120)
    return box


def counts(box):
    sql = " UNION ALL ".join("SELECT '%s', count(*) FROM %s" % (t, t) for t in KEY_TABLES)
    return dict((line.split("|")[0], int(line.split("|")[1])) for line in box.psql(sql).splitlines())


def all_healthy(box):
    return set(box.statuses().values()) == {"healthy"}


def change_data(box):
    box.psql("DELETE FROM public.family_members WHERE role IN ('CHILD_MEMBER', 'YOUTH_MEMBER')")
    box.psql("UPDATE auth.refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL")
    box.psql("INSERT INTO public.families (name) VALUES ('written after the backup')")


def manifest(box, name):
    return box.read_json("%s/%s.manifest.json" % (BACKUPS, name))


def previous_databases(box):
    return box.psql("SELECT datname FROM pg_database WHERE datname LIKE 'nself_family_pre_restore_%' ORDER BY 1").split()


def test_backup_change_restore_then_second_run_changes_nothing(host):
    backup = host.playbook("db_backup.yml", "-e", "backup_name=t1.dump")
    assert backup.returncode == 0, backup.stdout[-2000:]
    taken = manifest(host, "t1.dump")
    before = counts(host)
    assert all(taken["row_counts"][t] == before[t] for t in KEY_TABLES)
    change_data(host)
    assert counts(host) != before
    previous = previous_databases(host)
    restore = host.playbook("db_restore.yml", "-e", "restore_source=t1.dump", *confirm(host.name, "db_restore.yml"))
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert counts(host) == before
    assert host.psql("SELECT count(*) FROM public.families WHERE name = 'written after the backup'") == "0"
    assert all_healthy(host)
    # the changed data is kept by the swap, so no safety dump repeats it
    assert host.run("sh", "-c", "ls %s/safety/*.manifest.json" % BACKUPS).returncode != 0
    replaced = [name for name in previous_databases(host) if name not in previous]
    assert len(replaced) == 1
    assert host.psql("SELECT count(*) FROM public.families WHERE name = 'written after the backup'", database=replaced[0]) == "1"
    again = host.playbook("db_restore.yml", "-e", "restore_source=t1.dump", *confirm(host.name, "db_restore.yml"))
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    assert counts(host) == before


@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_damaged_backup_is_refused_before_anything_stops(host, damage):
    host.sh("cp {b}/base.dump {b}/bad.dump && sed 's/\"file\": \"base.dump\"/\"file\": \"bad.dump\"/' "
            "{b}/base.dump.manifest.json > {b}/bad.dump.manifest.json".format(b=BACKUPS))
    if damage == "corrupt":
        host.sh("printf 'XXXXXXXX' | dd of=%s/bad.dump bs=1 seek=2000 conv=notrunc status=none" % BACKUPS)
    else:
        host.sh("truncate -s 3000 %s/bad.dump" % BACKUPS)
    before = counts(host)
    proc = host.playbook("db_restore.yml", "-e", "restore_source=bad.dump", *confirm(host.name, "db_restore.yml"))
    assert_failed_with(proc, "db_restore failed on %s:" % host.name, "corrupted" if damage == "corrupt" else "truncated")
    assert all_healthy(host) and counts(host) == before
    assert host.run("test", "-e", STATE + "/runs/db_restore.json").returncode == 1  # never started
    host.sh("rm -f %s/bad.dump*" % BACKUPS)


# Where the kill lands: the predicate on the run's checkpoint state that must hold first.
KILL_POINTS = {
    "safety_backup_started": lambda s: "safety_backup" in s.get("started", {}),
    "stage_started": lambda s: "stage" in s.get("started", {}),
    "stop_services_done": lambda s: "stop_services" in s["done"],
    "restore_started": lambda s: "restore" in s.get("started", {}),
    "restore_done": lambda s: "restore" in s["done"],
}


@pytest.mark.parametrize("kill_at", kill_points(sorted(KILL_POINTS), ["restore_started"]))
def test_sigkill_at_each_step_then_rerun_converges(host, kill_at):
    expected = counts(host)  # the base backup's data
    change_data(host)
    previous = previous_databases(host)
    run = host.playbook("db_restore.yml", "-e", "restore_source=base.dump", "-e", "restore_keep_previous=20",
                        "-e", "restore_safety_backup=always", *confirm(host.name, "db_restore.yml"), background=True)
    state = STATE + "/runs/db_restore.json"
    reached = wait_for(lambda: KILL_POINTS[kill_at](host.read_json(state) or {"done": {}}), timeout=120, interval=0.2)
    os.killpg(run.pid, signal.SIGKILL)
    output = run.communicate()[0]
    assert reached, output[-3000:]
    rerun = host.playbook("db_restore.yml", "-e", "restore_source=base.dump", "-e", "restore_keep_previous=20",
                          "-e", "restore_safety_backup=always", *confirm(host.name, "db_restore.yml"))
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "resuming" in rerun.stdout
    assert counts(host) == expected and all_healthy(host)
    assert len(previous_databases(host)) == len(previous) + 1  # restored (swapped) exactly once
    safety = host.run("sh", "-c", "ls %s/safety/*.manifest.json" % BACKUPS).stdout.split()
    assert len(safety) == 1  # one safety backup, holding the data the restore replaced
    assert host.read_json(safety[0])["row_counts"]["public.families"] == expected["public.families"] + 1
    assert host.read_json(state)["status"] == "finished"


def test_missing_backup_is_refused(host):
    proc = host.playbook("db_restore.yml", "-e", "restore_source=nope.dump", *confirm(host.name, "db_restore.yml"))
    assert_failed_with(proc, "the backup %s/nope.dump does not exist" % BACKUPS)
    assert all_healthy(host)


def test_wrong_checksum_in_manifest_is_refused(host):
    manifest_file = BACKUPS + "/base.dump.manifest.json"
    host.sh("cp -p {m} {m}.orig && sed -i 's/\"sha256\": \"[0-9a-f]*\"/\"sha256\": \"{z}\"/' {m}".format(m=manifest_file, z="0" * 64))
    try:
        proc = host.playbook("db_restore.yml", "-e", "restore_source=base.dump", *confirm(host.name, "db_restore.yml"))
        assert_failed_with(proc, "does not match its manifest")
        assert all_healthy(host)
    finally:
        host.sh("mv {m}.orig {m}".format(m=manifest_file))


def test_a_planted_manifest_is_neither_pruned_nor_restored(host):
    """Issue 17, item 1: a manifest in the backups directory, ours in every field but the file it names,
    older than anything retention keeps. The nightly backup's retention deletes none of the files it names,
    and a restore of it is refused before anything stops."""
    planted = {"producer": "nfamily.ops.db_backup", "file": "../.env.secrets", "sha256": "0" * 64, "size": 1,
               "finished_at": "2000-01-01T00:00:00Z", "database": "nself_family"}
    host.sh("cat > %s/planted.dump.manifest.json <<'EOF'\n%s\nEOF\ncp /etc/hostname /tmp/victim && "
            "ln -sfn /tmp/victim %s/linked.dump" % (BACKUPS, json.dumps(planted), BACKUPS))
    linked = dict(planted, file="linked.dump")
    host.sh("cat > %s/linked.dump.manifest.json <<'EOF'\n%s\nEOF" % (BACKUPS, json.dumps(linked)))
    secrets = host.run("sha256sum", PROJECT + "/.env.secrets").stdout
    try:
        backup = host.playbook("db_backup.yml", "-e", "backup_name=after_planting.dump")  # keep_days 14: 2000 is doomed
        assert_failed_with(backup, "%s/linked.dump is not a regular file" % BACKUPS, "retention leaves it and its backup alone")
        assert host.run("sha256sum", PROJECT + "/.env.secrets").stdout == secrets
        assert host.run("test", "-f", "/tmp/victim").returncode == 0
        assert manifest(host, "after_planting.dump")["file"] == "after_planting.dump"  # the backup itself was taken
        restore = host.playbook("db_restore.yml", "-e", "restore_source=planted.dump.manifest.json", *confirm(host.name, "db_restore.yml"))
        assert_failed_with(restore, "names the file '../.env.secrets', not the file beside it ('planted.dump')")
        assert all_healthy(host)
    finally:
        host.sh("rm -f {b}/planted.dump.manifest.json {b}/linked.dump {b}/linked.dump.manifest.json {b}/after_planting.dump* "
                "/tmp/victim".format(b=BACKUPS))


def test_prod_without_confirmation_changes_nothing(host):
    change_data(host)
    before = counts(host)
    proc = host.playbook("db_restore.yml", "-e", "restore_source=base.dump")
    assert_failed_with(proc, "Re-run with -e runbook_confirm=db_restore@%s" % host.name)
    assert counts(host) == before and all_healthy(host)
    check = host.playbook("db_restore.yml", "-e", "restore_source=base.dump", "--check")
    assert check.returncode == 0 and counts(host) == before and all_healthy(host)


def test_not_enough_disk_for_the_safety_backup_changes_nothing(host):
    """With keep_previous 0 nothing else keeps the replaced data: the safety backup is taken, and must fit."""
    change_data(host)
    before = counts(host)
    proc = host.playbook("db_restore.yml", "-e", "restore_source=base.dump", "-e", "restore_safety_min_free=%d" % 10 ** 15,
                         "-e", "restore_keep_previous=0", *confirm(host.name, "db_restore.yml"))
    assert "free space" in assert_failed_with(proc).lower()
    assert counts(host) == before and all_healthy(host)


def test_database_down_is_refused(host):
    assert host.run("sandbox-fault", "set", "stop_postgres").returncode == 0
    try:
        assert wait_for(lambda: host.statuses()["postgres"] != "healthy")
        proc = host.playbook("db_restore.yml", "-e", "restore_source=base.dump", *confirm(host.name, "db_restore.yml"))
        assert_failed_with(proc, "does not answer")
        assert host.run("test", "-e", STATE + "/runs/db_restore.json").returncode == 1
    finally:
        host.run("sandbox-fault", "clear")
        host.nself("restart", "postgres")
        assert wait_for(lambda: all_healthy(host), timeout=120)


def tables(box, *names):
    return dict((n, box.psql("SELECT to_regclass('%s') IS NOT NULL" % n) == "t") for n in names)


def test_migration_rollback_to_010_then_rerun_then_bad_versions(host):
    proc = host.playbook("migration_rollback.yml", "-e", "migration_rollback_version=010", *confirm(host.name, "migration_rollback.yml"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert host.psql("SELECT max(version), count(*) FROM public.schema_migrations") == "1770000000010|10"
    assert tables(host, "public.notification_events", "public.legacy_vaults", "public.search_index",
                  "public.registered_devices") == {"public.notification_events": True, "public.legacy_vaults": False,
                                                   "public.search_index": False, "public.registered_devices": False}
    backups = host.run("sh", "-c", "ls %s/pre-rollback-1770000000010_*.dump.manifest.json" % BACKUPS).stdout.split()
    assert len(backups) == 1 and host.read_json(backups[0])["migrations"]["schema_migrations"]["applied"] == 13
    again = host.playbook("migration_rollback.yml", "-e", "migration_rollback_version=010", *confirm(host.name, "migration_rollback.yml"))
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    for version, message in (("999", "no migration has version 999"), ("012", "is not applied"), ("abc", "not a number"),
                             ("0", "rolls back every migration (10 of them)")):
        bad = host.playbook("migration_rollback.yml", "-e", "migration_rollback_version=%s" % version, *confirm(host.name, "migration_rollback.yml"))
        assert_failed_with(bad, "migration_rollback failed on %s:" % host.name, message)
        assert host.psql("SELECT max(version) FROM public.schema_migrations") == "1770000000010"


def test_offsite_copy_restores_after_the_local_backups_are_lost(host):
    """Issue 17, item 7: the copy goes up encrypted with the operator's key (here from the controller's
    environment, as an AWX credential injects it), which no output shows even at -vvv; the bucket's copy
    restores with that key and no other."""
    with_key = {"NFAMILY_OFFSITE_KEY": OFFSITE_KEY}
    backup = host.playbook("db_backup.yml", "-vvv", "-e", "backup_name=offsite.dump", "-e", '{"backup_offsite": {"bucket": "nf-backups"}}',
                           env=with_key)
    assert backup.returncode == 0, backup.stdout[-2000:]
    expected = counts(host)
    taken = manifest(host, "offsite.dump")
    assert taken["offsite"]["key"] == "db/offsite.dump" and taken["offsite"]["encryption"]["algorithm"] == "AES-256-GCM"
    recorded = host.sh("cat %s/runs.jsonl %s/runs/*.json" % (STATE, STATE)).stdout
    reports = "".join(open(os.path.join(d, n)).read() for d, _s, names in os.walk(host.reports) for n in names)
    texts = {"output": backup.stdout, "records": recorded, "reports": reports}
    leaks = dict((name, text[max(0, text.index(OFFSITE_KEY) - 300):text.index(OFFSITE_KEY) + 50]) for name, text in texts.items()
                 if OFFSITE_KEY in text)
    assert not leaks, leaks
    rc, result, output = host.module("minio_object", {"project_dir": PROJECT, "bucket": "nf-backups", "key": "db/offsite.dump",
                                                      "mode": "get", "dest": "/tmp/offsite.raw"})
    assert rc != 0 and "is encrypted with offsite key %s" % taken["offsite"]["encryption"]["key_id"] in result["msg"], output[-2000:]
    change_data(host)
    host.sh("mv {b}/offsite.dump /tmp/offsite.dump.lost && rm {b}/offsite.dump.manifest.json".format(b=BACKUPS))
    restore_offsite = ("-e", "restore_source=offsite.dump", "-e", '{"restore_offsite": {"bucket": "nf-backups"}}')
    other_key = {"NFAMILY_OFFSITE_KEY": "BAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
    for env, message in ((None, "offsite copies need the operator's key"), (other_key, "was signed with offsite key")):
        refused = host.playbook("db_restore.yml", *restore_offsite, *confirm(host.name, "db_restore.yml"), env=env)
        assert_failed_with(refused, "db_restore failed on %s:" % host.name, message)
        assert host.run("test", "-e", BACKUPS + "/offsite.dump").returncode == 1
    restore = host.playbook("db_restore.yml", *restore_offsite, *confirm(host.name, "db_restore.yml"), env=with_key)
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert counts(host) == expected and manifest(host, "offsite.dump")["sha256"] == taken["sha256"]
    assert all_healthy(host)


def test_a_refused_backup_leaves_the_nightly_schedule_alone(host):
    """One bad request (a name outside the directory) is refused before anything; the next plain run,
    as a schedule starts it, takes its backup."""
    bad = host.playbook("db_backup.yml", "-e", "backup_name=../escape.dump")
    assert_failed_with(bad, "db_backup failed on %s: backup name '../escape.dump' is not valid" % host.name)
    assert host.run("test", "-e", BACKUPS + "/../escape.dump").returncode == 1
    nightly = host.playbook("db_backup.yml")
    assert nightly.returncode == 0, nightly.stdout[-3000:]
    assert host.records()[-1]["result"] == "success" and host.records()[-1]["artifacts"]


def test_an_offsite_copy_into_a_missing_bucket_is_refused_before_the_dump(host):
    """MinIO refuses a write into a missing bucket only when it comes: the bucket is checked before the
    dump, not found after it, and nothing is dumped, uploaded or created."""
    before = host.sh("ls %s" % BACKUPS).stdout.split()
    proc = host.playbook("db_backup.yml", "-e", json.dumps({"backup_offsite": {"bucket": "no-such-bucket-xyz", "encryption_key": OFFSITE_KEY}}))
    assert_failed_with(proc, "db_backup failed on %s:" % host.name, "bucket no-such-bucket-xyz does not exist",
                       "Nothing was dumped")
    assert host.sh("ls %s" % BACKUPS).stdout.split() == before
    rc, result, output = host.module("minio_info", {"project_dir": PROJECT, "buckets": ["no-such-bucket-xyz"]})
    assert rc == 0 and result["missing_buckets"] == ["no-such-bucket-xyz"], output[-2000:]


def test_a_backup_killed_mid_dump_is_cleaned_up_by_the_next_one(host):
    """A killed backup leaves a partial file; the next backup (no flag, no lock break) removes it once
    nothing writes it, abandons the killed run on record, and takes its own."""
    host.sh("dd if=/dev/zero of=%s/.killed.dump.partial bs=1M count=5 status=none" % BACKUPS)
    killed = {"runbook": "db_backup", "run_id": "killed-1", "status": "running", "steps": ["backup"], "inputs": {},
              "inputs_digest": "x", "started_at": "2026-11-28T02:00:00Z", "done": {}, "started": {"backup": {"run_id": "killed-1"}}}
    host.sh("mkdir -p %s/runs && cat > %s/runs/db_backup.json <<'EOF'\n%s\nEOF" % (STATE, STATE, json.dumps(killed)))
    nightly = host.playbook("db_backup.yml")
    assert nightly.returncode == 0, nightly.stdout[-3000:]
    assert host.run("test", "-e", BACKUPS + "/.killed.dump.partial").returncode == 1
    record = host.records()[-1]
    assert record["abandoned"]["run_id"] == "killed-1" and "removed partial files of killed backups" in record["summary"]


def test_triage_during_a_restore_restarts_nothing(host):
    """An hourly triage fires while a restore has the services stopped: it reports the maintenance and
    touches nothing; the restore then finishes as if alone."""
    expected = counts(host)
    change_data(host)
    restore = host.playbook("db_restore.yml", "-e", "restore_source=base.dump", *confirm(host.name, "db_restore.yml"), background=True)
    state = STATE + "/runs/db_restore.json"
    try:
        assert wait_for(lambda: "stop_services" in (host.read_json(state) or {"done": {}})["done"], timeout=120, interval=0.2)
        os.kill(restore.pid, signal.SIGSTOP)  # a long restore, held here
        holder = host.read_json(STATE + "/locks/maintenance.json")
        assert holder["runbook"] == "db_restore"
        host.triage_observes(holder)
        assert set(host.statuses()[s] for s in STOPPED) != {"healthy"}  # still stopped by the restore
    finally:
        os.kill(restore.pid, signal.SIGCONT)
    output = restore.communicate()[0]
    assert restore.returncode == 0, output[-3000:]
    assert counts(host) == expected and all_healthy(host)


DATABASE_RUNBOOKS = {
    "db_backup.yml": (),
    "db_restore.yml": ("-e", "restore_source=base.dump"),
    "migration_rollback.yml": ("-e", "migration_rollback_version=010"),
    "db_pitr_enable.yml": (),
    "db_pitr_base_backup.yml": (),
    "db_restore_drill.yml": ("-e", "restore_drill_source=base.dump"),
}


@pytest.mark.parametrize("playbook", sorted(DATABASE_RUNBOOKS))
def test_every_database_runbook_refused_by_a_live_holder_says_so_last(host, playbook):
    """Another run of the family is alive on the host (a task of it still runs): each database runbook
    is refused before it changes anything, and its last line names that run."""
    release = host.hold_lock("database", "db_restore", "restore-in-progress")
    try:
        before = counts(host)
        proc = host.playbook(playbook, *DATABASE_RUNBOOKS[playbook], *confirm(host.name, playbook), "-e", "runbook_orphan_wait=0")
        assert_failed_with(proc, "The database lock on this host is held by run restore-in-progress of db_restore by alice",
                           "a task of that run is still running on this host")
        assert counts(host) == before and all_healthy(host)
        assert host.read_json(STATE + "/locks/database.json")["run_id"] == "restore-in-progress"
    finally:
        release()
