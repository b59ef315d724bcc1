"""nself_traffic_info over a scripted `docker logs --timestamps` of the project's nginx container."""
from ansible_collections.nfamily.ops.plugins.modules import nself_traffic_info

BEFORE = {"name": "before", "start": "2026-12-01T02:45:00Z", "end": "2026-12-01T03:00:00Z"}
AFTER = {"name": "after", "start": "2026-12-01T03:02:00Z", "end": "2026-12-01T03:17:00Z"}
LOGS = "logs --timestamps --since 2026-12-01T02:45:00Z --until 2026-12-01T03:17:01Z fam_nginx"


def project(tmp_path):
    (tmp_path / ".env").write_text("ENV=prod\nPROJECT_NAME=fam\n")
    return str(tmp_path)


def access(minute, second, status, path="/api/posts"):
    return ('2026-12-01T03:%02d:%02d.000000001Z 172.18.0.1 - - [01/Dec/2026:03:%02d:%02d +0000] "GET %s HTTP/1.1" %d 10 "-" "curl"'
            % (minute, second, minute, second, path, status))


def early(minute, second, status):
    return access(minute, second, status).replace("T03:%02d" % minute, "T02:%02d" % minute).replace(
        "2026:03:%02d" % minute, "2026:02:%02d" % minute)


def test_a_deploy_whose_errors_rose_above_five_percent_fires_with_both_windows_as_evidence(run_module, tmp_path):
    lines = [early(50, s, 200) for s in range(40)] + [access(5, s, 502 if s % 5 == 0 else 200) for s in range(40)]
    lines += [access(5, s, 200, "/health") for s in range(40)] + ["2026-12-01T03:05:00.0Z 2026/12/01 03:05:00 [error] upstream gone"]
    result, calls = run_module(nself_traffic_info.main, {"project_dir": project(tmp_path), "windows": [BEFORE, AFTER]},
                               {LOGS: (0, "\n".join(lines) + "\n", "")}, binary="/usr/bin/docker")
    assert not result["failed"] and not result["changed"] and result["container"] == "fam_nginx"
    assert result["windows"]["before"]["requests"] == 40 and result["windows"]["after"]["server_errors"] == 8
    assert result["verdict"] == {"fired": True, "reason": "error rate 20.0 % of 40 requests above 5.0 % (0.0 % of 40 requests before)"}
    assert [c["cmd"] for c in calls] == [["/usr/bin/docker"] + LOGS.split()]


def test_a_quiet_window_is_not_judged_and_says_so(run_module, tmp_path):
    result, _calls = run_module(nself_traffic_info.main, {"project_dir": project(tmp_path), "windows": [BEFORE, AFTER]},
                                {LOGS: (0, access(5, 1, 500) + "\n", "")}, binary="/usr/bin/docker")
    assert result["verdict"]["fired"] is False and result["verdict"]["reason"].startswith("1 request(s) in the window, fewer than")


def test_bad_windows_are_refused_before_docker_runs(run_module, tmp_path):
    for windows, message in (([dict(AFTER, end=AFTER["start"])], "every window needs an end after its start (after)"),
                             ([dict(AFTER, start="yesterday")], "start of after 'yesterday' is not a UTC time")):
        result, calls = run_module(nself_traffic_info.main, {"project_dir": project(tmp_path), "windows": windows})
        assert result["failed"] and message in result["msg"] and calls == []


def test_a_missing_container_is_named(run_module, tmp_path):
    result, _calls = run_module(nself_traffic_info.main, {"project_dir": project(tmp_path), "windows": [AFTER]},
                                {LOGS.replace("02:45:00Z", "03:02:00Z"): (1, "", "Error response from daemon: No such container: fam_nginx\n")},
                                binary="/usr/bin/docker")
    assert result["failed"] and "No such container: fam_nginx" in result["msg"] and "verdict" not in result


def test_a_before_window_counted_earlier_judges_the_after_window(run_module, tmp_path):
    """nself stop removes the nginx container and its log: the deploy counts the window before it first."""
    counted = {"requests": 40, "server_errors": 0, "error_rate": 0.0}
    lines = [access(5, s, 500 if s % 4 == 0 else 200) for s in range(40)]
    result, _calls = run_module(nself_traffic_info.main, {"project_dir": project(tmp_path), "windows": [AFTER], "before": counted},
                                {LOGS.replace("02:45:00Z", "03:02:00Z"): (0, "\n".join(lines) + "\n", "")}, binary="/usr/bin/docker")
    assert result["verdict"] == {"fired": True, "reason": "error rate 25.0 % of 40 requests above 5.0 % (0.0 % of 40 requests before)"}
    result, _calls = run_module(nself_traffic_info.main, {"project_dir": project(tmp_path), "windows": [AFTER], "before": {"count": 3}},
                                {LOGS.replace("02:45:00Z", "03:02:00Z"): (0, "\n".join(lines) + "\n", "")}, binary="/usr/bin/docker")
    assert result["failed"] and "before needs the requests and error_rate" in result["msg"]
