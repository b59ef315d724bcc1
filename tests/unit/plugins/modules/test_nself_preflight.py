import os

import pytest

from ansible_collections.nfamily.ops.plugins.modules import nself_preflight

# The lines of `nself db help` that tell the two db commands apart (src/cli/db.sh of each tag).
HELP_099 = (0, "COMMANDS:\n  migrate <action>    Database migrations (up/down/status/create)\n  backup [file]       Create "
               "database backup\n\nMIGRATION COMMANDS:\n  nself db migrate up         Apply pending migrations\n"
               "  nself db migrate down       Rollback last migration\n", "")
HELP_098 = (0, "nself db - Database Management (v0.4.4)\n\nCOMMANDS:\n  Migrations:\n    migrate status          Show "
               "migration status\n    migrate down [n]        Rollback n migrations\n    backup [type] [--compress]\n", "")


def project(tmp_path, env="prod"):
    (tmp_path / ".env").write_text("ENV=%s\nPROJECT_NAME=nself-family\n" % env)
    (tmp_path / ".env.dev").write_text("POSTGRES_DB=nself_family\nPOSTGRES_USER=postgres\n")
    (tmp_path / ".env.secrets").write_text("POSTGRES_PASSWORD='s3cret-value'\n")
    return str(tmp_path)


def test_passes_and_reports_cascade_without_values(run_module, tmp_path):
    args = {"project_dir": project(tmp_path), "require_keys": ["POSTGRES_DB", "POSTGRES_PASSWORD"],
            "free_space": [{"path": str(tmp_path / "backups" / "new"), "required_bytes": 1}]}
    result = run_module(nself_preflight.main, args, {"-v": (0, "0.9.9\n", ""), "db help": HELP_099})[0]
    assert not result["failed"] and result["environment"] == "prod" and result["nself_version"] == "0.9.9"
    assert result["nself_db_dialect"] == "0.9.9"
    assert [c["file"] for c in result["cascade"]] == [".env.dev", ".env.staging", ".env.prod", ".env.secrets", ".env"]
    assert [c["exists"] for c in result["cascade"]] == [True, False, False, True, True]
    assert "s3cret" not in str(result)
    assert result["free_space"][0]["ok"] is True


def test_collects_every_problem(run_module, tmp_path):
    args = {"project_dir": project(tmp_path), "require_keys": ["JWT_SECRET"], "min_version": "0.9.9",
            "free_space": [{"path": str(tmp_path), "required_bytes": 1 << 60}]}
    result = run_module(nself_preflight.main, args, {"-v": (0, "0.9.8\n", ""), "db help": HELP_099})[0]
    assert result["failed"] and len(result["problems"]) == 3
    assert "older than 0.9.9" in result["msg"] and "JWT_SECRET" in result["msg"] and "free space first" in result["msg"]


def test_environment_option_wins(run_module, tmp_path):
    result = run_module(nself_preflight.main, {"project_dir": project(tmp_path), "environment": "dev"},
                        {"-v": (0, "0.9.9\n", ""), "db help": HELP_099})[0]
    assert result["environment"] == "dev" and [c["file"] for c in result["cascade"]] == [".env.dev", ".env.local", ".env"]
    assert result["declared_environment"] == "prod"  # an inventory calling the host dev does not make it dev


@pytest.mark.parametrize("named, declared", [("production", "prod"), ("stage", "staging"), ("dev", "dev"), ("live", None), ("", None)])
def test_declared_environment_is_only_what_the_host_names(run_module, tmp_path, monkeypatch, named, declared):
    for key in ("TARGET_ENV", "NSELF_ENV", "ENV"):
        monkeypatch.delenv(key, raising=False)
    result = run_module(nself_preflight.main, {"project_dir": project(tmp_path, env=named)},
                        {"-v": (0, "0.9.9\n", ""), "db help": HELP_099})[0]
    assert result["declared_environment"] == declared
    assert result["environment"] == (declared or "dev")  # nself itself falls back to dev: the gate must not


def test_missing_project_and_nself(run_module, tmp_path):
    result = run_module(nself_preflight.main, {"project_dir": str(tmp_path / "nope")}, {}, binary=None)[0]
    assert result["failed"] and "does not exist" in result["msg"]


