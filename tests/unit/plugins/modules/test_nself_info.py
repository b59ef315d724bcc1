from ansible_collections.nfamily.ops.plugins.modules import nself_info

from ...conftest import JsonHandler, serve, status_json

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


def serve_routes(routes):
    """A local HTTP server answering {path: (status, body)}, or {"<Host header> <path>": …} for a virtual
    host; returns (server, base url)."""
    class Handler(JsonHandler):
        def do_GET(self):  # noqa: N802
            status, body = routes.get("%s %s" % (self.headers.get("Host"), self.path),
                                      routes.get(self.path, (404, "not found")))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body.encode())

    return serve(Handler)


def endpoint(name, url, **extra):
    spec = {"name": name, "url": url, "status": [200], "json_status": None, "body": None, "host": None, "validate_certs": True}
    spec.update(extra)
    return spec


def test_endpoints_are_judged_by_status_json_status_and_body():
    server, base = serve_routes({"/ready": (200, '{"status": "not_ready"}'), "/health": (200, "healthy\n"),
                                 "/auth/me": (401, '{"error": "unauthorized"}'), "/down": (503, '{"status": "error"}'),
                                 "api.family.test /healthz": (200, "OK")})
    try:
        results = nself_info.probe_all([
            endpoint("ready", base + "/ready", json_status="ready"),
            endpoint("health", base + "/health", body="healthy"),
            endpoint("route", base + "/auth/me", status=[200, 401]),
            endpoint("down", base + "/down"),
            endpoint("refused", "http://127.0.0.1:9/"),
            endpoint("vhost", base + "/healthz", host="api.family.test"),
            endpoint("no vhost", base + "/healthz"),
        ], timeout=5)
    finally:
        server.shutdown()
    by_name = dict((r["name"], r) for r in results)
    assert [r["name"] for r in results] == ["ready", "health", "route", "down", "refused", "vhost", "no vhost"]
    assert by_name["vhost"]["ok"] is True and by_name["no vhost"]["status"] == 404
    assert by_name["ready"]["ok"] is False and by_name["ready"]["detail"] == "not_ready"
    assert by_name["health"]["ok"] is True
    assert by_name["route"]["ok"] is True and by_name["route"]["status"] == 401
    assert by_name["down"]["ok"] is False and by_name["down"]["status"] == 503
    assert by_name["refused"]["status"] == -1 and by_name["refused"]["ok"] is False and by_name["refused"]["detail"]
