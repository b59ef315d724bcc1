"""Point-in-time recovery against the scenario's sandbox host, with the playbooks an operator
would start: archiving enabled once (a second run changes nothing), recovery to a time between two
commits keeps the first and drops the second, bad targets are refused before anything changes, a
run killed mid-way converges on re-run, and a recovery that fails puts the original data back."""
import json
import os
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_shared"))
from runbook_host import PROJECT, STATE, Instance, confirm, assert_failed_with, recap, wait_for  # noqa: E402

DATA_DIR = "/srv/volumes/postgres_data"
ARCHIVE = PROJECT + "/backups/wal"
BASES = PROJECT + "/backups/base"


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    instance = Instance("nfamily-molecule-database", tmp_path_factory.mktemp("pitr"))
    instance.sh("rm -rf %s" % STATE)
    instance.psql("CREATE TABLE IF NOT EXISTS public.pitr_probe (mark text PRIMARY KEY, at timestamptz DEFAULT now())")
    return instance


def all_healthy(box):
    return set(box.statuses().values()) == {"healthy"}


def marks(box):
    return box.psql("SELECT string_agg(mark, ',' ORDER BY mark) FROM public.pitr_probe").split(",")


def two_commits(box, first, second):
    """Commit `first`, take a target time, commit `second`; returns the target (UTC, whole seconds)."""
    box.psql("INSERT INTO public.pitr_probe (mark) VALUES ('%s')" % first)
    time.sleep(1.1)
    target = box.run("date", "-u", "+%Y-%m-%dT%H:%M:%SZ").stdout.strip()
    time.sleep(1.1)
    box.psql("INSERT INTO public.pitr_probe (mark) VALUES ('%s')" % second)
    return target


def asides(box, kind="pre_pitr"):
    return box.sh("ls -d %s.%s_* 2>/dev/null" % (DATA_DIR, kind)).stdout.split()


def stopped_by_a_new_run(box, state_file, previous_run_id):
    """Whether a run other than previous_run_id has stopped the services (its checkpoint says so)."""
    state = box.read_json(state_file) or {}
    return state.get("run_id") != previous_run_id and "stop_services" in state.get("done", {})


def timeline(box):
    return box.psql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")


def test_recovery_before_archiving_is_enabled_is_refused(box):
    proc = box.playbook("db_pitr.yml", "-e", "pitr_target_time=latest", *confirm(box.name, "db_pitr.yml"))
    assert_failed_with(proc, "db_pitr failed on %s:" % box.name, "there is no base backup")
    base = box.playbook("db_pitr_base_backup.yml")
    assert_failed_with(base, "db_pitr_base_backup failed on %s: WAL archiving is off" % box.name,
                       "Enable it first with playbooks/db_pitr_enable.yml")
    assert all_healthy(box) and asides(box) == []


