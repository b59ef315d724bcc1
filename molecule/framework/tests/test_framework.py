"""The runbook framework's proofs against the scenario's sandbox host: prod confirmation, lock
refusal, SIGKILL at each declared step (after its checkpoint, and between its effect and its
checkpoint) then re-run, and run records free of secrets. The host is driven with podman exec;
the self-test runbook runs with ansible-playbook as an operator would run it."""
import json
import os
import signal
import sys

import pytest
import yaml

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(SCENARIO), "_shared"))
from runbook_host import PROJECT, STATE, Instance, confirm, assert_failed_with, kill_points, wait_for  # noqa: E402

PLAYBOOK = os.path.join(SCENARIO, "selftest.yml")
STEPS = ["prepare", "stop_services", "replace_data", "start_services"]
EFFECTS = "/var/lib/selftest/effects.log"


@pytest.fixture
def host(tmp_path):
    box = Instance("nfamily-molecule-framework", tmp_path)
    box.sh("pkill -f '^sleep '; rm -rf %s /var/lib/selftest" % STATE)
    yield box
    box.sh("pkill -f '^sleep '; rm -rf %s /var/lib/selftest" % STATE)


def playbook(box, *extra, background=False):
    return box.playbook(PLAYBOOK, "-e", "selftest_report_dir=%s" % box.reports, *extra, background=background)


def holding(box):
    """A run's `sleep 120` hold is running on the host (pgrep run directly: under `sh -c` its pattern
    would match the shell's own command line)."""
    return box.run("pgrep", "-f", "^sleep 120").returncode == 0


def release_hold(box):
    """End the killed controller's hold on the host: a task of the dead run, which holds its lock until it ends."""
    box.run("pkill", "-f", "^sleep 120")


def effects(box):
    return [line.split()[0] for line in (box.read_text(EFFECTS) or "").splitlines()]


def checkpointed(box):
    state = box.read_json(STATE + "/runs/selftest.json")
    return sorted(state["done"]) if state is not None else []


def test_prod_without_confirmation_changes_nothing(host):
    proc = playbook(host)
    assert_failed_with(proc, "selftest failed on %s:" % host.name, "Re-run with -e runbook_confirm=selftest@%s" % host.name)
    assert effects(host) == []
    assert host.run("test", "-e", STATE + "/locks/selftest.json").returncode == 1
    assert host.run("test", "-e", STATE + "/runs/selftest.json").returncode == 1
    check = playbook(host, "--check")
    assert check.returncode == 0 and effects(host) == []


def unlabelled(box, tmp_path):
    """The instance as an AWX inventory named `production` or an ad hoc inventory reaches it: in no prod
    group, without nfamily_environment."""
    (tmp_path / "unlabelled").mkdir()
    other = Instance(box.name, tmp_path / "unlabelled")
    with open(other.inventory, encoding="utf-8") as handle:
        inventory = yaml.safe_load(handle)
    backend = inventory["all"]["children"]["nfamily_backend"]
    backend["vars"].pop("nfamily_environment")
    backend["children"] = {"production": backend["children"].pop("prod")}
    with open(other.inventory, "w", encoding="utf-8") as handle:
        yaml.safe_dump(inventory, handle)
    return other


@pytest.fixture
def host_env(host):
    """Set the ENV= the host's .env names (the sandbox's says prod), put back afterwards."""
    original = host.run("cat", PROJECT + "/.env").stdout
    yield lambda value: host.sh("sed -i 's/^ENV=.*/ENV=%s/' %s/.env" % (value, PROJECT))
    host.sh("cat > %s/.env <<'EOF'\n%sEOF" % (PROJECT, original))


@pytest.mark.parametrize("env_value, inventory, needed", [
    ("prod", "unlabelled", True),  # the prod gate used to ask the inventory only: this ran unconfirmed
    ("live", "unlabelled", True),  # a name nself does not know says nothing
    ("", "unlabelled", True),  # nor does none (nself itself would fall back to dev)
    ("staging", "prod", True),  # the inventory still says prod
    ("staging", "unlabelled", False),
    ("dev", "unlabelled", False),
])
def test_a_host_not_known_not_to_be_prod_needs_confirmation(host, host_env, tmp_path, env_value, inventory, needed):
    host_env(env_value)
    box = unlabelled(host, tmp_path) if inventory == "unlabelled" else host
    proc = playbook(box)
    if not needed:
        assert proc.returncode == 0 and effects(host) == STEPS, proc.stdout[-3000:]
        return
    assert_failed_with(proc, "selftest would destroy or replace data on %s, which is prod or not known not to be "
                       "(the host's environment: %s%s). Nothing was changed." % (
                           host.name, env_value if env_value in ("prod", "staging") else "unknown",
                           "; the inventory puts it in prod" if inventory == "prod" else ""),
                       "Re-run with -e runbook_confirm=selftest@%s" % host.name)
    assert effects(host) == [] and host.run("test", "-e", STATE + "/locks/selftest.json").returncode == 1
    confirmed = playbook(box, *confirm(host.name, PLAYBOOK))
    assert confirmed.returncode == 0 and effects(host) == STEPS, confirmed.stdout[-3000:]


