"""The backup and restore runbooks against the scenario's sandbox host, started with
ansible-playbook as an operator would: a restore brings back exactly the backed-up data and a
second run changes nothing; bad backups and bad input are refused before anything stops; a
restore killed at any step converges on re-run without restoring twice."""
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_shared"))
from runbook_host import PROJECT, STATE, Instance, recap, wait_for  # noqa: E402

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


def confirm(box):
    return ("-e", "runbook_confirm=%s" % box.name)


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
    restore = host.playbook("db_restore.yml", "-e", "restore_source=t1.dump", *confirm(host))
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert counts(host) == before
    assert host.psql("SELECT count(*) FROM public.families WHERE name = 'written after the backup'") == "0"
    assert all_healthy(host)
    safety = host.run("sh", "-c", "ls %s/safety/*.manifest.json" % BACKUPS).stdout.split()
    assert len(safety) == 1  # the changed data is kept in the safety backup
    assert host.read_json(safety[0])["row_counts"]["public.families"] == before["public.families"] + 1
    again = host.playbook("db_restore.yml", "-e", "restore_source=t1.dump", *confirm(host))
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
    proc = host.playbook("db_restore.yml", "-e", "restore_source=bad.dump", *confirm(host))
    assert proc.returncode == 2
    assert ("corrupted" if damage == "corrupt" else "truncated") in proc.stdout
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


@pytest.mark.parametrize("kill_at", sorted(KILL_POINTS))
def test_sigkill_at_each_step_then_rerun_converges(host, kill_at):
    expected = counts(host)  # the base backup's data
    change_data(host)
    previous = previous_databases(host)
    run = host.playbook("db_restore.yml", "-e", "restore_source=base.dump", "-e", "restore_keep_previous=20",
                        *confirm(host), background=True)
    state = STATE + "/runs/db_restore.json"
    reached = wait_for(lambda: KILL_POINTS[kill_at](host.read_json(state) or {"done": {}}), timeout=120, interval=0.2)
    os.killpg(run.pid, signal.SIGKILL)
    output = run.communicate()[0]
    assert reached, output[-3000:]
    rerun = host.playbook("db_restore.yml", "-e", "restore_source=base.dump", "-e", "restore_keep_previous=20", *confirm(host))
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "resuming" in rerun.stdout
    assert counts(host) == expected and all_healthy(host)
    assert len(previous_databases(host)) == len(previous) + 1  # restored (swapped) exactly once
    safety = host.run("sh", "-c", "ls %s/safety/*.manifest.json" % BACKUPS).stdout.split()
    assert len(safety) == 1  # one safety backup, holding the data the restore replaced
    assert host.read_json(safety[0])["row_counts"]["public.families"] == expected["public.families"] + 1
    assert host.read_json(state)["status"] == "finished"


def test_missing_backup_is_refused(host):
    proc = host.playbook("db_restore.yml", "-e", "restore_source=nope.dump", *confirm(host))
    assert proc.returncode == 2 and "does not exist" in proc.stdout
    assert all_healthy(host)


def test_wrong_checksum_in_manifest_is_refused(host):
    manifest_file = BACKUPS + "/base.dump.manifest.json"
    host.sh("cp -p {m} {m}.orig && sed -i 's/\"sha256\": \"[0-9a-f]*\"/\"sha256\": \"{z}\"/' {m}".format(m=manifest_file, z="0" * 64))
    try:
        proc = host.playbook("db_restore.yml", "-e", "restore_source=base.dump", *confirm(host))
        assert proc.returncode == 2 and "does not match its manifest" in proc.stdout
        assert all_healthy(host)
    finally:
        host.sh("mv {m}.orig {m}".format(m=manifest_file))


def test_prod_without_confirmation_changes_nothing(host):
    change_data(host)
    before = counts(host)
    proc = host.playbook("db_restore.yml", "-e", "restore_source=base.dump")
    assert proc.returncode == 2 and "runbook_confirm=%s" % host.name in proc.stdout
    assert counts(host) == before and all_healthy(host)
    check = host.playbook("db_restore.yml", "-e", "restore_source=base.dump", "--check")
    assert check.returncode == 0 and counts(host) == before and all_healthy(host)


def test_not_enough_disk_for_the_safety_backup_changes_nothing(host):
    change_data(host)
    before = counts(host)
    proc = host.playbook("db_restore.yml", "-e", "restore_source=base.dump", "-e", "restore_safety_min_free=%d" % 10 ** 15,
                         *confirm(host))
    assert proc.returncode == 2 and "free space" in proc.stdout.lower()
    assert counts(host) == before and all_healthy(host)


def test_database_down_is_refused(host):
    assert host.run("sandbox-fault", "set", "stop_postgres").returncode == 0
    try:
        assert wait_for(lambda: host.statuses()["postgres"] != "healthy")
        proc = host.playbook("db_restore.yml", "-e", "restore_source=base.dump", *confirm(host))
        assert proc.returncode == 2 and "does not answer" in proc.stdout
        assert host.run("test", "-e", STATE + "/runs/db_restore.json").returncode == 1
    finally:
        host.run("sandbox-fault", "clear")
        host.nself("restart", "postgres")
        assert wait_for(lambda: all_healthy(host), timeout=120)


def tables(box, *names):
    return dict((n, box.psql("SELECT to_regclass('%s') IS NOT NULL" % n) == "t") for n in names)


def test_migration_rollback_to_010_then_rerun_then_bad_versions(host):
    proc = host.playbook("migration_rollback.yml", "-e", "migration_rollback_version=010", *confirm(host))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert host.psql("SELECT max(version), count(*) FROM public.schema_migrations") == "1770000000010|10"
    assert tables(host, "public.notification_events", "public.legacy_vaults", "public.search_index",
                  "public.registered_devices") == {"public.notification_events": True, "public.legacy_vaults": False,
                                                   "public.search_index": False, "public.registered_devices": False}
    backups = host.run("sh", "-c", "ls %s/pre-rollback-1770000000010_*.dump.manifest.json" % BACKUPS).stdout.split()
    assert len(backups) == 1 and host.read_json(backups[0])["migrations"]["schema_migrations"]["applied"] == 13
    again = host.playbook("migration_rollback.yml", "-e", "migration_rollback_version=010", *confirm(host))
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    for version, message in (("999", "no migration has version 999"), ("012", "is not applied"), ("abc", "not a number")):
        bad = host.playbook("migration_rollback.yml", "-e", "migration_rollback_version=%s" % version, *confirm(host))
        assert bad.returncode == 2 and message in " ".join(bad.stdout.split()), bad.stdout[-2000:]
        assert host.psql("SELECT max(version) FROM public.schema_migrations") == "1770000000010"


def test_offsite_copy_restores_after_the_local_backups_are_lost(host):
    backup = host.playbook("db_backup.yml", "-e", "backup_name=offsite.dump", "-e", '{"backup_offsite": {"bucket": "nf-backups"}}')
    assert backup.returncode == 0, backup.stdout[-2000:]
    expected = counts(host)
    taken = manifest(host, "offsite.dump")
    assert taken["offsite"] == {"bucket": "nf-backups", "key": "db/offsite.dump"}
    change_data(host)
    host.sh("mv {b}/offsite.dump /tmp/offsite.dump.lost && rm {b}/offsite.dump.manifest.json".format(b=BACKUPS))
    restore = host.playbook("db_restore.yml", "-e", "restore_source=offsite.dump", "-e", '{"restore_offsite": {"bucket": "nf-backups"}}',
                            *confirm(host))
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert counts(host) == expected and manifest(host, "offsite.dump")["sha256"] == taken["sha256"]
    assert all_healthy(host)
