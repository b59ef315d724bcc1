"""Runs launched the way AWX launches them (ansible-runner's Python API in a private data directory, the job id in the
environment and in extra variables, survey answers as extra variables, no one to answer a prompt) end as the same runs from
ansible-playbook do: the same result, run record, report and host state, the run id is AWX's job id, and set_stats
lands in the runner's artifacts. Read-only and no-op runbooks here: they leave this scenario's host as the service
report left it (tests/test_default.py). The same answers from a shell come as strings (-e name=value), from AWX as
JSON: the runbooks take both."""
import json
import os
import sys

import ansible_runner
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_shared"))
from runbook_host import ANSIBLE_ENV, REPO, Instance  # noqa: E402

NAME = "nfamily-molecule-default"
# What may differ between two runs of the same runbook: who, when, and which run.
PER_RUN = {"run_id", "started_at", "ended_at", "duration_s", "who", "playbook"}


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    return Instance(NAME, tmp_path_factory.mktemp("awx"))


def awx_run(box, playbook, job_id, answers, workdir):
    """The job as AWX starts it: runner in a private data directory, JOB_ID in the environment, awx_job_id and
    tower_job_id and the survey answers as extra variables, and nobody to answer a prompt (runner's pseudo-terminal
    has no one behind it, and a prompt would wait until the job times out)."""
    env = dict(ANSIBLE_ENV, JOB_ID=str(job_id), AWX_HOST="https://awx.example.invalid", ANSIBLE_FORCE_COLOR="0")
    extravars = dict(answers, awx_job_id=job_id, tower_job_id=job_id, awx_job_template_name="nFamily " + playbook,
                     runbook_report_dir=box.reports)
    return ansible_runner.run(private_data_dir=str(workdir), playbook=os.path.join(REPO, "playbooks", playbook),
                              inventory=box.inventory, extravars=extravars, envvars=env, quiet=True,
                              settings={"job_timeout": 600, "idle_timeout": 300})


def comparable(record):
    return dict((k, v) for k, v in record.items() if k not in PER_RUN)


def report(box, record):
    """The run's report without its details: those are the evidence read live (log lines, disk use), which two runs
    minutes apart never share."""
    with open(os.path.join(box.reports, record["run_id"], NAME + ".json"), encoding="utf-8") as handle:
        document = comparable(json.load(handle))
    assert document.pop("details"), "the report has no details"
    return document


# The service report keeps no run record: tests/integration/test_runner.py runs it through ansible-runner.
@pytest.mark.parametrize("playbook, answers", [
    ("api_triage.yml", {"triage_log_lines": 50}),
    ("storage_recovery.yml", {"storage_recovery_disk_max_used_percent": 90}),
])
def test_an_awx_shaped_run_ends_as_the_same_run_from_ansible_playbook(box, tmp_path, playbook, answers):
    extra = [arg for key, value in answers.items() for arg in ("-e", "%s=%s" % (key, value))]
    warm = box.playbook(playbook, *extra)  # whatever the first run of the day converges, so that both below start alike
    assert warm.returncode == 0, warm.stdout[-3000:]
    shell = box.playbook(playbook, *extra)
    assert shell.returncode == 0, shell.stdout[-3000:]
    from_shell = box.records()[-1]
    statuses = box.statuses()

    job_id = 4000 + len(box.records())
    (tmp_path / "private").mkdir()
    runner = awx_run(box, playbook, job_id, answers, tmp_path / "private")
    assert (runner.status, runner.rc) == ("successful", 0), runner.stdout.read()[-3000:]
    from_awx = box.records()[-1]

    assert from_awx["run_id"] == str(job_id) and from_shell["run_id"] != str(job_id)
    assert comparable(from_awx) == comparable(from_shell)
    assert report(box, from_awx) == report(box, from_shell)
    assert box.statuses() == statuses
    stats = [e for e in runner.events if e.get("event") == "playbook_on_stats"][-1]["event_data"]
    expected = {"runbook": from_awx["runbook"], "run_id": str(job_id), "result": "success", "changed_steps": from_awx["changed_steps"]}
    assert stats["artifact_data"]["nfamily_runs"][NAME] == expected
