import json
import os

import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _nself

# Captured from nself 0.9.9 output shapes (nself-cli.md §1.1, §1.2, §1.7).
STATUS_WITH_NOISE = (
    "\x1b[0;34m╔════╗\x1b[0m\n\r⠋ Checking\r⠙ Checking\r          \r"
    '{"timestamp": "2026-03-15T10:00:00+00:00", "environment": "dev", "services": ['
    '{"name": "postgres", "status": "healthy", "cpu": "0.50%", "memory": "25MiB / 7.6GiB"},'
    '{"name": "minio", "status": "stopped", "cpu": "0%\\t0B", "memory": "0B / 0B"}]}\n'
)
HEALTH_UNESCAPED = (
    '{"timestamp": "x", "healthy": 1, "unhealthy": 1, "total": 2, "services": ['
    '{"service": "postgres", "status": "healthy", "details": "ok", "response_time_ms": 3},'
    '{"service": "auth", "status": "unhealthy", "details": "wget: "GET /health" failed", "response_time_ms": 5}]}'
)


def test_clean_output_strips_ansi_and_spinner_frames():
    text = "\x1b[1;90m2026-03-15 10:00:00\x1b[0m \x1b[1;36m[postgres    ]\x1b[0m ready\n\r⠋ Starting\r✓ Started\r\n"
    assert _nself.clean_output(text) == "2026-03-15 10:00:00 [postgres    ] ready\n✓ Started"


def test_extract_json_skips_leading_noise_and_accepts_tabs():
    data = _nself.extract_json(_nself.clean_output(STATUS_WITH_NOISE))
    assert [s["status"] for s in data["services"]] == ["healthy", "stopped"]
    assert data["services"][1]["cpu"] == "0%\t0B"


def test_extract_json_without_object_raises():
    with pytest.raises(ValueError):
        _nself.extract_json("✗ docker-compose.yml not found")


def test_parse_health_valid_document():
    data, warning = _nself.parse_health('{"healthy": 4, "unhealthy": 0, "total": 4, "services": []}')
    assert warning is None and data["unhealthy"] == 0


def test_parse_health_falls_back_on_unescaped_details():
    data, warning = _nself.parse_health(HEALTH_UNESCAPED)
    assert warning and data["unhealthy"] == 1 and data["healthy"] == 1
    assert [(s["service"], s["status"]) for s in data["services"]] == [("postgres", "healthy"), ("auth", "unhealthy")]


@pytest.mark.parametrize("text,expected", [("0.9.9\n", "0.9.9"), ("nself version 0.9.8", "0.9.8"),
                                           ("\x1b[1mv0.9.9-rc1\x1b[0m", "0.9.9-rc1")])
def test_parse_version(text, expected):
    assert _nself.parse_version(text) == expected


def test_version_tuple_orders_releases():
    assert _nself.version_tuple("0.9.9-rc1") == (0, 9, 9)
    assert _nself.version_tuple("0.10.0") > _nself.version_tuple("0.9.9")


class FakeModule:
    def __init__(self, answers, binary="/usr/local/bin/nself"):
        self.answers = answers
        self.binary = binary
        self.calls = []

    def get_bin_path(self, name, opt_dirs=None):
        return self.binary

    def run_command(self, cmd, **kwargs):
        self.calls.append((cmd, kwargs))
        return self.answers[" ".join(cmd[1:])]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    return str(tmp_path)


def test_run_uses_argv_cwd_and_explicit_stdin(project):
    module = FakeModule({"db migrate down": (0, "\x1b[0;32m✓\x1b[0m Rolled back\n", "")})
    cli = _nself.NselfCLI(module, project)
    result = cli.run(["db", "migrate", "down"], answer="y")
    cmd, kwargs = module.calls[0]
    assert cmd == ["/usr/local/bin/nself", "db", "migrate", "down"]
    assert kwargs["cwd"] == project and kwargs["data"] == "y" and kwargs["check_rc"] is False
    assert kwargs["environ_update"]["NO_COLOR"] == "1"
    assert result.stdout == "✓ Rolled back"
    assert cli.commands == [{"cmd": cmd, "rc": 0}]


def test_run_without_answer_gives_no_data(project):
    module = FakeModule({"status --json": (0, '{"services": []}', "")})
    _nself.NselfCLI(module, project).run(["status", "--json"])
    assert module.calls[0][1]["data"] is None
    assert os.readlink("/proc/self/fd/0") == "/dev/null"


def test_environment_is_passed_as_nself_env(project):
    module = FakeModule({"-v": (0, "0.9.9\n", "")})
    _nself.NselfCLI(module, project, environment="prod").version()
    assert module.calls[0][1]["environ_update"]["NSELF_ENV"] == "prod"


