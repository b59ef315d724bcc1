"""Jobs launched the way AWX launches them, and their comparison with the same runs from ansible-playbook (issue 14,
item 3). AWX runs a job with ansible-runner in a private data directory, with the job id in the environment and in
extra variables (awx_job_id, tower_job_id), the survey answers as extra variables, its credentials injected as
environment variables, and no one to answer a prompt."""
import itertools
import json
import os
import re

import ansible_runner
import yaml

from runbook_host import ANSIBLE_ENV, REPO, recap

# The sandbox fixture's verification account (tests/sandbox/nself_sandbox/provision.py), injected as AWX's credential.
VERIFY_PASSWORD = "family-sandbox-pass"
# What may differ between two runs of the same request: who, when, and which run.
PER_RUN = {"run_id", "started_at", "ended_at", "duration_s", "who", "playbook"}
TIMES = re.compile(r"\d{8}T\d{6}Z|\d{14}|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")
# Values a run's summary states that two runs of the same request never share, beside its id and times: how long a
# step took, the key a rotation made, the timeline a recovery opened.
PER_RUN_VALUES = [(re.compile(r"\b\d+(\.\d+)? s\b"), "<n> s"), (re.compile(r"hmac-sha256:[0-9a-f]{16}"), "<key>"),
                  (re.compile(r"timeline [0-9A-F]{8}"), "timeline <n>")]
JOB_IDS = itertools.count(7340001)


def inventory(box):
    """The host's inventory as AWX gives it: the verification password is not in it but read from the environment,
    where AWX's credential injects it (as inventories/prod/group_vars/nfamily_backend.yml reads it)."""
    with open(box.inventory, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    group_vars = document["all"]["children"]["nfamily_backend"]["vars"]
    group_vars["nfamily_verify_password"] = "{{ lookup('ansible.builtin.env', 'NFAMILY_VERIFY_PASSWORD', default='') }}"
    path = os.path.join(box.workdir, "awx-hosts.yml")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(document, handle)
    return path


def run(box, inventory, playbook, job_id, answers, workdir, credentials=None):
    """The job as AWX starts it: runner in a private data directory, JOB_ID and the injected credentials in the
    environment, awx_job_id and tower_job_id and the survey answers as extra variables (a workflow's approved run also
    gets its runbook_confirm so), and nobody to answer a prompt (runner's pseudo-terminal has no one behind it, and a
    prompt would wait until the job times out)."""
    env = dict(ANSIBLE_ENV, JOB_ID=str(job_id), AWX_HOST="https://awx.example.invalid", ANSIBLE_FORCE_COLOR="0",
               NFAMILY_VERIFY_PASSWORD=VERIFY_PASSWORD, **(credentials or {}))
    extravars = dict(answers, awx_job_id=job_id, tower_job_id=job_id, awx_job_template_name="nFamily " + playbook,
                     runbook_report_dir=box.reports)
    return ansible_runner.run(private_data_dir=str(workdir), playbook=os.path.join(REPO, "playbooks", playbook),
                              inventory=inventory, extravars=extravars, envvars=env, quiet=True,
                              settings={"job_timeout": 900, "idle_timeout": 600})


def shell_args(answers):
    """The answers as an operator types them: name=value for a scalar, JSON for a list or a mapping."""
    args = []
    for key, value in answers.items():
        args += ["-e", json.dumps({key: value}) if isinstance(value, (list, dict)) else "%s=%s" % (key, value)]
    return args


def normalized(value, run_ids):
    """value with the run ids and times in it replaced by placeholders."""
    text = json.dumps(value, sort_keys=True)
    for run_id in run_ids:
        text = re.sub(r"(?<![0-9A-Za-z])%s(?![0-9A-Za-z])" % re.escape(run_id), "<run>", text)
    text = TIMES.sub("<time>", text)
    for pattern, placeholder in PER_RUN_VALUES:
        text = pattern.sub(placeholder, text)
    return json.loads(text)


def report(box, record):
    """The run's report without its details' lines: those are the evidence read live (log lines, disk use), which two
    runs minutes apart never share; the sections are the same."""
    with open(os.path.join(box.reports, record["run_id"], box.name + ".json"), encoding="utf-8") as handle:
        document = json.load(handle)
    details = document.pop("details")
    return dict((k, v) for k, v in document.items() if k not in PER_RUN), sorted(details)


def assert_same(from_awx, from_shell, what):
    """from_awx == from_shell, or fail naming what differs (this module's asserts are not rewritten by pytest)."""
    if from_awx == from_shell:
        return
    if isinstance(from_awx, dict) and isinstance(from_shell, dict):
        keys = sorted(set(from_awx) | set(from_shell))
        differ = dict((k, {"awx": from_awx.get(k), "shell": from_shell.get(k)}) for k in keys if from_awx.get(k) != from_shell.get(k))
        raise AssertionError("%s differ: %s" % (what, json.dumps(differ, sort_keys=True)[:3000]))
    raise AssertionError("%s differ: awx %r, shell %r" % (what, from_awx, from_shell))


def compare(box, awx_inventory, tmp_path, playbook, answers, setup, state, shell_env=None, credentials=None):
    """Run playbook from a shell (with shell_env) and then as AWX does (with the credentials' variables), each from
    setup()'s starting state, and check they end alike. answers may be a function of what setup() returned (a target
    time made by it). Returns the two run records (None for a playbook that keeps none)."""
    ask = answers if callable(answers) else (lambda _start: answers)
    start = setup()
    records = len(box.records())
    shell = box.playbook(playbook, *shell_args(ask(start)), env=shell_env)
    assert shell.returncode == 0, shell.stdout[-3000:]
    from_shell = box.records()[-1] if len(box.records()) > records else None
    shell_state = state()

    start = setup()
    records = len(box.records())
    job_id = next(JOB_IDS)
    (tmp_path / "private").mkdir(parents=True)
    runner = run(box, awx_inventory, playbook, job_id, ask(start), tmp_path / "private", credentials)
    assert (runner.status, runner.rc) == ("successful", 0), runner.stdout.read()[-3000:]
    assert len(box.records()) == records + (1 if from_shell else 0), "the AWX-shaped run left %d run records" % (len(box.records()) - records)
    from_awx = box.records()[-1] if from_shell else None
    assert_same(normalized(state(), []), normalized(shell_state, []), "the host's states")

    stats = [e for e in runner.events if e.get("event") == "playbook_on_stats"][-1]["event_data"]
    shell_recap = recap(shell.stdout)
    for key, field in (("changed", "changed"), ("failed", "failures"), ("ok", "ok")):
        assert_same(stats[field].get(box.name, 0), shell_recap[key], "the recaps' %s counts" % key)
    if from_shell is None:
        return None, None
    assert from_awx["run_id"] == str(job_id) and from_shell["run_id"] != str(job_id)
    run_ids = [from_shell["run_id"], str(job_id)]
    assert_same(normalized(dict((k, v) for k, v in from_awx.items() if k not in PER_RUN), run_ids),
                normalized(dict((k, v) for k, v in from_shell.items() if k not in PER_RUN), run_ids), "the run records")
    assert_same(normalized(report(box, from_awx), run_ids), normalized(report(box, from_shell), run_ids), "the reports")
    expected = {"runbook": from_awx["runbook"], "run_id": str(job_id), "result": from_awx["result"],
                "changed_steps": from_awx["changed_steps"]}
    assert_same(stats["artifact_data"]["nfamily_runs"][box.name], expected, "set_stats")
    return from_shell, from_awx
