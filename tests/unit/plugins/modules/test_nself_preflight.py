from ansible_collections.nfamily.ops.plugins.modules import nself_preflight


def project(tmp_path, env="prod"):
    (tmp_path / ".env").write_text("ENV=%s\nPROJECT_NAME=nself-family\n" % env)
    (tmp_path / ".env.dev").write_text("POSTGRES_DB=nself_family\nPOSTGRES_USER=postgres\n")
    (tmp_path / ".env.secrets").write_text("POSTGRES_PASSWORD='s3cret-value'\n")
    return str(tmp_path)


def test_passes_and_reports_cascade_without_values(run_module, tmp_path):
    args = {"project_dir": project(tmp_path), "require_keys": ["POSTGRES_DB", "POSTGRES_PASSWORD"],
            "free_space": [{"path": str(tmp_path / "backups" / "new"), "required_bytes": 1}]}
    result = run_module(nself_preflight.main, args, {"-v": (0, "0.9.9\n", "")})[0]
    assert not result["failed"] and result["environment"] == "prod" and result["nself_version"] == "0.9.9"
    assert [c["file"] for c in result["cascade"]] == [".env.dev", ".env.staging", ".env.prod", ".env.secrets", ".env"]
    assert [c["exists"] for c in result["cascade"]] == [True, False, False, True, True]
    assert "s3cret" not in str(result)
    assert result["free_space"][0]["ok"] is True


def test_collects_every_problem(run_module, tmp_path):
    args = {"project_dir": project(tmp_path), "require_keys": ["JWT_SECRET"], "min_version": "0.9.9",
            "free_space": [{"path": str(tmp_path), "required_bytes": 1 << 60}]}
    result = run_module(nself_preflight.main, args, {"-v": (0, "0.9.8\n", "")})[0]
    assert result["failed"] and len(result["problems"]) == 3
    assert "older than 0.9.9" in result["msg"] and "JWT_SECRET" in result["msg"] and "free space first" in result["msg"]


def test_environment_option_wins(run_module, tmp_path):
    result = run_module(nself_preflight.main, {"project_dir": project(tmp_path), "environment": "dev"},
                        {"-v": (0, "0.9.9\n", "")})[0]
    assert result["environment"] == "dev" and [c["file"] for c in result["cascade"]] == [".env.dev", ".env.local", ".env"]


def test_missing_project_and_nself(run_module, tmp_path):
    result = run_module(nself_preflight.main, {"project_dir": str(tmp_path / "nope")}, {}, binary=None)[0]
    assert result["failed"] and "does not exist" in result["msg"]
