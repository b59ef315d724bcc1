from ansible_collections.nfamily.ops.plugins.modules import nself_info

from ...conftest import status_json

HEALTH_OK = '{"timestamp": "x", "healthy": 4, "unhealthy": 0, "total": 4, "services": []}'
HEALTH_BAD = '{"timestamp": "x", "healthy": 3, "unhealthy": 1, "total": 4, "services": []}'


def project(tmp_path):
    (tmp_path / ".env").write_text("ENV=prod\n")
    return str(tmp_path)


def test_reports_services_and_health(run_module, tmp_path):
    answers = {"-v": (0, "0.9.9\n", ""), "status --json": (0, status_json(("postgres", "healthy"), ("auth", "exited")), ""),
               "health --json": (1, HEALTH_BAD, "")}
    result, calls = run_module(nself_info.main, {"project_dir": project(tmp_path)}, answers)
    assert result["changed"] is False and not result["failed"]
    assert result["nself_version"] == "0.9.9"
    assert result["unhealthy_services"] == ["auth"]
    assert result["services_by_name"]["postgres"]["status"] == "healthy"
    assert result["healthy"] is False
    assert [c["cmd"][1:] for c in calls] == [["-v"], ["status", "--json"], ["health", "--json"]]


def test_filters_services_and_names_missing_ones(run_module, tmp_path):
    answers = {"status --json": (0, status_json(("postgres", "healthy"), ("auth", "healthy")), "")}
    args = {"project_dir": project(tmp_path), "gather": ["status"], "services": ["auth", "scheduler"]}
    result = run_module(nself_info.main, args, answers)[0]
    assert [s["name"] for s in result["services"]] == ["auth"]
    assert result["missing_services"] == ["scheduler"]


def test_health_rc_does_not_decide(run_module, tmp_path):
    # rc 1 from `nself health` but a document with no unhealthy service: the document wins
    args = {"project_dir": project(tmp_path), "gather": ["health"]}
    result = run_module(nself_info.main, args, {"health --json": (1, HEALTH_OK, "")})[0]
    assert result["healthy"] is True


def test_unparsable_status_fails_with_the_command(run_module, tmp_path):
    answers = {"status --json": (1, "", "✗ docker-compose.yml not found. Run 'nself build' first.")}
    result = run_module(nself_info.main, {"project_dir": project(tmp_path), "gather": ["status"]}, answers)[0]
    assert result["failed"] and "docker-compose.yml not found" in result["msg"]
    assert result["commands"][0]["rc"] == 1


def test_missing_project_fails_before_running_nself(run_module, tmp_path):
    result, calls = run_module(nself_info.main, {"project_dir": str(tmp_path / "missing")}, {})
    assert result["failed"] and "does not exist" in result["msg"] and calls == []
