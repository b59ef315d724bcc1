import pytest

from ansible_collections.nfamily.ops.plugins.module_utils._triage import classify

HEALTHY_DATABASE = {"reachable": True, "error": "", "connections": 5, "max_connections": 50, "usage_percent": 10}
SERVICES = ["postgres", "redis", "minio", "hasura", "auth", "api", "scheduler", "nginx"]


def evidence(statuses=None, database=None, logs=None, routes=None, endpoints=None, dns=None):
    statuses = dict(dict((name, "healthy") for name in SERVICES), **(statuses or {}))
    return {
        "services": [{"name": name, "status": status} for name, status in statuses.items()],
        "database": database if database is not None else HEALTHY_DATABASE,
        "logs": dict((service, [{"message": m} for m in lines]) for service, lines in (logs or {}).items()),
        "routes": routes or [],
        "endpoints": endpoints or [],
        "dns": dns if dns is not None else {"domain": "family.nself.org", "resolved": True, "error": ""},
    }


def test_healthy_host():
    result = classify(evidence())
    assert result["cause"] == "healthy" and result["action"] == "none" and not result["services"]


def test_crashed_service_is_restarted_alone_with_its_last_log_line_as_evidence():
    result = classify(evidence({"auth": "exited"}, logs={"auth": ["listening", "Error: boom"]},
                               endpoints=[{"name": "auth /health", "ok": False, "status": -1}]))
    assert result["cause"] == "service_crashed" and result["services"] == ["auth"]
    assert result["action"] == "restart" and result["disruptive"] is False
    assert result["description"] == "nself restart auth"
    assert "Error: boom" in result["evidence"][0]


def test_database_down_is_named_not_the_api_that_fails_because_of_it():
    result = classify(evidence({"postgres": "exited"}, database={"reachable": False, "error": "Service 'postgres' is not running"},
                               endpoints=[{"name": "api /ready", "ok": False, "status": 200}]))
    assert result["cause"] == "database_down" and result["services"] == ["postgres"]
    assert result["action"] == "restart" and not result["disruptive"]


@pytest.mark.parametrize("database", [
    {"reachable": False, "error": "FATAL:  sorry, too many clients already"},
    {"reachable": True, "error": "", "connections": 48, "max_connections": 50, "usage_percent": 96},
])
def test_connection_exhaustion_needs_a_full_restart_which_is_disruptive(database):
    result = classify(evidence(database=database))
    assert result["cause"] == "connection_pool_exhausted"
    assert result["action"] == "full_restart" and result["disruptive"] is True


def test_out_of_memory_beats_a_plain_crash():
    result = classify(evidence({"api": "exited"}, logs={"api": ["FATAL ERROR: Reached heap limit - JavaScript heap out of memory"]}))
    assert result["cause"] == "out_of_memory" and result["services"] == ["api"] and result["action"] == "manual"


def test_nginx_down_on_a_config_error_is_a_misconfiguration():
    result = classify(evidence({"nginx": "exited"}, logs={"nginx": ['nginx: [emerg] unknown directive "this_is_not"']}))
    assert result["cause"] == "nginx_misconfigured" and result["action"] == "rebuild_nginx" and result["disruptive"]


def test_a_failing_route_with_healthy_services_is_nginx():
    result = classify(evidence(routes=[{"name": "nginx /api/ route", "ok": False, "status": 502}]))
    assert result["cause"] == "nginx_misconfigured" and "502" in result["evidence"][0]


def test_unhealthy_service_is_restarted():
    result = classify(evidence({"hasura": "unhealthy"}))
    assert result["cause"] == "service_unhealthy" and result["services"] == ["hasura"] and result["action"] == "restart"


def test_dns_failure_needs_a_person():
    result = classify(evidence(dns={"domain": "family.nself.org", "resolved": False, "error": "no address"}))
    assert result["cause"] == "dns_failure" and result["action"] == "manual"


def test_failing_endpoint_without_a_known_cause_is_unknown():
    result = classify(evidence(endpoints=[{"name": "api /ready", "ok": False, "status": 200, "detail": "not_ready"}]))
    assert result["cause"] == "unknown" and "api /ready" in result["evidence"][0]


NGINX_HOLDERS = [
    {"service": "nginx", "port": 80, "variable": "NGINX_PORT", "pid": 812, "command": "nginx: master process /usr/sbin/nginx",
     "user": "root"},
    {"service": "nginx", "port": 443, "variable": "NGINX_SSL_PORT", "pid": 812,
     "command": "nginx: master process /usr/sbin/nginx", "user": "root"},
]


def test_a_foreign_process_on_nginx_ports_is_a_port_conflict_not_a_bad_config():
    found = evidence({"nginx": "exited"}, logs={"nginx": ["nginx: [emerg] bind() to 0.0.0.0:443 failed (98: Address in use)"]},
                     routes=[{"name": "/api/health via nginx", "ok": False, "status": -1}])
    found["port_holders"] = NGINX_HOLDERS
    result = classify(found)
    assert result["cause"] == "port_conflict" and result["services"] == ["nginx"] and result["action"] == "manual"
    assert result["evidence"] == ["nginx is exited", "ports 80 (NGINX_PORT), 443 (NGINX_SSL_PORT) of nginx are held by pid 812 "
                                  "(nginx: master process /usr/sbin/nginx, user root)"]
    assert result["description"].endswith("then nself restart nginx")


def test_a_holder_of_a_running_service_port_is_not_a_conflict():
    found = evidence()
    found["port_holders"] = NGINX_HOLDERS  # nginx is healthy: it holds its own ports
    assert classify(found)["cause"] == "healthy"


def test_a_service_docker_keeps_restarting_is_a_crash_loop_with_its_last_log_line():
    result = classify(evidence({"auth": "restarting", "api": "exited"}, logs={"auth": ["FATAL: cannot read JWT_SECRET"]}))
    assert result["cause"] == "crash_loop" and result["services"] == ["auth", "api"] and result["action"] == "restart"
    assert result["description"] == "nself restart auth api"  # the other service that is down is restarted too
    assert result["evidence"] == ["auth is restarting: it exits on every start and Docker keeps restarting it; its last log "
                                  "line: FATAL: cannot read JWT_SECRET", "api is exited"]


def test_a_listener_on_the_port_of_a_looping_service_is_its_own_not_a_conflict():
    found = evidence({"nginx": "restarting"})
    found["port_holders"] = NGINX_HOLDERS  # read between two of its exits: its own process
    assert classify(found)["cause"] == "crash_loop"


def test_a_paused_service_is_down_and_restarted():
    result = classify(evidence({"hasura": "paused"}))
    assert result["cause"] == "service_crashed" and result["evidence"] == ["hasura is paused"]


def test_what_was_read_around_malformed_output_is_evidence_whatever_the_cause():
    found = evidence({"api": "exited"})
    found["parse_warnings"] = ["nself status --json printed invalid JSON (x); used its name/status pairs"]
    result = classify(found)
    assert result["cause"] == "service_crashed" and result["evidence"][-1] == found["parse_warnings"][0]