def test_old_nself_is_refused(project):
    module = FakeModule({"-v": (0, "0.9.7\n", "")})
    with pytest.raises(_nself.NselfError, match="older than 0.9.8"):
        _nself.NselfCLI(module, project).version()


def test_status_without_json_is_an_error_even_with_rc_0(project):
    module = FakeModule({"status --json": (0, "→ Services (3/8 running)", "")})
    with pytest.raises(_nself.NselfError, match="no service list"):
        _nself.NselfCLI(module, project).status()


def test_missing_project_dir_is_a_clear_error(tmp_path):
    with pytest.raises(_nself.NselfError, match="does not exist"):
        _nself.NselfCLI(FakeModule({}), str(tmp_path / "nope"))


def test_directory_without_project_files_is_refused(tmp_path):
    with pytest.raises(_nself.NselfError, match="not an nself project"):
        _nself.NselfCLI(FakeModule({}), str(tmp_path))


def test_nself_absent_is_a_clear_error(project):
    with pytest.raises(_nself.NselfError, match="not found on PATH"):
        _nself.NselfCLI(FakeModule({}, binary=None), project)


def test_doctor_collects_findings_from_both_streams(project):
    module = FakeModule({"doctor": (1, "\x1b[0;31m✗\x1b[0m Container nself-family_auth is exited\n", "⚠ weak secret\n")})
    doctor = _nself.NselfCLI(module, project).doctor()
    assert doctor["ok"] is False and doctor["findings"] == ["Container nself-family_auth is exited", "weak secret"]


# nself 0.9.9 prints status --json with printf: a raw tab, and docker's error text unescaped (nself-cli.md §1.1).
STATUS_MALFORMED = (
    '{\n  "timestamp": "2026-11-30T06:25:15+00:00",\n  "environment": "prod",\n  "services": [\n'
    '    {\n      "name": "postgres",\n      "status": "healthy",\n'
    '      "cpu": "Error: No such container: "nself-family_stats" 0.12%",\n      "memory": "27MiB / 7GiB"\n    },\n'
    '    {\n      "name": "api",\n      "status": "exited",\n      "cpu": "0%\t0B",\n      "memory": "0B / 0B"\n    }\n  ]\n}\n'
)


def test_parse_status_reads_a_raw_tab_as_valid():
    data, warning = _nself.parse_status(STATUS_MALFORMED.replace('Error: No such container: "nself-family_stats" ', ""))
    assert warning is None and data["services"][1]["cpu"] == "0%\t0B"


def test_parse_status_falls_back_on_unescaped_text_and_says_so():
    data, warning = _nself.parse_status(STATUS_MALFORMED)
    assert [(s["name"], s["status"]) for s in data["services"]] == [("postgres", "healthy"), ("api", "exited")]
    assert data["environment"] == "prod"
    assert warning.startswith("nself status --json printed invalid JSON (") and "name/status pairs" in warning


def test_parse_status_without_any_service_raises():
    with pytest.raises(ValueError):
        _nself.parse_status('{"timestamp": "x", "environment": "prod", "services": [{"name": oops}]}')


# nself says `unhealthy` for a stopped container that has a healthcheck (Docker marks its health so when it
# stops); docker inspect tells the state. Shapes of `docker inspect` (a list, even with a missing name).
STATUS_UNHEALTHY = ('{"environment": "dev", "services": [{"name": "postgres", "status": "healthy"},'
                    '{"name": "auth", "status": "unhealthy"}, {"name": "minio", "status": "unhealthy"},'
                    '{"name": "my-api", "status": "unhealthy"}]}')
INSPECT = json.dumps([
    {"Name": "/fam_auth", "RestartCount": 7, "State": {"Status": "restarting", "ExitCode": 1}},
    {"Name": "/fam_minio", "RestartCount": 0, "State": {"Status": "running", "ExitCode": 0}},
    {"Name": "/fam_my_api", "RestartCount": 0, "State": {"Status": "exited", "ExitCode": 137}}])


@pytest.fixture
def named_project(project):
    with open(os.path.join(project, ".env"), "w") as handle:
        handle.write("PROJECT_NAME=fam\n")
    return project


def test_status_asks_docker_about_unhealthy_services_and_reports_their_state(named_project):
    module = FakeModule({"status --json": (0, STATUS_UNHEALTHY, ""),
                         "inspect --type=container fam_auth fam_minio fam_my_api fam_postgres": (0, INSPECT, "")})
    cli = _nself.NselfCLI(module, named_project)
    services = dict((s["name"], s) for s in cli.status()[1])
    assert services["auth"] == {"name": "auth", "status": "restarting", "reported_status": "unhealthy",
                                "state": "restarting", "restart_count": 7, "exit_code": 1}
    assert services["my-api"]["status"] == "exited" and services["my-api"]["exit_code"] == 137
    assert services["minio"] == {"name": "minio", "status": "unhealthy"}  # running: truly unhealthy
    assert services["postgres"] == {"name": "postgres", "status": "healthy"}
    assert cli.warnings == []


