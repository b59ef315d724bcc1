"""testinfra checks of the sandbox host after the service report converged (twice)."""
import json

PROJECT = "/opt/nself-family/backend"


def test_nself_stand_in_is_on_path(host):
    assert host.run("nself -v").stdout.strip() == "0.9.9"


def test_every_service_healthy(host):
    status = json.loads(host.check_output("cd %s && nself status --json" % PROJECT), strict=False)
    assert {s["name"]: s["status"] for s in status["services"]} == dict.fromkeys(
        ["postgres", "redis", "minio", "hasura", "auth", "api", "scheduler", "nginx"], "healthy")


def test_env_cascade_and_secrets_file(host):
    for name in (".env.dev", ".env.prod", ".env.secrets", ".env", "docker-compose.yml"):
        assert host.file("%s/%s" % (PROJECT, name)).exists
    assert host.file(PROJECT + "/.env.secrets").mode == 0o600
    assert "ENV=prod" in host.file(PROJECT + "/.env").content_string


def test_migrations_applied(host):
    count = host.check_output("psql -h /var/run/postgresql -U postgres -d nself_family -tAc 'SELECT count(*) FROM schema_migrations'")
    assert count == "13"
    assert len(host.file(PROJECT + "/hasura/migrations/default").listdir()) == 13


def test_ports_listen(host):
    for port in (5432, 6379, 9000, 8080, 4000, 4001, 80, 443):
        assert host.socket("tcp://0.0.0.0:%d" % port).is_listening or host.socket("tcp://127.0.0.1:%d" % port).is_listening


def test_report_changed_nothing(host):
    # the service report is read-only: no backup, no runtime env rewrite, no container restarted
    assert host.file(PROJECT + "/backups").listdir() == []