def test_the_v099_tag_reporting_0_9_8_passes_by_its_db_command(run_module, tmp_path):
    result = run_module(nself_preflight.main, {"project_dir": project(tmp_path)}, {"-v": (0, "0.9.8\n", ""), "db help": HELP_099})[0]
    assert not result["failed"] and result["nself_version"] == "0.9.8" and result["nself_db_dialect"] == "0.9.9"


def test_0_9_8s_db_command_is_refused_whatever_the_number(run_module, tmp_path):
    for reported in ("0.9.8", "0.9.9"):
        result = run_module(nself_preflight.main, {"project_dir": project(tmp_path)},
                            {"-v": (0, reported + "\n", ""), "db help": HELP_098})[0]
        assert result["failed"] and result["nself_db_dialect"] == "0.9.8"
        assert "has 0.9.8's `db` command (`nself db help` lists `migrate down [n]`)" in result["msg"]
        assert "install nself 0.9.9" in result["msg"]


def test_an_unknown_db_command_is_refused_up_to_0_9_9_and_a_warning_after(run_module, tmp_path):
    odd = (1, "", "nself: db: command not found\n")
    old = run_module(nself_preflight.main, {"project_dir": project(tmp_path)}, {"-v": (0, "0.9.9\n", ""), "db help": odd})[0]
    assert old["failed"] and "`nself db help` (rc 1) is neither 0.9.9's nor 0.9.8's" in old["msg"]
    assert "it said: nself: db: command not found" in old["msg"]
    new = run_module(nself_preflight.main, {"project_dir": project(tmp_path)}, {"-v": (0, "0.10.0\n", ""), "db help": odd})[0]
    assert not new["failed"] and new["nself_db_dialect"] is None


def test_the_db_help_probe_runs_outside_the_project(run_module, tmp_path):
    """0.9.8's `db` makes its directories in the cwd before it reads `help`: the probe must not run in the project."""
    result, calls = run_module(nself_preflight.main, {"project_dir": project(tmp_path)}, {"-v": (0, "0.9.9\n", ""), "db help": HELP_099})
    probe = [c for c in calls if c["cmd"][1:] == ["db", "help"]][0]
    assert not result["failed"] and probe["kwargs"]["cwd"] != str(tmp_path)


def test_missing_rights_are_the_first_problem_and_no_secret_file_is_read(run_module, tmp_path, monkeypatch):
    project_dir = project(tmp_path)
    secrets = os.path.join(project_dir, ".env.secrets")
    monkeypatch.setattr(nself_preflight.os, "access", lambda path, mode: path != secrets)
    result = run_module(nself_preflight.main, {"project_dir": project_dir, "state_dir": str(tmp_path / "state")},
                        {"-v": (0, "0.9.7\n", ""), "db help": HELP_099})[0]
    assert result["failed"] and result["problems"][0].endswith("see docs/on-call.md)") and "cannot read %s" % secrets in result["msg"]
    assert result["msg"].startswith("Preflight failed: ") and result["cascade"] == []


def test_the_rights_check_alone_runs_no_nself_and_reads_no_env_file(run_module, tmp_path):
    result = run_module(nself_preflight.main, {"project_dir": project(tmp_path), "state_dir": str(tmp_path / "state"),
                                               "checks": ["rights"]}, {})[0]
    assert not result["failed"] and result["cascade"] == [] and result["free_space"] == [] and "nself_version" not in result


def test_a_library_the_host_lacks_is_named_first_with_its_install_command(run_module, tmp_path, monkeypatch):
    """Checked with the rights, before the runbook reads anything: every missing library at once."""
    from ansible_collections.nfamily.ops.plugins.module_utils import _host_requirements as hostreq
    monkeypatch.setitem(hostreq.LIBRARIES, "nfamily_no_such_lib", ("python3-nfamily-no-such-lib", "nfamily-no-such-lib", ()))
    args = {"project_dir": project(tmp_path), "state_dir": str(tmp_path / "state"), "libraries": ["boto3", "nfamily_no_such_lib"],
            "checks": ["rights", "libraries"]}
    result = run_module(nself_preflight.main, args, {})[0]
    assert result["failed"] and result["missing_libraries"] == ["nfamily_no_such_lib"]
    assert result["msg"].startswith("Preflight failed: this host's Python (") and "install it with `" in result["msg"]
    assert "nfamily-no-such-lib" in result["msg"] and "nself_version" not in result
    without = run_module(nself_preflight.main, dict(args, checks=["rights"]), {})[0]
    assert not without["failed"] and without["missing_libraries"] == []
