"""runbook_report writes the run's reports on the controller: both files, private, atomically, and a failure
is the task's message, not an exception."""
import json
import os
import stat
from unittest import mock

from ansible_collections.nfamily.ops.plugins.action import runbook_report

RECORD = {"run_id": "20261127T010000Z-42", "runbook": "db_backup", "result": "failed", "who": {"user": "alice", "awx_job": ""},
          "started_at": "2026-11-27T01:00:00Z", "ended_at": "2026-11-27T01:00:09Z", "duration_s": 9, "changed_steps": ["dump"],
          "artifacts": [], "summary": "disk full", "abandoned": {"run_id": "20261126T010000Z-7", "done": []}}
DETAILS = {"Evidence": ["df: 100% used"]}


def run_action(args):
    task = mock.MagicMock(args=args, async_val=0, check_mode=False, diff=False)
    action = runbook_report.ActionModule(task, mock.MagicMock(), mock.MagicMock(), loader=None, templar=None,
                                         shared_loader_obj=None)
    return action.run(task_vars={})


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_both_reports_are_written_private_in_a_private_run_directory(tmp_path):
    result = run_action({"report_dir": str(tmp_path / "reports"), "host": "prod", "record": RECORD, "details": DETAILS})
    run_dir = tmp_path / "reports" / RECORD["run_id"]
    assert not result.get("failed") and result["changed"] is False
    assert result["paths"] == [str(run_dir / "prod.json"), str(run_dir / "prod.md")]
    assert mode(run_dir) == 0o700 and mode(run_dir / "prod.json") == 0o600 and mode(run_dir / "prod.md") == 0o600
    assert json.loads((run_dir / "prod.json").read_text()) == dict(RECORD, details=DETAILS)
    assert (run_dir / "prod.md").read_text().splitlines() == [
        "# db_backup on prod: failed", "", "| field | value |", "|---|---|", "| run | 20261127T010000Z-42 |", "| who | alice |",
        "| started | 2026-11-27T01:00:00Z |", "| ended | 2026-11-27T01:00:09Z (9 s) |", "| changed steps | dump |",
        "| artifacts | none |", "| abandoned | run 20261126T010000Z-7 (steps done: none) |", "| summary | disk full |",
        "", "## Evidence", "", "- df: 100% used"]
    assert sorted(os.listdir(run_dir)) == ["prod.json", "prod.md"]  # no temporary file left


def test_a_second_host_of_the_run_adds_its_reports_beside_the_first(tmp_path):
    for host in ("prod", "staging"):
        assert not run_action({"report_dir": str(tmp_path), "host": host, "record": RECORD}).get("failed")
    assert sorted(os.listdir(tmp_path / RECORD["run_id"])) == ["prod.json", "prod.md", "staging.json", "staging.md"]


def test_a_report_directory_that_cannot_be_written_fails_the_task_with_the_reason(tmp_path):
    (tmp_path / "reports").write_text("a file, not a directory")
    result = run_action({"report_dir": str(tmp_path / "reports"), "host": "prod", "record": RECORD})
    assert result["failed"] and result["msg"].startswith("cannot write the run's reports in %s" % (tmp_path / "reports" / RECORD["run_id"]))
