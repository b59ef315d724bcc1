"""The nself stand-in honours every point of "Interface a test double must honour" (nself-cli.md).

Each test is named after the point it proves. They run against a live sandbox host.
"""
import json
import re

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STATUS_VALUES = {"healthy", "starting", "unhealthy", "stopped", "exited", "created", "restarting", "paused", "dead"}
HEALTH_VALUES = {"healthy", "running", "starting", "unhealthy", "stopped", "not_found"}
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[(.{12})\] .+$")


def plain(text):
    return ANSI.sub("", text)


# 1. Invocation context
def test_01_context_runs_in_cwd_and_reads_env_from_dot_env(sandbox):
    assert json.loads(sandbox.nself("status", "--json").stdout, strict=False)["environment"] == "prod"
    sandbox.sh("rm -rf /tmp/p1 && mkdir -p /tmp/p1 && printf 'ENV=dev\\n' > /tmp/p1/.env")
    for command in (["status", "--json"], ["start"], ["stop"], ["restart", "auth"], ["logs", "auth"]):
        proc = sandbox.nself(*command, cwd="/tmp/p1")
        assert proc.returncode == 1, command
        assert "docker-compose.yml" in proc.stderr, command
    # PROJECT_NAME falls back to the cwd basename and is appended to .env (nself's side effect)
    assert "PROJECT_NAME=p1" in sandbox.sh("cat /tmp/p1/.env").stdout
    # every call is logged with its argv, cwd and whether stdin was a terminal
    last = json.loads(sandbox.sh("tail -1 /var/lib/nself-sandbox/calls.jsonl").stdout)
    assert last["argv"] == ["logs", "auth"] and last["cwd"] == "/tmp/p1" and last["stdin_tty"] is False


def test_01_environment_selection_order_and_the_files_beating_the_process_env(sandbox):
    """TARGET_ENV > NSELF_ENV > ENV= of .env > $ENV > dev; a key in the cascade beats the same key exported."""
    sandbox.sh("rm -rf /tmp/p2 && mkdir -p /tmp/p2 && cd /tmp/p2 && printf 'ENV=staging\\nPROJECT_NAME=p2\\n' > .env && "
               "printf 'services:\\n  postgres: {image: \"postgres:15\"}\\n' > docker-compose.yml && "
               "printf 'BASE_DOMAIN=dev.example\\n' > .env.dev && printf 'BASE_DOMAIN=prod.example\\n' > .env.prod")

    def environment(*assignments):
        proc = sandbox.run("env", *assignments, "nself", "status", "--json", cwd="/tmp/p2")
        return json.loads(proc.stdout, strict=False)["environment"]

    assert environment() == "staging"  # .env's ENV= wins over nothing
    assert environment("ENV=prod") == "staging"  # a shell ENV is ignored when .env says ENV=
    assert environment("NSELF_ENV=production") == "staging"  # status reports ENV= of the cascade, not the selection
    urls = sandbox.run("env", "NSELF_ENV=prod", "BASE_DOMAIN=shell.example", "nself", "urls", "--json", cwd="/tmp/p2")
    assert json.loads(urls.stdout)["base_domain"] == "prod.example"  # NSELF_ENV picked prod; the file beat the shell
    urls = sandbox.run("env", "TARGET_ENV=dev", "NSELF_ENV=prod", "nself", "urls", "--json", cwd="/tmp/p2")
    assert json.loads(urls.stdout)["base_domain"] == "dev.example"  # TARGET_ENV beats NSELF_ENV
    urls = sandbox.run("env", "ENV=prod", "nself", "urls", "--json", cwd="/tmp/p2")
    assert json.loads(urls.stdout)["base_domain"] == "dev.example"  # .env's ENV=staging beat $ENV: no .env.prod read


