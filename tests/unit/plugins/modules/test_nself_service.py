import os

import pytest

from ansible_collections.nfamily.ops.plugins.modules import nself_service

from ...conftest import status_json

ALL = ["postgres", "hasura", "auth", "api"]


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(nself_service.time, "sleep", lambda s: None)


def project(tmp_path):
    (tmp_path / ".env").write_text("ENV=prod\n")
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    return str(tmp_path)


def status(**overrides):
    return (0, status_json(*[(n, overrides.get(n, "healthy")) for n in ALL]), "")


def commands(calls):
    return [" ".join(c["cmd"][1:]) for c in calls if c["cmd"][1] != "status"]


def test_stops_only_running_services_and_confirms(run_module, tmp_path):
    answers = {"status --json": [status(api="exited"), status(api="exited", auth="exited")],
               "stop auth": (0, "", "")}
    args = {"project_dir": project(tmp_path), "services": ["auth", "api"], "state": "stopped"}
    result, calls = run_module(nself_service.main, args, answers)
    assert result["changed"] and result["acted_on"] == ["auth"]
    assert commands(calls) == ["stop auth"]
    assert result["services"] == {"auth": "exited", "api": "exited"}


def test_already_stopped_is_no_change(run_module, tmp_path):
    args = {"project_dir": project(tmp_path), "services": ["api"], "state": "stopped"}
    result, calls = run_module(nself_service.main, args, {"status --json": status(api="stopped")})
    assert not result["changed"] and commands(calls) == []


def test_starts_one_service_with_restart_and_waits_for_healthy(run_module, tmp_path):
    answers = {"status --json": [status(api="exited"), status(api="starting"), status()],
               "restart api": (0, "", "")}
    args = {"project_dir": project(tmp_path), "services": ["auth", "api"], "state": "started"}
    result, calls = run_module(nself_service.main, args, answers)
    assert result["changed"] and commands(calls) == ["restart api"]
    assert result["services"] == {"auth": "healthy", "api": "healthy"}


def test_starts_everything_with_start_when_nothing_runs(run_module, tmp_path):
    down = dict((n, "stopped") for n in ALL)
    answers = {"status --json": [status(**down), status()], "start": (0, "✓ All services started successfully", "")}
    result, calls = run_module(nself_service.main, {"project_dir": project(tmp_path), "state": "started"}, answers)
    assert result["changed"] and commands(calls) == ["start"]


def test_exit_code_127_of_a_working_restart_is_not_a_failure(run_module, tmp_path):
    answers = {"status --json": [status(), status(api="starting"), status()], "restart api": (127, "", "cmd_start: command not found")}
    args = {"project_dir": project(tmp_path), "services": ["api"], "state": "restarted"}
    result = run_module(nself_service.main, args, answers)[0]
    assert result["changed"] and not result["failed"]


def test_a_service_that_does_not_come_back_fails_naming_it(run_module, tmp_path):
    answers = {"status --json": [status(api="exited")], "restart api": (0, "", "")}
    args = {"project_dir": project(tmp_path), "services": ["api"], "state": "started", "timeout": 0}
    result = run_module(nself_service.main, args, answers)[0]
    assert result["failed"] and "api=exited" in result["msg"] and "nself logs" in result["msg"]


def test_full_restart_is_stop_then_start(run_module, tmp_path):
    answers = {"status --json": status(), "stop": (0, "", ""), "start": (0, "", "")}
    result, calls = run_module(nself_service.main, {"project_dir": project(tmp_path), "state": "restarted"}, answers)
    assert result["changed"] and commands(calls) == ["stop", "start"]


def test_unknown_service_fails_before_acting(run_module, tmp_path):
    args = {"project_dir": project(tmp_path), "services": ["apii"], "state": "restarted"}
    result, calls = run_module(nself_service.main, args, {"status --json": status()})
    assert result["failed"] and "apii" in result["msg"] and "known: api, auth" in result["msg"] and commands(calls) == []


