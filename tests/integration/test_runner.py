"""Playbooks run through ansible-runner with a private data dir laid out the way AWX does it
(env/extravars, env/envvars, inventory/, the project checkout), and the artifacts are checked."""
import json
import os

import ansible_runner
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def private_data_dir(tmp_path, host, extravars):
    with open(os.path.join(REPO, "inventories", "sandbox", "group_vars", "nfamily_backend.yml"), encoding="utf-8") as handle:
        group_vars = yaml.safe_load(handle)
    inventory = {"all": {"children": {"nfamily_backend": {"vars": group_vars, "children": {"prod": {"hosts": {host: {
        "ansible_connection": "containers.podman.podman", "ansible_python_interpreter": "/usr/bin/python3"}}}}}}}}
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "extravars").write_text(yaml.safe_dump(extravars))
    (tmp_path / "env" / "envvars").write_text(yaml.safe_dump({
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, ".collections"),
        "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", ""),
        "AWX_JOB_ID": "4242"}))
    (tmp_path / "env" / "settings").write_text(yaml.safe_dump({"job_timeout": 600, "idle_timeout": 300}))
    return str(tmp_path)


def run(tmp_path, sandbox, extravars, ident):
    return ansible_runner.run(private_data_dir=private_data_dir(tmp_path, sandbox.name, extravars), project_dir=REPO,
                              playbook="playbooks/service_report.yml", ident=ident, quiet=True)


def events(tmp_path, ident):
    folder = tmp_path / "artifacts" / ident / "job_events"
    return [json.loads(p.read_text()) for p in sorted(folder.iterdir(), key=lambda p: int(p.name.split("-")[0]))]


def test_service_report_through_runner(tmp_path, healthy):
    result = run(tmp_path, healthy, {"service_report_fail_on_unhealthy": True}, "report-ok")
    assert (result.status, result.rc) == ("successful", 0)
    artifacts = tmp_path / "artifacts" / "report-ok"
    assert (artifacts / "status").read_text() == "successful" and (artifacts / "rc").read_text() == "0"
    stream = events(tmp_path, "report-ok")
    assert stream[-1]["event"] == "playbook_on_stats"
    stats = stream[-1]["event_data"]
    assert stats["failures"] == {} and stats["changed"] == {} and stats["ok"][healthy.name] >= 5
    report = [e for e in stream if e["event"] == "runner_on_ok" and e["event_data"]["task"] == "Print the service report"]
    assert report and "Overall: HEALTHY" in report[0]["event_data"]["res"]["msg"]


def test_unhealthy_host_fails_the_job(tmp_path, healthy):
    healthy.fault("set", "kill", "api")
    result = run(tmp_path, healthy, {"service_report_fail_on_unhealthy": True}, "report-bad")
    assert result.status == "failed" and result.rc != 0
    failed = [e for e in events(tmp_path, "report-bad") if e["event"] == "runner_on_failed"]
    assert failed and "service api" in failed[0]["event_data"]["res"]["msg"]