def test_status_of_a_healthy_stack_does_not_run_docker(named_project):
    module = FakeModule({"status --json": (0, '{"services": [{"name": "postgres", "status": "healthy"},'
                                              '{"name": "scheduler", "status": "exited"}]}', "")})
    _nself.NselfCLI(module, named_project).status()
    assert [call[0][1:] for call in module.calls] == [["status", "--json"]]


def test_status_keeps_nself_word_for_a_container_docker_does_not_know(named_project):
    module = FakeModule({"status --json": (0, '{"services": [{"name": "auth", "status": "unhealthy"}]}', ""),
                         "inspect --type=container fam_auth": (1, "[]\n", "Error: No such object: fam_auth\n")})
    cli = _nself.NselfCLI(module, named_project)
    assert cli.status()[1] == [{"name": "auth", "status": "unhealthy"}]
    assert cli.commands[-1]["rc"] == 1 and cli.warnings == [
        "Docker has no container fam_auth, so whether it runs is unknown (is PROJECT_NAME in the env files the one nself uses?)"]


def test_status_calls_a_container_removed_since_nself_looked_stopped(named_project):
    """Docker knows a container nself saw running (asked about with the suspects) but no longer this one (a
    `docker compose down` in between): it does not run, and `stopped` sends nself_service to `nself start`,
    never `nself restart`."""
    postgres = json.dumps([{"Name": "/fam_postgres", "RestartCount": 0, "State": {"Status": "running", "ExitCode": 0}}])
    module = FakeModule({"status --json": (0, '{"services": [{"name": "postgres", "status": "healthy"},'
                                              '{"name": "auth", "status": "unhealthy"}]}', ""),
                         "inspect --type=container fam_auth fam_postgres": (1, postgres, "Error: No such object: fam_auth\n")})
    cli = _nself.NselfCLI(module, named_project)
    services = dict((s["name"], s) for s in cli.status()[1])
    assert services["auth"] == {"name": "auth", "status": "stopped", "reported_status": "unhealthy"}
    assert services["postgres"] == {"name": "postgres", "status": "healthy"} and cli.warnings == []


def test_status_keeps_nself_word_when_docker_knows_no_container_of_the_project(named_project):
    """Neither the suspect nor the running reference: the prefix is wrong, not the container gone."""
    module = FakeModule({"status --json": (0, '{"services": [{"name": "postgres", "status": "healthy"},'
                                              '{"name": "auth", "status": "unhealthy"}]}', ""),
                         "inspect --type=container fam_auth fam_postgres": (1, "[]\n", "Error: No such object: fam_auth\n")})
    cli = _nself.NselfCLI(module, named_project)
    assert dict((s["name"], s["status"]) for s in cli.status()[1]) == {"postgres": "healthy", "auth": "unhealthy"}
    assert cli.warnings and cli.warnings[0].startswith("Docker has no container fam_auth")


@pytest.mark.parametrize("answer,warning", [
    (None, "docker is not on PATH, so auth may be stopped"),
    ((1, "", "permission denied while trying to connect to the Docker daemon socket"), "permission denied"),
])
def test_status_without_docker_keeps_nself_word_and_says_why(named_project, answer, warning):
    class NoDocker(FakeModule):
        def get_bin_path(self, name, opt_dirs=None):
            return None if name == "docker" and answer is None else self.binary

    answers = {"status --json": (0, '{"services": [{"name": "auth", "status": "unhealthy"}]}', "")}
    if answer:
        answers["inspect --type=container fam_auth"] = answer
    cli = _nself.NselfCLI(NoDocker(answers), named_project)
    assert cli.status()[1] == [{"name": "auth", "status": "unhealthy"}]
    assert len(cli.warnings) == 1 and warning in cli.warnings[0]


def test_parse_container_states_names_without_the_slash():
    assert _nself.parse_container_states(INSPECT)["fam_my_api"] == {"state": "exited", "restart_count": 0, "exit_code": 137}
    assert _nself.parse_container_states("[]\n") == {}
    with pytest.raises(ValueError):
        _nself.parse_container_states("")


def test_a_log_line_loses_nselfs_prefix_and_its_secrets():
    line = "2026-11-27T03:05:00Z [postgres   ] FATAL: connection to postgres://app:hunter2-pw@db/x refused"
    message = _nself.log_message(line)
    assert message.startswith("FATAL: connection to postgres://app:") and "hunter2-pw" not in message
    assert _nself.log_message("no prefix here") == "no prefix here"