def test_01_the_process_env_then_dev_select_the_cascade_when_dot_env_says_nothing(sandbox):
    """$ENV picks the environment when no ENV= is in .env; without either it is dev, whose cascade
    alone reads .env.local. status --json reports ${ENV:-local}."""
    sandbox.sh("rm -rf /tmp/p3 && mkdir -p /tmp/p3 && cd /tmp/p3 && printf 'PROJECT_NAME=p3\\n' > .env && "
               "printf 'services:\\n  postgres: {image: \"postgres:15\"}\\n' > docker-compose.yml && "
               "printf 'BASE_DOMAIN=dev.example\\n' > .env.dev && printf 'BASE_DOMAIN=prod.example\\n' > .env.prod && "
               "printf 'BASE_DOMAIN=local.example\\n' > .env.local")

    def run(*assignments):
        urls = sandbox.run("env", "-u", "ENV", *assignments, "nself", "urls", "--json", cwd="/tmp/p3")
        status = sandbox.run("env", "-u", "ENV", *assignments, "nself", "status", "--json", cwd="/tmp/p3")
        return json.loads(urls.stdout)["base_domain"], json.loads(status.stdout, strict=False)["environment"]

    assert run("ENV=production") == ("prod.example", "production")
    assert run() == ("local.example", "local")


# 2. Version probe
def test_02_version(sandbox):
    for args in (["-v"], ["version", "--short"]):
        proc = sandbox.nself(*args)
        assert (proc.returncode, proc.stdout) == (0, "0.9.9\n")
    assert "nself db migrate down       Rollback last migration" in sandbox.nself("db", "help").stdout


def test_02_the_release_tags_report_0_9_8_and_only_v0_9_8_has_its_db_command(sandbox):
    try:
        for tag, help_line in (("v0.9.9", "Rollback last migration"), ("v0.9.8", "migrate down [n]        Rollback n migrations")):
            sandbox.fault("clear", "nself_tag")
            sandbox.fault("set", "nself_tag", tag)
            assert sandbox.nself("-v").stdout == "0.9.8\n"
            assert json.loads(sandbox.nself("version", "--json").stdout)["version"] == "0.9.8"
            assert help_line in sandbox.nself("db", "help").stdout
    finally:
        sandbox.fault("clear", "nself_tag")


# 3. status --json
def test_03_status_json_shape_and_rc(healthy):
    proc = healthy.nself("status", "--json")
    data = json.loads(proc.stdout, strict=False)
    assert proc.returncode == 0 and set(data) == {"timestamp", "environment", "services"}
    assert [s["name"] for s in data["services"]][:4] == ["postgres", "redis", "minio", "hasura"]
    for service in data["services"]:
        assert set(service) == {"name", "status", "cpu", "memory"} and service["status"] in STATUS_VALUES
    healthy.fault("set", "kill", "scheduler")
    proc = healthy.nself("status", "--json")
    assert proc.returncode == 0
    scheduler = {s["name"]: s for s in json.loads(proc.stdout, strict=False)["services"]}["scheduler"]
    assert scheduler["status"] == "exited" and scheduler["cpu"] == "0%\t0B"  # the raw tab 0.9.9 prints
    detail = healthy.nself("status", "--json", "auth")
    assert detail.returncode == 0 and not detail.stdout.lstrip().startswith("{")
    missing = healthy.nself("status", "nosuch")
    assert missing.returncode == 1 and "✗ Service 'nosuch' not found" in plain(missing.stderr)
    assert healthy.nself("status", "-x").returncode == 1


def test_03_status_reads_health_before_state_as_docker_keeps_it(healthy):
    """status.sh's check_service_health reads State.Health.Status first, and moby marks it unhealthy when
    the container stops; `nself health` skips what `docker ps` does not list (nself-cli.md §1.2)."""
    healthy.fault("set", "kill", "auth")
    assert healthy.status()["auth"] == "unhealthy" and healthy.states()["auth"] == "exited"
    (auth,) = [s for s in json.loads(healthy.nself("health", "--json").stdout, strict=False)["services"] if s["service"] == "auth"]
    assert auth["status"] == "not_found"
    (document,) = json.loads(healthy.run("docker", "inspect", "nself-family_auth").stdout)
    assert document["State"]["Health"]["Status"] == "unhealthy" and document["State"]["ExitCode"] == 137
    missing = healthy.run("docker", "inspect", "nself-family_nosuch")
    assert missing.returncode == 1 and json.loads(missing.stdout) == [] and "No such object" in missing.stderr


