"""The read-only runbooks launched the way AWX launches them (molecule/_shared/awx_job.py) end as the same runs from
ansible-playbook: the same result, run record, report and host state, AWX's job id as the run id, and set_stats in the
runner's artifacts. They leave this scenario's host as the service report left it (tests/test_default.py). The runbooks
that change the host are compared in the `awx` scenario (`make awx-runs`)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_shared"))
import awx_job  # noqa: E402
from runbook_host import Instance  # noqa: E402

NAME = "nfamily-molecule-default"


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    return Instance(NAME, tmp_path_factory.mktemp("awx"))


def nothing():
    return None


@pytest.mark.parametrize("playbook, answers", [
    ("api_triage.yml", {"triage_log_lines": 50}),
    ("storage_recovery.yml", {"storage_recovery_disk_max_used_percent": 90}),
])
def test_a_read_only_runbook(box, tmp_path, playbook, answers):
    warm = box.playbook(playbook, *awx_job.shell_args(answers))  # whatever the first run of the day converges: both start alike
    assert warm.returncode == 0, warm.stdout[-3000:]
    awx_job.compare(box, awx_job.inventory(box), tmp_path, playbook, answers, nothing, box.statuses)


def test_service_report_and_host_prepare_keep_no_record_and_change_nothing(box, tmp_path):
    def state():
        return box.statuses(), box.run("dpkg-query", "-W", "python3-boto3", "python3-psycopg2").stdout
    for playbook in ("service_report.yml", "host_prepare.yml"):
        awx_job.compare(box, awx_job.inventory(box), tmp_path / playbook, playbook, {}, nothing, state)