def test_check_mode_predicts_without_acting(run_module, tmp_path):
    args = {"project_dir": project(tmp_path), "services": ["auth", "api"], "state": "started", "_ansible_check_mode": True}
    result, calls = run_module(nself_service.main, args, {"status --json": status(auth="exited")})
    assert result["changed"] and result["acted_on"] == ["auth"] and commands(calls) == []


def test_rebuild_fails_when_the_compose_file_was_not_rewritten(run_module, tmp_path):
    answers = {"status --json": status(), "build": (0, "✗ Failed to generate docker-compose.yml", "")}
    result, calls = run_module(nself_service.main, {"project_dir": project(tmp_path), "state": "rebuilt"}, answers)
    assert result["failed"] and "did not rewrite docker-compose.yml" in result["msg"]
    assert commands(calls) == ["build"]


def test_rebuild_restarts_after_a_real_build(run_module, tmp_path):
    directory = project(tmp_path)
    compose = os.path.join(directory, "docker-compose.yml")
    os.utime(compose, (1, 1))

    def build():
        os.utime(compose, None)
        return 0, "✓ Services (4)", ""

    answers = {"status --json": status(), "build": build, "stop": (0, "", ""), "start": (0, "", "")}
    result, calls = run_module(nself_service.main, {"project_dir": directory, "state": "rebuilt"}, answers)
    assert result["changed"] and commands(calls) == ["build", "stop", "start"]


def test_reconfigured_builds_then_starts_so_compose_recreates_what_changed(run_module, tmp_path):
    directory = project(tmp_path)
    compose = os.path.join(directory, "docker-compose.yml")
    os.utime(compose, (1, 1))

    def build():
        os.utime(compose, None)
        return 0, "✓ Services (4)", ""

    answers = {"status --json": [status(), status(auth="starting"), status()], "build": build,
               "start --skip-port-check": (0, "✓ All services started successfully", "")}
    args = {"project_dir": directory, "services": ["hasura", "auth", "api"], "state": "reconfigured"}
    result, calls = run_module(nself_service.main, args, answers)
    # never `nself restart <svc>`: compose restart keeps a container's old environment
    assert result["changed"] and commands(calls) == ["build", "start --skip-port-check"]
    assert result["services"] == {"hasura": "healthy", "auth": "healthy", "api": "healthy"}


def test_a_service_that_exits_again_after_its_start_fails_at_once_with_its_log(run_module, tmp_path):
    """postgres started on a data directory it cannot recover exits within a second: the module says so
    after two polls, with the log, instead of waiting out its timeout."""
    answers = {"status --json": [status(postgres="exited"), status(postgres="exited"), status(postgres="exited")],
               "restart postgres": (0, "", ""),
               "logs postgres --tail 4": (0, "2026-11-29T23:40:49Z [postgres   ] FATAL:  recovery ended before configured "
                                             "recovery target was reached\n", "")}
    args = {"project_dir": project(tmp_path), "services": ["postgres"], "state": "started", "wait_healthy": False,
            "timeout": 300}
    result, calls = run_module(nself_service.main, args, answers)
    assert result["failed"] and commands(calls) == ["restart postgres", "logs postgres --tail 4"]
    assert result["msg"].startswith("postgres exited again right after it was started; its log ends: postgres: FATAL:  recovery "
                                    "ended before configured recovery target was reached")


def test_a_service_seen_exited_once_while_it_comes_up_is_waited_for(run_module, tmp_path):
    answers = {"status --json": [status(api="exited"), status(api="exited"), status(api="starting"), status()],
               "restart api": (0, "", "")}
    args = {"project_dir": project(tmp_path), "services": ["api"], "state": "started"}
    result, calls = run_module(nself_service.main, args, answers)
    assert result["changed"] and result["services"] == {"api": "healthy"}


@pytest.fixture
def clock(monkeypatch):
    """Time that passes only by the module's sleeps."""
    now = [1000.0]
    monkeypatch.setattr(nself_service.time, "time", lambda: now[0])
    monkeypatch.setattr(nself_service.time, "sleep", lambda seconds: now.__setitem__(0, now[0] + seconds))
    return now


