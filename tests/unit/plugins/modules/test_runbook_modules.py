import json
import os
import pwd
import subprocess
import time

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.nfamily.ops.plugins.modules import runbook_checkpoint, runbook_lock, runbook_record

STEPS = ["verify", "safety_backup", "restore", "start"]


def lock_args(tmp_path, **extra):
    args = {"family": "database", "run_id": "r1", "runbook": "db_restore", "target": "prod:abc", "owner": "alice",
            "state_dir": str(tmp_path)}
    args.update(extra)
    return args


def test_lock_acquire_refuse_release(run_module, tmp_path):
    first = run_module(runbook_lock.main, lock_args(tmp_path))[0]
    assert first["action"] == "acquired" and first["written"] and first["changed"] is False
    second = run_module(runbook_lock.main, lock_args(tmp_path, run_id="r2"))[0]
    assert second["failed"] and "held by run r1 of db_restore by alice" in second["msg"] and "runbook_break_lock" in second["msg"]
    again = run_module(runbook_lock.main, lock_args(tmp_path))[0]
    assert again["action"] == "refreshed"
    other_release = run_module(runbook_lock.main, lock_args(tmp_path, run_id="r2", state="released"))[0]
    assert other_release["action"] == "not_held" and not other_release["written"]
    assert (tmp_path / "locks" / "database.json").exists()
    released = run_module(runbook_lock.main, lock_args(tmp_path, state="released"))[0]
    assert released["action"] == "released" and not (tmp_path / "locks" / "database.json").exists()


def test_lock_takeover_and_break(run_module, tmp_path):
    run_module(runbook_lock.main, lock_args(tmp_path))
    taken = run_module(runbook_lock.main, lock_args(tmp_path, run_id="r2", takeover_run_id="r1"))[0]
    assert taken["action"] == "taken_over" and taken["lock"]["took_over"]["run_id"] == "r1"
    broken = run_module(runbook_lock.main, lock_args(tmp_path, run_id="r3", runbook="db_backup", break_lock=True))[0]
    assert broken["action"] == "taken_over"
    assert json.loads((tmp_path / "locks" / "database.json").read_text())["run_id"] == "r3"


def test_lock_with_maintenance_is_all_or_nothing_and_can_report_instead_of_failing(run_module, tmp_path):
    restore = run_module(runbook_lock.main, lock_args(tmp_path, maintenance=True))[0]
    assert restore["action"] == "acquired"
    assert sorted(os.listdir(str(tmp_path / "locks"))) == [".guard", "database.json", "maintenance.json"]
    triage = lock_args(tmp_path, family="maintenance", run_id="t1", runbook="api_triage")
    refused = run_module(runbook_lock.main, triage)[0]
    assert refused["failed"] and refused["msg"].startswith("This host is under maintenance: its lock is held by run r1 of db_restore")
    held = run_module(runbook_lock.main, dict(triage, on_held="report"))[0]
    assert not held["failed"] and held["action"] == "held" and held["holder"]["run_id"] == "r1" and not held["written"]
    storage = run_module(runbook_lock.main, lock_args(tmp_path, family="storage", run_id="s1", maintenance=True))[0]
    assert storage["failed"] and not (tmp_path / "locks" / "storage.json").exists()  # nothing taken when one is refused
    released = run_module(runbook_lock.main, lock_args(tmp_path, maintenance=True, state="released"))[0]
    assert released["action"] == "released" and os.listdir(str(tmp_path / "locks")) == [".guard"]