@pytest.mark.parametrize("confirmation", ["nfamily-molecule-framework", "db_restore@nfamily-molecule-framework",
                                          "selftest@family-prod", "selftest@nfamily-molecule-framework "])
def test_a_confirmation_of_another_runbook_or_host_confirms_nothing(host, confirmation):
    """A confirmation names this runbook and this host: the old bare hostname, another runbook's (a
    schedule's baked-in one) or another host's is refused, saying what would confirm."""
    proc = playbook(host, "-e", json.dumps({"runbook_confirm": confirmation}))
    assert_failed_with(proc, "runbook_confirm=%s does not confirm this run: a confirmation names the runbook and the host."
                       % confirmation.strip(), "Re-run with -e runbook_confirm=selftest@%s to confirm" % host.name)
    assert effects(host) == []


def test_uninterrupted_run_then_second_run_starts_fresh(host):
    proc = playbook(host, *confirm(host.name, PLAYBOOK))
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert effects(host) == STEPS
    state = json.loads(host.run("cat", STATE + "/runs/selftest.json").stdout)
    assert state["status"] == "finished" and sorted(state["done"]) == sorted(STEPS)
    assert host.run("test", "-e", STATE + "/locks/selftest.json").returncode == 1  # released


def test_concurrent_run_is_refused_naming_the_holder(host):
    first = playbook(host, *confirm(host.name, PLAYBOOK), "-e", "selftest_hold_after=prepare", background=True)
    try:
        assert wait_for(lambda: effects(host) == ["prepare"] and checkpointed(host) == ["prepare"])
        second = playbook(host, *confirm(host.name, PLAYBOOK))
        lock = json.loads(host.run("cat", STATE + "/locks/selftest.json").stdout)
        assert_failed_with(second, "The selftest lock on this host is held by run %s of selftest" % lock["run_id"])
        assert effects(host) == ["prepare"]  # the refused run changed nothing
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        release_hold(host)


@pytest.mark.parametrize("kill_after", kill_points(STEPS, ["replace_data"]))
def test_sigkill_after_a_checkpoint_then_rerun_converges(host, kill_after):
    run = playbook(host, *confirm(host.name, PLAYBOOK), "-e", "selftest_hold_after=%s" % kill_after, background=True)
    done_upto = STEPS[:STEPS.index(kill_after) + 1]
    assert wait_for(lambda: effects(host) == done_upto and checkpointed(host) == sorted(done_upto) and holding(host))
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert_rerun_converges(host)


@pytest.mark.parametrize("kill_in", kill_points(STEPS, ["replace_data"]))
def test_sigkill_between_effect_and_checkpoint_then_rerun_converges(host, kill_in):
    run = playbook(host, *confirm(host.name, PLAYBOOK), "-e", "selftest_hold_before_record=%s" % kill_in, background=True)
    done_before = STEPS[:STEPS.index(kill_in)]
    assert wait_for(lambda: effects(host) == done_before + [kill_in] and checkpointed(host) == sorted(done_before)
                    and holding(host))
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    rerun = assert_rerun_converges(host)
    assert "interrupted, to verify before redoing: %s;" % kill_in in " ".join(rerun.stdout.split())


def assert_rerun_converges(box):
    """The re-run takes over the dead run's lock, resumes, and ends where an uninterrupted run ends."""
    release_hold(box)
    rerun = playbook(box, *confirm(box.name, PLAYBOOK))
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "took over the selftest lock" in rerun.stdout and "resuming" in rerun.stdout
    assert effects(box) == STEPS  # every step exactly once, in order
    state = json.loads(box.run("cat", STATE + "/runs/selftest.json").stdout)
    assert state["status"] == "finished" and len(state["runs"]) == 2 and sorted(state["done"]) == sorted(STEPS)
    assert box.run("test", "-e", STATE + "/locks/selftest.json").returncode == 1
    return rerun