def test_a_crash_looping_service_fails_after_30_s_naming_the_loop(run_module, tmp_path, clock):
    """Docker's restart policy keeps a service that exits on every start `restarting`, never `exited`:
    30 s of it is a crash loop, said then instead of after the whole timeout."""
    answers = {"status --json": [status(auth="restarting")] * 40,
               "restart auth": (0, "", ""),
               "logs auth --tail 4": (0, "2026-11-30T06:25:11Z [auth        ] FATAL: auth refuses to start\n", "")}
    args = {"project_dir": project(tmp_path), "services": ["auth"], "state": "started", "timeout": 300}
    started = clock[0]
    result, calls = run_module(nself_service.main, args, answers)
    assert result["failed"] and commands(calls) == ["restart auth", "logs auth --tail 4"]
    assert result["msg"].startswith("auth exited again right after it was started (Docker keeps restarting auth: a crash "
                                    "loop); its log ends: auth: FATAL: auth refuses to start")
    assert 30 <= clock[0] - started <= 36


def test_a_crash_loop_seen_starting_between_its_restarts_is_still_a_loop(run_module, tmp_path, clock):
    """On a real host a looping container runs for a moment after each restart (health `starting`):
    a poll that catches it so does not restart the loop's 30 s."""
    answers = {"status --json": [status(auth="restarting"), status(auth="restarting"), status(auth="starting")] * 14,
               "restart auth": (0, "", ""),
               "logs auth --tail 4": (0, "2026-11-30T06:25:11Z [auth        ] FATAL: auth refuses to start\n", "")}
    args = {"project_dir": project(tmp_path), "services": ["auth"], "state": "started", "timeout": 300}
    started = clock[0]
    result, calls = run_module(nself_service.main, args, answers)
    assert result["failed"] and "Docker keeps restarting auth: a crash loop" in result["msg"], result
    assert 30 <= clock[0] - started <= 40


def test_a_dependent_restarting_for_a_while_is_waited_for(run_module, tmp_path, clock):
    """hasura exits while postgres recovers and Docker restarts it: that is not a crash loop yet."""
    answers = {"status --json": [status(hasura="exited")] + [status(hasura="restarting")] * 10 + [status()],
               "restart hasura": (0, "", "")}
    args = {"project_dir": project(tmp_path), "services": ["hasura"], "state": "started", "timeout": 300}
    result, calls = run_module(nself_service.main, args, answers)
    assert result["changed"] and result["services"] == {"hasura": "healthy"}


@pytest.mark.parametrize("state", ["restarting", "paused"])
def test_a_restarting_or_paused_service_is_not_up_so_started_restarts_it(run_module, tmp_path, state):
    answers = {"status --json": [status(api=state), status()], "restart api": (0, "", "")}
    args = {"project_dir": project(tmp_path), "services": ["api"], "state": "started", "wait_healthy": False}
    result, calls = run_module(nself_service.main, args, answers)
    assert result["changed"] and commands(calls) == ["restart api"]


def test_a_named_service_without_a_container_is_created_by_start_not_restart(run_module, tmp_path):
    """`nself restart` would delete .env.runtime and create api from `.env` alone: empty secrets on a prod host."""
    answers = {"status --json": [status(api="stopped", auth="exited"), status(api="stopped", auth="exited"), status()],
               "restart auth": (0, "", ""), "start": (0, "✓ All services started successfully", "")}
    args = {"project_dir": project(tmp_path), "services": ["auth", "api"], "state": "started"}
    result, calls = run_module(nself_service.main, args, answers)
    assert result["changed"] and commands(calls) == ["restart auth", "start"]


def test_a_start_that_would_take_the_stack_down_is_refused_before_acting(run_module, tmp_path):
    answers = {"status --json": [status(api="stopped"), status(api="stopped", hasura="exited")]}
    args = {"project_dir": project(tmp_path), "services": ["api"], "state": "restarted"}
    result, calls = run_module(nself_service.main, args, answers)
    assert result["failed"] and commands(calls) == []
    assert result["msg"].startswith("api has no container, and `nself start` (the only way to create one with the secrets "
                                    "of the env cascade) would first take the whole stack down because hasura has exited")