def test_lock_refuses_while_a_task_of_the_holder_still_runs(run_module, tmp_path):
    run_module(runbook_lock.main, lock_args(tmp_path, run_id="killed", ttl=60))
    orphan = subprocess.Popen(["/bin/sh", "-c", "NFAMILY_OPS_RUN_ID=killed sleep 30 && sleep 0"], start_new_session=True)
    try:
        for _attempt in range(100):  # until the shell has started its module
            result = run_module(runbook_lock.main, lock_args(tmp_path, run_id="r2", break_lock=True, orphan_wait=0))[0]
            if [p for p in result.get("processes", []) if p["command"] == "sleep 30"]:
                break
            time.sleep(0.05)
        assert result["failed"] and "a task of that run is still running on this host: pid" in result["msg"]
        assert [p["command"] for p in result["processes"]] == ["sleep 30"] and "(sleep 30)" in result["msg"]
    finally:
        os.killpg(orphan.pid, 9)
        orphan.wait()
    taken = run_module(runbook_lock.main, lock_args(tmp_path, run_id="r2", break_lock=True, orphan_wait=0))[0]
    assert taken["action"] == "taken_over"


def test_lock_check_mode_writes_nothing(run_module, tmp_path):
    result = run_module(runbook_lock.main, lock_args(tmp_path, _ansible_check_mode=True))[0]
    assert result["action"] == "acquired" and not result["written"]
    assert not (tmp_path / "locks").exists()


def test_lock_rejects_bad_family(run_module, tmp_path):
    result = run_module(runbook_lock.main, lock_args(tmp_path, family="../etc"))[0]
    assert result["failed"] and "not valid" in result["msg"]


def cp_args(tmp_path, **extra):
    args = {"runbook": "db_restore", "run_id": "r1", "state_dir": str(tmp_path)}
    args.update(extra)
    return args


def test_checkpoint_resume_after_kill(run_module, tmp_path):
    begun = run_module(runbook_checkpoint.main, cp_args(tmp_path, action="begin", steps=STEPS, inputs={"backup": "a"}))[0]
    assert begun["decision"] == "new" and begun["pending"] == STEPS
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="done", step="verify", data={"sha256": "x"}))
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="done", step="safety_backup", data={"path": "/b"}))
    # the run dies here; a re-run with the same inputs resumes
    resumed = run_module(runbook_checkpoint.main, cp_args(tmp_path, run_id="r2", action="begin", steps=STEPS, inputs={"backup": "a"}))[0]
    assert resumed["decision"] == "resume" and sorted(resumed["done"]) == ["safety_backup", "verify"]
    assert resumed["pending"] == ["restore", "start"] and resumed["state"]["runs"] == ["r1", "r2"]
    different = run_module(runbook_checkpoint.main, cp_args(tmp_path, run_id="r3", action="begin", steps=STEPS, inputs={"backup": "b"}))[0]
    assert different["failed"] and "runbook_abandon_unfinished" in different["msg"]
    run_module(runbook_checkpoint.main, cp_args(tmp_path, run_id="r2", action="done", step="restore"))
    run_module(runbook_checkpoint.main, cp_args(tmp_path, run_id="r2", action="done", step="start"))
    finished = run_module(runbook_checkpoint.main, cp_args(tmp_path, run_id="r2", action="finish"))[0]
    assert finished["state"]["status"] == "finished" and finished["done"] == {}
    fresh = run_module(runbook_checkpoint.main, cp_args(tmp_path, run_id="r4", action="begin", steps=STEPS, inputs={"backup": "b"}))[0]
    assert fresh["decision"] == "new"


def test_checkpoint_step_started_but_not_recorded_is_interrupted(run_module, tmp_path):
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="begin", steps=STEPS))
    first = run_module(runbook_checkpoint.main, cp_args(tmp_path, action="start", step="verify"))[0]
    assert first["retry"] is False and first["interrupted"] == []
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="done", step="verify"))
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="start", step="safety_backup"))
    # killed between the safety backup's effect and its checkpoint
    resumed = run_module(runbook_checkpoint.main, cp_args(tmp_path, run_id="r2", action="begin", steps=STEPS))[0]
    assert resumed["interrupted"] == ["safety_backup"] and resumed["pending"] == STEPS[1:]
    again = run_module(runbook_checkpoint.main, cp_args(tmp_path, run_id="r2", action="start", step="safety_backup"))[0]
    assert again["retry"] is True and again["interrupted"] == []
    assert again["state"]["started"]["safety_backup"]["attempts"] == 2
    done_twice = run_module(runbook_checkpoint.main, cp_args(tmp_path, run_id="r2", action="start", step="verify"))[0]
    assert done_twice["failed"] and "already done" in done_twice["msg"]