def test_rerun_with_other_inputs_is_refused_until_abandoned(host):
    run = playbook(host, *confirm(host.name, PLAYBOOK), "-e", "selftest_hold_after=stop_services", background=True)
    # held once stop_services is recorded done: its effect alone is written a moment before that
    assert wait_for(lambda: effects(host) == STEPS[:2] and checkpointed(host) == sorted(STEPS[:2]) and holding(host))
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    release_hold(host)
    killed = host.read_json(STATE + "/runs/selftest.json")["run_id"]
    other = playbook(host, *confirm(host.name, PLAYBOOK), "-e", "selftest_dataset=beta")
    assert_failed_with(other, "selftest on this host: unfinished run %s" % killed, 'dataset="alpha"',
                       "steps done: prepare, stop_services)", "Either finish it: re-run with the same inputs",
                       "or abandon it: re-run with -e runbook_abandon_unfinished=true")
    assert effects(host) == STEPS[:2]
    abandon = playbook(host, *confirm(host.name, PLAYBOOK), "-e", "selftest_dataset=beta",
                       "-e", "runbook_abandon_unfinished=true")
    assert abandon.returncode == 0 and effects(host) == STEPS[:2] + STEPS


def test_run_log_has_one_record_per_run_and_no_secret(host):
    playbook(host)  # refused: prod without confirmation
    verbose = playbook(host, "-vvv", *confirm(host.name, PLAYBOOK), "-e", "selftest_token=s3cr3t-T0KEN")
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


def test_a_secret_shaped_value_under_an_innocent_key_reaches_no_record_or_report(host):
    """Issue 17, item 6: redaction by the value's shape, not only by key: a DSN's password and a JWT in the
    summary, the failure (the run's last line) and the parameters are replaced everywhere a run writes."""
    dsn, jwt = "postgres://nself:hunter2pw@postgres:5432/x", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl"
    failed = playbook(host, *confirm(host.name, PLAYBOOK), "-e", "selftest_dataset=" + dsn,
                      "-e", "selftest_fail_before_steps=true")
    assert_failed_with(failed, "selftest refused dataset postgres://nself:[redacted]@postgres:5432/x before its first step")
    done = playbook(host, *confirm(host.name, PLAYBOOK), "-e", "selftest_dataset=" + jwt)
    assert done.returncode == 0, done.stdout[-3000:]
    records = host.records()
    assert [r["summary"] for r in records] == [
        "selftest refused dataset postgres://nself:[redacted]@postgres:5432/x before its first step", "dataset [redacted] in place"]
    assert [r["parameters"]["dataset"] for r in records] == ["postgres://nself:[redacted]@postgres:5432/x", "[redacted]"]
    written = [host.run("cat", STATE + "/runs.jsonl").stdout]
    for run_id in os.listdir(host.reports):
        for name in os.listdir(os.path.join(host.reports, run_id)):
            with open(os.path.join(host.reports, run_id, name), encoding="utf-8") as handle:
                written.append(handle.read())
    assert len(written) == 5 and not [text for text in written if "hunter2pw" in text or jwt in text]


def test_a_run_that_fails_before_its_first_step_blocks_nothing(host):
    """Row 1 of the run-state table: bad input found after the start leaves nothing to resume."""
    failed = playbook(host, *confirm(host.name, PLAYBOOK), "-e", "selftest_dataset=../bad", "-e", "selftest_fail_before_steps=true")
    assert_failed_with(failed, "selftest refused dataset ../bad before its first step")
    assert host.read_json(STATE + "/runs/selftest.json")["status"] == "closed"
    assert host.run("test", "-e", STATE + "/locks/selftest.json").returncode == 1
    plain = playbook(host, *confirm(host.name, PLAYBOOK))
    assert plain.returncode == 0 and "new run" in plain.stdout, plain.stdout[-3000:]
    assert effects(host) == STEPS


def test_a_run_that_fails_inside_a_step_is_resumed_by_the_same_request(host):
    """Row 3: a runbook that replaces data keeps its started run; the same request resumes it."""
    failed = playbook(host, *confirm(host.name, PLAYBOOK), "-e", "selftest_fail_in=replace_data")
    assert_failed_with(failed, "selftest step replace_data failed on purpose")
    assert effects(host) == STEPS[:2]
    resumed = playbook(host, *confirm(host.name, PLAYBOOK))
    assert resumed.returncode == 0 and "resuming; already done: prepare, stop_services" in resumed.stdout
    assert effects(host) == STEPS


def test_a_runbook_that_only_adds_never_waits_on_an_unfinished_run(host):
    """Row 2: a killed additive run (a backup) is abandoned, recorded, and the next run goes on."""
    adds = (*confirm(host.name, PLAYBOOK), "-e", "selftest_resumable=false")
    run = playbook(host, *adds, "-e", "selftest_hold_after=stop_services", background=True)
    assert wait_for(lambda: effects(host) == STEPS[:2] and checkpointed(host) == sorted(STEPS[:2]) and holding(host))
    killed = host.read_json(STATE + "/runs/selftest.json")["run_id"]
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    release_hold(host)
    nightly = playbook(host, *adds, "-e", "selftest_dataset=beta")
    assert nightly.returncode == 0, nightly.stdout[-3000:]
    assert "abandoned the unfinished run %s" % killed in " ".join(nightly.stdout.split())
    assert effects(host) == STEPS[:2] + STEPS
    record = host.records()[-1]
    assert record["result"] == "success" and record["abandoned"]["run_id"] == killed
    assert record["abandoned"]["done"] == STEPS[:2]


