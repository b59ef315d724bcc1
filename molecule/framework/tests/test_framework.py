"""The runbook framework's proofs against the scenario's sandbox host: prod confirmation, lock
refusal, SIGKILL at each declared step (after its checkpoint, and between its effect and its
checkpoint) then re-run, and run records free of secrets. The host is driven with podman exec;
the self-test runbook runs with ansible-playbook as an operator would run it."""
import json
import os
import signal
import sys

import pytest

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(SCENARIO), "_shared"))
from runbook_host import STATE, Instance, wait_for  # noqa: E402

PLAYBOOK = os.path.join(SCENARIO, "selftest.yml")
STEPS = ["prepare", "stop_services", "replace_data", "start_services"]
EFFECTS = "/var/lib/selftest/effects.log"


@pytest.fixture
def host(tmp_path):
    box = Instance("nfamily-molecule-framework", tmp_path)
    box.sh("rm -rf %s /var/lib/selftest" % STATE)
    yield box
    box.sh("rm -rf %s /var/lib/selftest" % STATE)


def playbook(box, *extra, background=False):
    return box.playbook(PLAYBOOK, "-e", "selftest_report_dir=%s" % box.reports, *extra, background=background)


def effects(box):
    proc = box.run("cat", EFFECTS)
    return [line.split()[0] for line in proc.stdout.splitlines()] if proc.returncode == 0 else []


def checkpointed(box):
    proc = box.run("cat", STATE + "/runs/selftest.json")
    return sorted(json.loads(proc.stdout)["done"]) if proc.returncode == 0 else []


def test_prod_without_confirmation_changes_nothing(host):
    proc = playbook(host)
    assert proc.returncode == 2 and "runbook_confirm=%s" % host.name in proc.stdout
    assert effects(host) == []
    assert host.run("test", "-e", STATE + "/locks/selftest.json").returncode == 1
    assert host.run("test", "-e", STATE + "/runs/selftest.json").returncode == 1
    check = playbook(host, "--check")
    assert check.returncode == 0 and effects(host) == []


def test_uninterrupted_run_then_second_run_starts_fresh(host):
    proc = playbook(host, "-e", "runbook_confirm=%s" % host.name)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert effects(host) == STEPS
    state = json.loads(host.run("cat", STATE + "/runs/selftest.json").stdout)
    assert state["status"] == "finished" and sorted(state["done"]) == sorted(STEPS)
    assert host.run("test", "-e", STATE + "/locks/selftest.json").returncode == 1  # released


def test_concurrent_run_is_refused_naming_the_holder(host):
    first = playbook(host, "-e", "runbook_confirm=%s" % host.name, "-e", "selftest_hold_after=prepare", background=True)
    try:
        assert wait_for(lambda: effects(host) == ["prepare"] and checkpointed(host) == ["prepare"])
        second = playbook(host, "-e", "runbook_confirm=%s" % host.name)
        assert second.returncode == 2
        lock = json.loads(host.run("cat", STATE + "/locks/selftest.json").stdout)
        assert "held by run %s of selftest" % lock["run_id"] in " ".join(second.stdout.split())
        assert effects(host) == ["prepare"]  # the refused run changed nothing
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


@pytest.mark.parametrize("kill_after", STEPS)
def test_sigkill_after_a_checkpoint_then_rerun_converges(host, kill_after):
    run = playbook(host, "-e", "runbook_confirm=%s" % host.name, "-e", "selftest_hold_after=%s" % kill_after, background=True)
    done_upto = STEPS[:STEPS.index(kill_after) + 1]
    assert wait_for(lambda: effects(host) == done_upto and checkpointed(host) == sorted(done_upto))
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert_rerun_converges(host)


@pytest.mark.parametrize("kill_in", STEPS)
def test_sigkill_between_effect_and_checkpoint_then_rerun_converges(host, kill_in):
    run = playbook(host, "-e", "runbook_confirm=%s" % host.name, "-e", "selftest_hold_before_record=%s" % kill_in, background=True)
    done_before = STEPS[:STEPS.index(kill_in)]
    assert wait_for(lambda: effects(host) == done_before + [kill_in] and checkpointed(host) == sorted(done_before)
                    and host.sh("pgrep -f 'sleep 120'").returncode == 0)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    rerun = assert_rerun_converges(host)
    assert "interrupted, to verify before redoing: %s;" % kill_in in " ".join(rerun.stdout.split())


def assert_rerun_converges(box):
    """The re-run takes over the dead run's lock, resumes, and ends where an uninterrupted run ends."""
    box.sh("pkill -f 'sleep 120'")  # the killed controller's remote sleep, if still there
    rerun = playbook(box, "-e", "runbook_confirm=%s" % box.name)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "took over the selftest lock" in rerun.stdout and "resuming" in rerun.stdout
    assert effects(box) == STEPS  # every step exactly once, in order
    state = json.loads(box.run("cat", STATE + "/runs/selftest.json").stdout)
    assert state["status"] == "finished" and len(state["runs"]) == 2 and sorted(state["done"]) == sorted(STEPS)
    assert box.run("test", "-e", STATE + "/locks/selftest.json").returncode == 1
    return rerun


def test_rerun_with_other_inputs_is_refused_until_abandoned(host):
    run = playbook(host, "-e", "runbook_confirm=%s" % host.name, "-e", "selftest_hold_after=stop_services", background=True)
    assert wait_for(lambda: effects(host) == STEPS[:2])
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    other = playbook(host, "-e", "runbook_confirm=%s" % host.name, "-e", "selftest_dataset=beta")
    assert other.returncode == 2 and "runbook_abandon_unfinished" in other.stdout
    assert effects(host) == STEPS[:2]
    abandon = playbook(host, "-e", "runbook_confirm=%s" % host.name, "-e", "selftest_dataset=beta",
                       "-e", "runbook_abandon_unfinished=true")
    assert abandon.returncode == 0 and effects(host) == STEPS[:2] + STEPS


def test_run_log_has_one_record_per_run_and_no_secret(host):
    playbook(host)  # refused: prod without confirmation
    verbose = playbook(host, "-vvv", "-e", "runbook_confirm=%s" % host.name, "-e", "selftest_token=s3cr3t-T0KEN")
    assert verbose.returncode == 0 and "s3cr3t-T0KEN" not in verbose.stdout.replace("selftest_token=s3cr3t-T0KEN", "")
    log = host.run("cat", STATE + "/runs.jsonl").stdout
    entries = host.records()
    assert [e["result"] for e in entries] == ["failed", "success"]
    assert entries[1]["changed_steps"] == STEPS and entries[1]["who"]["user"]
    assert "s3cr3t-T0KEN" not in log and "tok-should-never-be-logged" not in log
    assert entries[1]["parameters"]["api_token"] == "[redacted]"
    assert host.run("stat", "-c", "%a", STATE + "/runs.jsonl").stdout.strip() == "600"
    reports = os.listdir(host.reports)
    assert len(reports) == 2
    for run_id in reports:
        for name in os.listdir(os.path.join(host.reports, run_id)):
            assert "s3cr3t-T0KEN" not in open(os.path.join(host.reports, run_id, name), encoding="utf-8").read()