def test_checkpoint_start_in_check_mode_writes_nothing(run_module, tmp_path):
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="begin", steps=STEPS))
    before = (tmp_path / "runs" / "db_restore.json").read_text()
    result = run_module(runbook_checkpoint.main, cp_args(tmp_path, action="start", step="verify", _ansible_check_mode=True))[0]
    assert not result["written"] and result["retry"] is False
    assert (tmp_path / "runs" / "db_restore.json").read_text() == before


def test_checkpoint_abandon_and_secret_inputs(run_module, tmp_path):
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="begin", steps=STEPS, inputs={"backup": "a"}))
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="done", step="verify"))
    args = cp_args(tmp_path, run_id="r2", action="begin", steps=STEPS, abandon=True, inputs={"backup": "b", "db_password": "hunter2"})
    new = run_module(runbook_checkpoint.main, args)[0]
    assert new["decision"] == "abandon_and_new" and new["abandoned"]["run_id"] == "r1" and new["abandoned"]["done"] == ["verify"]
    assert new["state"]["abandoned"]["inputs"] == {"backup": "a"}
    assert "hunter2" not in (tmp_path / "runs" / "db_restore.json").read_text()


def test_checkpoint_refusal_names_the_unfinished_run_and_both_ways_on(run_module, tmp_path):
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="begin", steps=STEPS, inputs={"backup": "a"}))
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="start", step="verify"))
    refused = run_module(runbook_checkpoint.main, cp_args(tmp_path, run_id="r2", action="begin", steps=STEPS, inputs={"backup": "b"}))[0]
    assert refused["failed"] and refused["msg"].startswith(
        'db_restore on this host: unfinished run r1 (started ')
    assert 'inputs backup="a"; steps done: none; started, not recorded done: verify) has other inputs. Either finish it: ' \
        're-run with the same inputs; or abandon it: re-run with -e runbook_abandon_unfinished=true' in refused["msg"]


def test_checkpoint_failed_before_any_step_is_closed(run_module, tmp_path):
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="begin", steps=STEPS, inputs={"name": "../escape.dump"}))
    closed = run_module(runbook_checkpoint.main, cp_args(tmp_path, action="finish", status="failed"))[0]
    assert closed["state"]["status"] == "closed"
    fresh = run_module(runbook_checkpoint.main, cp_args(tmp_path, run_id="r2", action="begin", steps=STEPS, inputs={"name": ""}))[0]
    assert fresh["decision"] == "new" and fresh["abandoned"] == {}
    run_module(runbook_checkpoint.main, cp_args(tmp_path, run_id="r2", action="start", step="verify"))
    kept = run_module(runbook_checkpoint.main, cp_args(tmp_path, run_id="r2", action="finish", status="failed"))[0]
    assert kept["state"]["status"] == "running" and kept["pending"] == STEPS


def test_checkpoint_of_a_runbook_that_only_adds_abandons_and_goes_on(run_module, tmp_path):
    args = cp_args(tmp_path, action="begin", steps=["backup"], inputs={"name": ""}, resumable=False)
    run_module(runbook_checkpoint.main, args)
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="start", step="backup"))
    # killed mid-backup; the next night's run has other inputs and goes on
    nightly = run_module(runbook_checkpoint.main, dict(args, run_id="r2", inputs={"name": "x.dump"}))[0]
    assert nightly["decision"] == "abandon_and_new" and nightly["abandoned"]["run_id"] == "r1"
    assert nightly["abandoned"]["started"] == ["backup"] and nightly["pending"] == ["backup"]