def test_two_runs_racing_for_the_lock_one_wins(host):
    """Two operators start the same runbook at the same moment: exactly one runs it."""
    racers = [playbook(host, *confirm(host.name, PLAYBOOK), background=True) for _n in range(2)]
    outputs = [(racer.communicate()[0], racer.returncode) for racer in racers]
    assert sorted(rc for _out, rc in outputs) == [0, 2], [out[-1500:] for out, _rc in outputs]
    loser = [out for out, rc in outputs if rc == 2][0]
    assert "The selftest lock on this host is held by run" in " ".join(loser.split())
    assert effects(host) == STEPS


def test_a_rerun_waits_for_the_killed_runs_task_still_running_on_the_host(host):
    """A module outlives its killed controller: the re-run never races it. It names the task while
    it waits no more, and takes over once the task has ended."""
    run = playbook(host, *confirm(host.name, PLAYBOOK), "-e", "selftest_hold_before_record=replace_data",
                   "-e", "selftest_hold_seconds=25", background=True)
    assert wait_for(lambda: effects(host) == STEPS[:3] and host.sh("pgrep -f '^sleep 25'").returncode == 0)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    pid = host.sh("pgrep -f '^sleep 25'").stdout.strip()
    impatient = playbook(host, *confirm(host.name, PLAYBOOK), "-e", "runbook_orphan_wait=0")
    assert_failed_with(impatient, "a task of that run is still running on this host:", "pid %s (sleep 25)" % pid)
    assert effects(host) == STEPS[:3] and checkpointed(host) == sorted(STEPS[:2])
    patient = playbook(host, *confirm(host.name, PLAYBOOK))
    assert patient.returncode == 0, patient.stdout[-3000:]
    assert "took over the selftest lock" in patient.stdout and "resuming" in patient.stdout
    assert effects(host) == STEPS


def test_a_run_holding_the_host_for_maintenance_keeps_triage_to_observing(host):
    """While a run that stops services holds the host, triage sees a crashed service, says who holds
    the host, and restarts nothing; once the run is over, triage restarts the service."""
    run = playbook(host, *confirm(host.name, PLAYBOOK), "-e", "selftest_maintenance=true",
                   "-e", "selftest_hold_after=stop_services", background=True)
    try:
        assert wait_for(lambda: checkpointed(host) == sorted(STEPS[:2]))
        holder = host.read_json(STATE + "/locks/maintenance.json")
        host.run("sandbox-fault", "set", "kill", "api")
        assert wait_for(lambda: host.statuses().get("api") == "exited", timeout=30)
        record = host.triage_observes(holder)
        assert record["summary"].endswith(" (api), nothing restarted"), record["summary"]
        assert host.statuses()["api"] == "exited"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        release_hold(host)
    host.sh("rm -f %s/locks/maintenance.json %s/locks/selftest.json" % (STATE, STATE))
    after = host.playbook("api_triage.yml")
    assert after.returncode == 0 and host.statuses()["api"] == "healthy", after.stdout[-3000:]
    assert host.records()[-1]["changed_steps"] == ["remediate"]


def test_the_nself_release_is_judged_by_its_db_command_not_its_number(host):
    """The v0.9.9 release tag reports 0.9.8 and runs the runbook; 0.9.8 itself, whose `db` command
    differs, is refused by the preflight before the first step."""
    try:
        host.run("sandbox-fault", "set", "nself_tag", "v0.9.9")
        assert host.run("nself", "-v").stdout.strip() == "0.9.8"
        proc = playbook(host, *confirm(host.name, PLAYBOOK))
        assert proc.returncode == 0, proc.stdout[-2000:]
        assert effects(host) == STEPS
        host.sh("rm -rf %s /var/lib/selftest" % STATE)
        host.run("sandbox-fault", "clear", "nself_tag")
        host.run("sandbox-fault", "set", "nself_tag", "v0.9.8")
        refused = playbook(host, *confirm(host.name, PLAYBOOK))
        assert_failed_with(refused, "selftest failed on %s:" % host.name,
                           "nself 0.9.8 has 0.9.8's `db` command (`nself db help` lists `migrate down [n]`)", "install nself 0.9.9")
        assert effects(host) == []
    finally:
        host.run("sandbox-fault", "clear", "nself_tag")