def test_enable_archives_and_takes_a_base_backup_then_rerun_changes_nothing(box):
    proc = box.playbook("db_pitr_enable.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "wal_archive" in box.run("cat", PROJECT + "/docker-compose.override.yml").stdout
    assert box.psql("SHOW archive_mode") == "on"
    assert box.sh("ls %s | grep -c '^[0-9A-F]\\{24\\}$'" % ARCHIVE).stdout.strip() != "0"
    assert len(box.sh("ls %s/*.tar.gz.json" % BASES).stdout.split()) == 1
    assert all_healthy(box)
    again = box.playbook("db_pitr_enable.yml")
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    assert len(box.sh("ls %s/*.tar.gz.json" % BASES).stdout.split()) == 1


def test_recover_to_a_time_keeps_earlier_commits_only_then_rerun_changes_nothing(box):
    target = two_commits(box, "a-before", "b-after")
    before_timeline = timeline(box)
    check = box.playbook("db_pitr.yml", "-e", "pitr_target_time=%s" % target, "--check")
    assert check.returncode == 0 and "Recover to %s" % target in check.stdout, check.stdout[-3000:]
    assert marks(box) == ["a-before", "b-after"] and asides(box) == []
    proc = box.playbook("db_pitr.yml", "-e", "pitr_target_time=%s" % target, *confirm(box.name, "db_pitr.yml"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert marks(box) == ["a-before"]
    assert all_healthy(box)
    assert len(asides(box)) == 1  # the data directory as it was, kept
    assert int(timeline(box), 16) > int(before_timeline, 16)
    assert box.psql("SELECT count(*) FROM pg_file_settings WHERE name LIKE 'recovery_target%'") == "0"
    again = box.playbook("db_pitr.yml", "-e", "pitr_target_time=%s" % target, *confirm(box.name, "db_pitr.yml"))
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    assert "already" in again.stdout.lower() and len(asides(box)) == 1


@pytest.mark.parametrize("target,message", [
    ("2099-01-01T00:00:00Z", "is in the future"),
    ("2001-01-01T00:00:00Z", "before the oldest base backup"),
    ("yesterday", "is not a time"),
    ("yesterday'; DROP TABLE users; --", "is not a time"),
])
def test_bad_targets_are_refused_before_anything_changes(box, target, message):
    before = marks(box), asides(box)
    proc = box.playbook("db_pitr.yml", "-e", json.dumps({"pitr_target_time": target}), *confirm(box.name, "db_pitr.yml"))
    assert_failed_with(proc, "db_pitr failed on %s:" % box.name, message)
    assert (marks(box), asides(box)) == before and all_healthy(box)


def test_sigkill_after_the_stop_then_rerun_converges(box):
    target = two_commits(box, "c-before", "d-after")
    before = asides(box)
    state = STATE + "/runs/db_pitr.json"
    previous = (box.read_json(state) or {}).get("run_id")
    run = box.playbook("db_pitr.yml", "-e", "pitr_target_time=%s" % target, *confirm(box.name, "db_pitr.yml"), background=True)
    reached = wait_for(lambda: stopped_by_a_new_run(box, state, previous), timeout=180, interval=0.2)
    os.killpg(run.pid, signal.SIGKILL)
    output = run.communicate()[0]
    assert reached, output[-3000:]
    rerun = box.playbook("db_pitr.yml", "-e", "pitr_target_time=%s" % target, *confirm(box.name, "db_pitr.yml"))
    assert rerun.returncode == 0 and "resuming" in rerun.stdout, rerun.stdout[-3000:]
    assert "c-before" in marks(box) and "d-after" not in marks(box)
    assert all_healthy(box) and len(asides(box)) == len(before) + 1


def test_failed_recovery_puts_the_original_data_back(box):
    taken = box.playbook("db_pitr_base_backup.yml")
    assert taken.returncode == 0, taken.stdout[-3000:]
    target = two_commits(box, "e-before", "f-after")
    # Lose the archived segments after the new base backup's first one, the commits' included:
    # replay ends before the target (the plan sees no gap yet; the seal's segment comes after it).
    start = box.sh("ls -t %s/*.tar.gz.json | head -1 | xargs cat" % BASES).stdout.split('"start_segment": "')[1][:24]
    current = box.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    box.psql("SELECT pg_switch_wal()")
    assert wait_for(lambda: box.run("test", "-f", "%s/%s" % (ARCHIVE, current)).returncode == 0, timeout=60)
    segments = [f for f in box.run("ls", ARCHIVE).stdout.split() if len(f) == 24 and f[8:] > start[8:]]
    assert current in segments
    box.sh("mkdir -p /tmp/lost && cd %s && mv %s /tmp/lost/" % (ARCHIVE, " ".join(segments)))
    proc = box.playbook("db_pitr.yml", "-e", "pitr_target_time=%s" % target, *confirm(box.name, "db_pitr.yml"))
    box.sh("mv /tmp/lost/* %s/ 2>/dev/null; rmdir /tmp/lost" % ARCHIVE)
    assert_failed_with(proc, "The original data directory was put back and the services started")
    assert marks(box)[-2:] == ["e-before", "f-after"]  # the live data, untouched
    assert all_healthy(box) and len(asides(box, "failed_pitr")) == 1
    assert box.read_json(STATE + "/runs/db_pitr.json")["status"] == "finished"  # a re-run starts anew


def test_triage_during_a_recovery_restarts_nothing(box):
    """An hourly triage fires while a recovery has postgres and the services stopped: it reports the
    maintenance and touches nothing; the recovery then finishes as if alone."""
    target = two_commits(box, "g-before", "h-after")
    state = STATE + "/runs/db_pitr.json"
    previous = (box.read_json(state) or {}).get("run_id")
    run = box.playbook("db_pitr.yml", "-e", "pitr_target_time=%s" % target, *confirm(box.name, "db_pitr.yml"), background=True)
    try:
        assert wait_for(lambda: stopped_by_a_new_run(box, state, previous), timeout=180, interval=0.2)
        os.kill(run.pid, signal.SIGSTOP)  # a long recovery, held here
        holder = box.read_json(STATE + "/locks/maintenance.json")
        assert holder["runbook"] == "db_pitr"
        box.triage_observes(holder)
        assert box.statuses()["postgres"] != "healthy"
    finally:
        os.kill(run.pid, signal.SIGCONT)
    output = run.communicate()[0]
    assert run.returncode == 0, output[-3000:]
    assert "g-before" in marks(box) and "h-after" not in marks(box) and all_healthy(box)