def test_checkpoint_refuses_undeclared_step(run_module, tmp_path):
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="begin", steps=STEPS))
    result = run_module(runbook_checkpoint.main, cp_args(tmp_path, action="done", step="drop_everything"))[0]
    assert result["failed"] and "not one of db_restore's declared steps" in result["msg"]


def test_checkpoint_refreshes_own_lock(run_module, tmp_path):
    run_module(runbook_lock.main, lock_args(tmp_path, ttl=60))
    before = json.loads((tmp_path / "locks" / "database.json").read_text())["expires_at"]
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="begin", steps=STEPS, lock_ttl=7200))
    after = json.loads((tmp_path / "locks" / "database.json").read_text())["expires_at"]
    assert after > before


def test_record_appends_redacted_lines(run_module, tmp_path):
    args = {"run_id": "r1", "runbook": "rotate_jwt", "result": "success", "started_at": "2026-11-27T01:00:00Z",
            "who": {"user": "alice"}, "parameters": {"policy": "always", "JWT_SECRET": "abc", "new_key": "k"},
            "state_dir": str(tmp_path)}
    first = run_module(runbook_record.main, args)[0]
    run_module(runbook_record.main, dict(args, run_id="r2", result="failed", summary="verification failed"))
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "abc" not in lines[0] and '"k"' not in lines[0]
    assert first["record"]["parameters"]["policy"] == "always" and first["record"]["duration_s"] >= 0
    assert json.loads(lines[1])["summary"] == "verification failed"


def test_record_names_the_account_the_run_logged_in_as(run_module, tmp_path, monkeypatch):
    args = {"run_id": "r1", "runbook": "db_backup", "result": "success", "state_dir": str(tmp_path)}
    monkeypatch.setenv("SUDO_USER", "ops")  # become through sudo
    assert run_module(runbook_record.main, args)[0]["record"]["host_user"] == "ops"
    monkeypatch.delenv("SUDO_USER")
    assert run_module(runbook_record.main, args)[0]["record"]["host_user"] == pwd.getpwuid(os.getuid()).pw_name


def test_record_check_mode_writes_nothing(run_module, tmp_path):
    args = {"run_id": "r1", "runbook": "db_backup", "result": "check", "state_dir": str(tmp_path), "_ansible_check_mode": True}
    result = run_module(runbook_record.main, args)[0]
    assert result["written"] is False and not (tmp_path / "runs.jsonl").exists()


def test_checkpoint_result_keeps_its_state_through_ansible_exit_json(tmp_path, capsys):
    # AnsibleModule.exit_json adds file attributes (state: file, ...) when a result has a `path`
    # key: the checkpoint must not return one, or its `state` is overwritten.
    with patch_module_args(cp_args(tmp_path, action="begin", steps=STEPS, inputs={"backup": "a"})):
        with pytest.raises(SystemExit):
            runbook_checkpoint.main()
    result = json.loads(capsys.readouterr().out)
    assert isinstance(result["state"], dict) and result["state"]["runs"] == ["r1"]
    assert result["state_file"].endswith("runs/db_restore.json")


def test_a_run_whose_lock_was_taken_over_stops_at_its_next_step(run_module, tmp_path):
    run_module(runbook_lock.main, lock_args(tmp_path, ttl=60))
    run_module(runbook_checkpoint.main, cp_args(tmp_path, action="begin", steps=STEPS))
    run_module(runbook_lock.main, lock_args(tmp_path, run_id="r2", break_lock=True))  # taken over meanwhile
    before = (tmp_path / "runs" / "db_restore.json").read_text()
    result = run_module(runbook_checkpoint.main, cp_args(tmp_path, action="start", step="verify", lock_family="database"))[0]
    assert result["failed"] and result["msg"].startswith("run r1 no longer holds the database lock (run r2 of db_restore")
    assert (tmp_path / "runs" / "db_restore.json").read_text() == before