def test_03_status_text_exits_1_on_drift(healthy):
    assert healthy.nself("status").returncode == 0
    healthy.sh("touch .env")
    assert "Configuration Drift Detected" in plain(healthy.nself("status").stdout)
    assert healthy.nself("status").returncode == 1
    healthy.run("sandbox-fault", "bug", "status_drift_exit_1", "off", check=True)
    try:
        assert healthy.nself("status").returncode == 0
    finally:
        healthy.run("sandbox-fault", "bug", "status_drift_exit_1", "on", check=True)
        healthy.sh("touch -d '2020-01-01' .env")


# 4. health --json
def test_04_health_json_and_rc(healthy):
    proc = healthy.nself("health", "--json")
    data = json.loads(proc.stdout)
    assert proc.returncode == 0 and {"timestamp", "healthy", "unhealthy", "total", "services"} <= set(data)
    assert [e["service"] for e in data["services"]] == ["postgres", "hasura", "auth", "nginx", "redis", "minio"]
    assert all(set(e) == {"service", "status", "details", "response_time_ms"} and e["status"] in HEALTH_VALUES
               for e in data["services"])
    healthy.fault("set", "kill", "auth")
    proc = healthy.nself("health", "--json")
    data = json.loads(proc.stdout)
    assert proc.returncode == 1 and data["unhealthy"] == 1
    assert {e["service"]: e["status"] for e in data["services"]}["auth"] == "not_found"  # `docker ps` does not list an exited container
    one = healthy.nself("health", "service", "auth", "--json")
    assert one.returncode == 1 and json.loads(one.stdout)["status"] == "not_found"
    ok = healthy.nself("health", "service", "postgres", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["status"] == "healthy"
    assert "history.jsonl" in healthy.sh("ls .nself/health").stdout


# 5. logs
def test_05_logs_format_and_errors(sandbox):
    proc = sandbox.nself("logs", "postgres", "--tail", "5")
    assert proc.returncode == 0 and "\x1b[" in proc.stdout
    lines = [line for line in plain(proc.stdout).splitlines() if LOG_LINE.match(line)]
    assert 0 < len(lines) <= 5 and all(LOG_LINE.match(line).group(1) == "postgres    " for line in lines)
    for option in ("-n", "--tail", "--lines"):
        proc = sandbox.nself("logs", option, "2", "postgres")
        assert proc.returncode == 0 and 0 < len([l for l in plain(proc.stdout).splitlines() if LOG_LINE.match(l)]) <= 2
        assert sandbox.nself("logs", "postgres", option, "x").returncode == 1
        assert sandbox.nself("logs", "postgres", option).returncode == 1  # no count
    unknown = sandbox.nself("logs", "nosuch")
    assert unknown.returncode == 1 and "Service 'nosuch' not found" in plain(unknown.stderr)
    assert sandbox.nself("logs", "auth", "--tail", "ten").returncode == 1


# 6. start
def test_06_start_ignores_services_and_writes_runtime_env(healthy):
    healthy.fault("set", "kill", "api")
    proc = healthy.nself("start", "api", "--timeout", "60", "--skip-port-check")
    assert proc.returncode == 0 and "All services started successfully" in plain(proc.stdout)
    assert healthy.wait_healthy()["api"] == "healthy"
    assert healthy.sh("stat -c %a .env.runtime").stdout.strip() == "600"
    healthy.fault("set", "start_fail")
    healthy.nself("stop")
    failed = healthy.nself("start")
    assert failed.returncode == 1
    assert healthy.nself("start", "--timeout", "x").returncode == 1


def test_06_start_reports_success_when_health_timeout_passes(healthy):
    healthy.fault("set", "refuse", "hasura")
    healthy.nself("stop")
    proc = healthy.nself("start", "--timeout", "5")
    assert proc.returncode == 0  # 0.9.9: health threshold missed, still rc 0
    assert healthy.wait_state("hasura", "restarting") == "restarting"  # exits on every start; its policy retries


# 7. stop
def test_07_stop(healthy):
    one = healthy.nself("stop", "scheduler")
    assert one.returncode == 0 and healthy.status()["scheduler"] == "exited"
    bad = healthy.nself("stop", "nosuch")
    assert bad.returncode == 0 and "Failed to stop nosuch" in plain(bad.stderr)
    assert healthy.nself("stop", "-x").returncode == 1
    assert healthy.nself("stop").returncode == 0
    assert set(healthy.status().values()) == {"stopped"}  # down removes the containers
    again = healthy.nself("stop")
    assert again.returncode == 0 and "No services are currently running" in plain(again.stdout)


# 8. restart
def test_08_restart(healthy):
    proc = healthy.nself("restart", "auth", "nosuch", "--skip-health-checks")
    assert proc.returncode == 0
    assert "Failed to restart nosuch" in plain(proc.stderr) and "Failed to restart --skip-health-checks" in plain(proc.stderr)
    assert not healthy.sh("test -e .env.runtime", check=False).returncode == 0
    every = healthy.nself("restart", "--all")
    assert every.returncode == 127 and "cmd_start: command not found" in every.stderr
    healthy.wait_healthy()
    healthy.run("sandbox-fault", "bug", "restart_exit_127", "off", check=True)
    try:
        assert healthy.nself("restart", "--all").returncode == 0
    finally:
        healthy.run("sandbox-fault", "bug", "restart_exit_127", "on", check=True)


def test_08_restart_keeps_container_env_until_recreated(healthy):
    """compose restart reuses the container's env; a changed .env only lands on recreate."""
    before = healthy.sh("cat /var/lib/nself-sandbox/containers/nself-family_auth.json").stdout
    healthy.sh("cp .env.secrets /tmp/secrets.bak && sed -i 's/^BCRYPT_ROUNDS=.*//' .env.secrets && echo BCRYPT_ROUNDS=11 >> .env.secrets")
    try:
        healthy.nself("restart", "auth")
        after_restart = json.loads(healthy.sh("cat /var/lib/nself-sandbox/containers/nself-family_auth.json").stdout)
        assert after_restart["env"]["BCRYPT_ROUNDS"] == json.loads(before)["env"]["BCRYPT_ROUNDS"] == "10"
        healthy.nself("start")
        recreated = json.loads(healthy.sh("cat /var/lib/nself-sandbox/containers/nself-family_auth.json").stdout)
        assert recreated["env"]["BCRYPT_ROUNDS"] == "11"
    finally:
        healthy.sh("cp /tmp/secrets.bak .env.secrets")
        healthy.nself("start")


# 9. build
def test_09_build_and_check(healthy):
    healthy.sh("touch -d '2020-01-01' docker-compose.yml && rm -f docker-compose.yml.check")
    proc = healthy.nself("build")
    assert proc.returncode == 0 and "Services (8)" in plain(proc.stdout)
    assert healthy.sh("stat -c %a docker-compose.yml").stdout.strip() == "600"
    check = healthy.nself("build", "--check")  # reads only .env, which holds no secrets on this host
    assert check.returncode == 1 and "Error:" in plain(check.stderr)
    healthy.sh("cp .env /tmp/env.bak")
    try:
        for password, secret, rc in (("0123456789abcde", "0123456789abcdef0123456789abcdef", 1),
                                     ("0123456789abcdef", "0123456789abcdef0123456789abcde", 1),
                                     ("0123456789abcdef", "0123456789abcdef0123456789abcdef", 0)):  # 16 and 32 pass
            healthy.sh("cp /tmp/env.bak .env && printf 'POSTGRES_PASSWORD=%s\\nHASURA_GRAPHQL_ADMIN_SECRET=%s\\n' %s %s >> .env"
                       % ("%s", "%s", password, secret))
            checked = healthy.nself("build", "--check")
            assert checked.returncode == rc, (password, secret, checked.stderr)
        assert "Security check passed — configuration is valid" in plain(checked.stdout)
    finally:
        healthy.sh("cp /tmp/env.bak .env && touch -d '2020-01-01' .env")
    healthy.fault("set", "build_compose_fail")
    broken = healthy.nself("build")
    assert broken.returncode == 0 and "Failed to generate docker-compose.yml" in plain(broken.stderr)
    assert healthy.nself("build", "--bogus").returncode == 1


# 10. doctor and urls
def test_10_doctor_and_urls(healthy):
    assert healthy.nself("doctor").returncode == 0
    healthy.fault("set", "doctor_fail")
    assert healthy.nself("doctor").returncode == 1
    urls = healthy.nself("urls", "--json")
    assert urls.returncode == 0
    assert json.loads(urls.stdout) == {"base_domain": "family.sandbox.test", "protocol": "https",
                                       "routes": {"application": "https://family.sandbox.test"}}


# 11. db backup
def test_11_db_backup(healthy):
    proc = healthy.nself("db", "backup", "t11.sql")
    assert proc.returncode == 0 and "✓ Backup created: backups/t11.sql" in plain(proc.stdout)
    assert "CREATE TABLE public.registered_devices" in healthy.sh("cat backups/t11.sql").stdout
    noname = healthy.nself("db", "backup")
    assert noname.returncode == 1 and "$1: unbound variable" in noname.stderr
    listing = healthy.nself("db", "backup", "list")
    assert "t11.sql" in listing.stdout
    healthy.fault("set", "stop_postgres")
    down = healthy.nself("db", "backup", "t11b.sql")
    assert down.returncode == 1 and "Database container not running: nself-family_postgres" in plain(down.stderr)


# 12. db restore
def test_12_db_restore(healthy):
    healthy.nself("db", "backup", "t12.sql")
    assert healthy.nself("db", "restore", stdin="").returncode == 1
    nofile = healthy.nself("db", "restore", stdin="SELECT 1;")
    assert nofile.returncode == 1 and "Backup file required" in plain(nofile.stderr)
    missing = healthy.nself("db", "restore", "nope.sql", stdin="")
    assert missing.returncode == 1 and "Backup file not found" in plain(missing.stderr)
    healthy.psql("CREATE TABLE public.t12_marker (id int)")
    assert healthy.nself("db", "restore", "t12.sql", stdin="").returncode == 1  # prod prompt, EOF
    cancelled = healthy.nself("db", "restore", "t12.sql", stdin="no\n")
    assert cancelled.returncode == 0 and "Restore cancelled" in cancelled.stdout
    done = healthy.nself("db", "restore", "t12.sql", stdin="yes\n")
    assert done.returncode == 0 and "✓ Database restored" in plain(done.stdout)
    # plain SQL into the existing database: the marker table survives, errors were ignored
    assert healthy.psql("SELECT count(*) FROM information_schema.tables WHERE table_name = 't12_marker'") == "1"
    healthy.psql("DROP TABLE public.t12_marker")
    # db reset always prompts; EOF changes nothing, and prod refuses even after 'yes'
    assert healthy.nself("db", "reset", stdin="").returncode == 1
    assert healthy.nself("db", "reset", stdin="yes\n").returncode == 1
    assert healthy.psql("SELECT count(*) FROM public.families") == "2"


# 13. db migrate
def test_13_db_migrate(healthy):
    def versions():
        return healthy.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations").split(",")

    assert len(versions()) == 13
    healthy.sh("pg_dump -h /var/run/postgresql -U postgres --data-only -t registered_devices -t device_pairing_codes "
               "nself_family > /tmp/devices.sql")
    assert healthy.nself("db", "migrate", "down", stdin="").returncode == 1  # EOF at the prompt
    cancelled = healthy.nself("db", "migrate", "down", stdin="n\n")
    assert cancelled.returncode == 0 and "Cancelled" in cancelled.stdout and len(versions()) == 13
    down = healthy.nself("db", "migrate", "down", "--to", "1770000000010", stdin="y\n")
    assert down.returncode == 0 and len(versions()) == 12  # --to ignored: exactly one
    assert healthy.psql("SELECT to_regclass('public.registered_devices') IS NULL") == "t"
    status = plain(healthy.nself("db", "migrate", "status").stdout)
    assert "13 pending" in status  # the 0.9.9 status bug
    up = healthy.nself("db", "migrate", "up", "--to", "x")
    assert up.returncode == 0 and "1770000000013_stream_gateway" in plain(up.stdout) and len(versions()) == 13
    # the table is back but empty: the fixture's devices are gone until a restore
    assert healthy.psql("SELECT count(*) FROM registered_devices") == "0"
    healthy.sh("psql -q -h /var/run/postgresql -U postgres -d nself_family -v ON_ERROR_STOP=1 -f /tmp/devices.sql")


def test_13_db_migrate_create_and_the_edges_of_down(healthy):
    directory = "hasura/migrations/default"
    assert healthy.nself("db", "migrate", "create").returncode == 1  # a name is required
    created = healthy.nself("db", "migrate", "create", "t13_probe")
    try:
        assert created.returncode == 0
        made = healthy.sh("ls -d %s/*_t13_probe" % directory).stdout.split()
        assert len(made) == 1 and healthy.sh("ls %s" % made[0]).stdout.split() == ["down.sql", "up.sql"]
        assert healthy.nself("db", "migrate", "up").returncode == 0  # applies the empty probe
        healthy.sh("rm %s/down.sql" % made[0])
        missing = healthy.nself("db", "migrate", "down", stdin="y\n")
        assert missing.returncode == 1  # the highest version has no down.sql
        healthy.psql("DELETE FROM schema_migrations WHERE name LIKE '%t13_probe'")
    finally:
        healthy.sh("rm -rf %s/*_t13_probe" % directory)
    healthy.sh("mv %s /tmp/t13-migrations" % directory)
    try:
        absent = healthy.nself("db", "migrate", "up")
        assert absent.returncode == 1 and "Migrations directory not found" in plain(absent.stderr)
    finally:
        healthy.sh("mv /tmp/t13-migrations %s" % directory)
    assert healthy.psql("SELECT count(*) FROM schema_migrations") == "13"


# 14. missing db subcommands
@pytest.mark.parametrize("sub", ["console", "dump", "frobnicate"])
def test_14_db_console_and_dump_do_not_exist(sandbox, sub):
    proc = sandbox.nself("db", sub)
    assert proc.returncode == 1 and "Unknown subcommand" in plain(proc.stderr) and "migrate" in proc.stdout


# 15. deprecated backup
def test_15_backup_create_list_restore(healthy):
    proc = healthy.nself("backup", "create", "database", "t15.tar.gz")
    assert proc.returncode == 0 and "deprecated" in proc.stderr
    members = healthy.sh("tar -tzf backups/t15.tar.gz").stdout
    assert "./database/postgres_dump.sql" in members
    assert "t15.tar.gz" in healthy.nself("backup", "list").stdout
    assert healthy.nself("backup", "restore", "t15.tar.gz", stdin="").returncode == 1
    healthy.sh("mkdir -p /tmp/noenv && touch /tmp/noenv/docker-compose.yml")
    assert healthy.nself("backup", "list", cwd="/tmp/noenv").returncode == 1


# 16. output hygiene
def test_16_output_hygiene(healthy):
    raw = healthy.nself_raw("status")
    assert b"\x1b[" in raw and b"\r" in raw
    err = healthy.nself("restart", "nosuch")
    assert "✗" in err.stderr and "✗" not in err.stdout
    assert "✓" in healthy.nself("db", "backup", "t16.sql").stdout
