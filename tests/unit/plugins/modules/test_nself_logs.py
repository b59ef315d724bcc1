from ansible_collections.nfamily.ops.plugins.modules import nself_logs

HEADER = "\x1b[0;34m╔══════╗\x1b[0m\n\x1b[0;34m║\x1b[0m\x1b[1m nself logs \x1b[0m\x1b[0;34m║\x1b[0m\n\x1b[0;34m╚══════╝\x1b[0m\n\n"
API = HEADER + (
    "\x1b[1;90m2026-11-27 03:30:00\x1b[0m \x1b[1;36m[api         ]\x1b[0m listening on :4001\n"
    "\x1b[1;90m2026-11-27 03:30:01\x1b[0m \x1b[1;36m[api         ]\x1b[0m Error: connect ECONNREFUSED 127.0.0.1:5432\n"
    "\x1b[1;90m2026-11-27 03:30:02\x1b[0m \x1b[1;36m[api         ]\x1b[0m 127.0.0.1 \"GET /api/audit HTTP/1.1\" 502 -\n"
    "\x1b[1;90m2026-11-27 03:30:03\x1b[0m \x1b[1;36m[api         ]\x1b[0m {\"level\":50,\"msg\":\"pool exhausted\"}\n"
    "\x1b[1;90m2026-11-27 03:30:04\x1b[0m \x1b[1;36m[api         ]\x1b[0m 127.0.0.1 \"GET /health HTTP/1.1\" 200 -\n")


def project(tmp_path):
    (tmp_path / ".env").write_text("ENV=prod\n")
    return str(tmp_path)


def test_parses_lines_without_ansi_or_header(run_module, tmp_path):
    result, calls = run_module(nself_logs.main, {"project_dir": project(tmp_path), "services": ["api"], "lines": 5},
                               {"logs api --tail 5": (0, API, "")})
    assert result["counts"] == {"api": {"read": 5, "kept": 5}}
    assert result["entries"][1] == {"time": "2026-11-27 03:30:01", "service": "api",
                                    "message": "Error: connect ECONNREFUSED 127.0.0.1:5432"}
    assert calls[0]["cmd"][1:] == ["logs", "api", "--tail", "5"] and not result["changed"]


def test_errors_only_keeps_problems(run_module, tmp_path):
    args = {"project_dir": project(tmp_path), "services": ["api"], "errors_only": True}
    result = run_module(nself_logs.main, args, {"logs api --tail 100": (0, API, "")})[0]
    assert [e["time"][-2:] for e in result["entries"]] == ["01", "02", "03"]


def test_pattern_filters_messages(run_module, tmp_path):
    args = {"project_dir": project(tmp_path), "services": ["api"], "pattern": "ECONN"}
    result = run_module(nself_logs.main, args, {"logs api --tail 100": (0, API, "")})[0]
    assert len(result["entries"]) == 1


def test_unknown_service_fails_naming_it(run_module, tmp_path):
    answers = {"logs apii --tail 100": (1, "", "Service 'apii' not found\nAvailable services: api auth")}
    result = run_module(nself_logs.main, {"project_dir": project(tmp_path), "services": ["apii"]}, answers)[0]
    assert result["failed"] and "Service 'apii' not found" in result["msg"]


def test_bad_pattern_fails_before_running(run_module, tmp_path):
    result, calls = run_module(nself_logs.main, {"project_dir": project(tmp_path), "services": ["api"], "pattern": "("}, {})
    assert result["failed"] and "regular expression" in result["msg"] and calls == []
