"""The runbooks on a host laid out as nFamily's repository commits it (nfamily-backend.md §2.3, §5):
auth and api are custom services and there is no scheduler, nginx routes api.<domain> to Hasura and
has no /auth or /api route on the family domain, and the migrations are db/migrations/NNN_name.*.sql
tracked in _migrations by the repo's runner (`npx tsx db/migrate.ts`). The same playbooks as on the
default layout, with the sandbox inventory less what this layout does not serve."""
import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_shared"))
from runbook_host import PROJECT, STATE, Instance, confirm, assert_failed_with, recap, wait_for  # noqa: E402

NAME = "nfamily-molecule-committed"
SERVICES = ["postgres", "redis", "minio", "hasura", "auth", "api", "nginx"]
DOMAIN = "family.sandbox.test"
PASSWORD = "family-sandbox-pass"  # the sandbox fixture's users (tests/sandbox/nself_sandbox/provision.py)
# The repo runner reads DATABASE_URL; on the host, postgres answers its socket.
RUNNER_ENV = "DATABASE_URL=postgresql:///nself_family?host=/var/run/postgresql&user=postgres"
KEY_TABLES = ["public.users", "public.families", "public.family_members", "public.registered_devices",
              "auth.refresh_tokens", "auth.sessions", "public._migrations"]


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    return Instance(NAME, tmp_path_factory.mktemp("committed"), layout="committed")


@pytest.fixture
def host(box):
    """Every test starts with no fault, every service healthy and no run state."""
    box.run("sandbox-fault", "clear")
    box.sh("rm -rf %s" % STATE)
    if not all_healthy(box):
        box.nself("stop")
        box.nself("start")
    assert wait_for(lambda: all_healthy(box), timeout=120)
    return box


def all_healthy(box):
    return set(box.statuses().values()) == {"healthy"}


def report(box, output):
    run_id = re.search(r" run (\d{8}T\d{6}Z-\d+) on ", output).group(1)
    with open(os.path.join(box.reports, run_id, box.name + ".json"), encoding="utf-8") as handle:
        return json.load(handle)


def runner(box, command):
    """nFamily's own migration runner, as a developer runs it from backend/."""
    return box.run("env", RUNNER_ENV, "npx", "tsx", "db/migrate.ts", command, workdir=PROJECT)


def http(box, method, url, body=None, token=None, vhost=None):
    argv = ["curl", "-sk", "-m", "10", "-o", "/tmp/body", "-w", "%{http_code}", "-X", method, url]
    if vhost:
        argv += ["-H", "Host: " + vhost]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    if token:
        argv += ["-H", "Authorization: Bearer " + token]
    status = int(box.run(*argv).stdout or 0)
    text = box.run("cat", "/tmp/body").stdout
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def login(box, base="http://127.0.0.1:4000", vhost=None):
    status, body = http(box, "POST", base + "/auth/login", {"email": "owner@nself.org", "password": PASSWORD}, vhost=vhost)
    assert status == 200, body
    return body["data"]["tokens"]["access_token"]


def accepted_everywhere(box, token):
    """(auth /auth/me, api, hasura through api.<domain>) verdicts for a token: True when accepted."""
    me = http(box, "GET", "http://127.0.0.1:4000/auth/me", token=token)[0] == 200
    api = http(box, "GET", "http://127.0.0.1:4001/api/audit", token=token)[0] != 401
    status, body = http(box, "POST", "https://127.0.0.1/v1/graphql", {"query": "{ families { id } }"}, token=token,
                        vhost="api." + DOMAIN)
    return me, api, status == 200 and "errors" not in body


def counts(box):
    sql = " UNION ALL ".join("SELECT '%s', count(*) FROM %s" % (t, t) for t in KEY_TABLES)
    return dict((line.split("|")[0], int(line.split("|")[1])) for line in box.psql(sql).splitlines())


def test_the_host_is_laid_out_as_the_repository_commits_it(host):
    assert sorted(host.statuses()) == sorted(SERVICES)
    migrate = host.nself("db", "migrate", "up")
    assert migrate.returncode == 1 and "Migrations directory not found" in migrate.stdout + migrate.stderr
    assert host.psql("SELECT to_regclass('public.schema_migrations') IS NULL, count(*) FROM public._migrations") == "t|13"
    status = runner(host, "status")
    assert status.returncode == 0 and "13/13 applied" in status.stdout, status.stdout + status.stderr
    assert http(host, "GET", "https://127.0.0.1/auth/me")[0] == 404  # no /auth route on the family domain
    assert http(host, "GET", "https://127.0.0.1/healthz", vhost="api." + DOMAIN)[0] == 200  # api.<domain> is Hasura


def test_healthy_host_is_healthy_with_no_change(host):
    proc = host.playbook("api_triage.yml")
    assert proc.returncode == 0 and recap(proc.stdout)["changed"] == 0, proc.stdout[-3000:]
    assert "cause: healthy" in report(host, proc.stdout)["details"]["Diagnosis"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_crash_ends_healthy(host, service):
    host.run("sandbox-fault", "set", "crash", service)
    proc = host.playbook("api_triage.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert wait_for(lambda: all_healthy(host), timeout=60)


def test_misrouted_auth_vhost_is_named_and_rebuilt(host):
    host.run("sandbox-fault", "set", "break_nginx", "route")
    assert http(host, "GET", "https://127.0.0.1/health", vhost="auth." + DOMAIN)[0] == 502
    proc = host.playbook("api_triage.yml", "-e", "triage_allow_disruptive=true", *confirm(NAME, "api_triage.yml"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "cause: nginx_misconfigured" in report(host, proc.stdout)["details"]["Diagnosis"]
    assert http(host, "GET", "https://127.0.0.1/health", vhost="auth." + DOMAIN)[0] == 200 and all_healthy(host)


@pytest.mark.parametrize("mode", ["restart", "full"])
def test_service_recovery_leaves_every_service_healthy(host, mode):
    proc = host.playbook("service_recovery.yml", "-e", "service_recovery_mode=%s" % mode,
                         "-e", json.dumps({"service_recovery_services": ["auth", "api"]}), *confirm(NAME, "service_recovery.yml"))
    assert proc.returncode == 0 and recap(proc.stdout)["changed"] >= 1, proc.stdout[-3000:]
    assert all_healthy(host)


def test_the_runbooks_scheduler_is_refused_as_a_service_the_host_does_not_define(host):
    before = len(host.calls())
    proc = host.playbook("service_recovery.yml", "-e", json.dumps({"service_recovery_services": ["scheduler"]}))
    assert_failed_with(proc, "Unknown service(s): scheduler")
    assert not [argv for argv in host.calls()[before:] if argv[:1] in (["restart"], ["stop"], ["start"])]


def test_backup_change_restore(host):
    backup = host.playbook("db_backup.yml", "-e", "backup_name=committed.dump")
    assert backup.returncode == 0, backup.stdout[-2000:]
    taken = host.read_json(PROJECT + "/backups/committed.dump.manifest.json")
    assert taken["row_counts"]["public._migrations"] == 13 and "public.schema_migrations" not in taken["row_counts"]
    assert taken["migrations"]["_migrations"]["applied"] == 13
    before = counts(host)
    host.psql("DELETE FROM public.family_members WHERE role = 'CHILD_MEMBER'")
    host.psql("UPDATE auth.refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL")
    restore = host.playbook("db_restore.yml", "-e", "restore_source=committed.dump", *confirm(NAME, "db_restore.yml"))
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert counts(host) == before and all_healthy(host)


def test_forced_rotation_works_through_auth_api_and_hasura(host):
    old_token = login(host)
    assert accepted_everywhere(host, old_token) == (True, True, True)
    proc = host.playbook("rotate_jwt.yml", "-e", "rotate_jwt_mode=forced", *confirm(NAME, "rotate_jwt.yml"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert accepted_everywhere(host, old_token) == (False, False, False)
    new_token = login(host, base="https://127.0.0.1", vhost="auth." + DOMAIN)  # through nginx's auth.<domain>
    assert accepted_everywhere(host, new_token) == (True, True, True)


# Last: the rollback drops the 011-013 tables, which the runner then re-creates empty.
def test_rollback_is_what_the_repo_runner_reads_and_re_applies(host):
    proc = host.playbook("migration_rollback.yml", "-e", "migration_rollback_version=010", *confirm(NAME, "migration_rollback.yml"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert host.psql("SELECT count(*), max(name) FROM public._migrations") == "10|010_notifications"
    assert host.psql("SELECT to_regclass('public.registered_devices') IS NULL") == "t"
    status = runner(host, "status")
    assert "10/13 applied" in status.stdout and "[ ] 011_legacy_vault" in status.stdout, status.stdout
    again = host.playbook("migration_rollback.yml", "-e", "migration_rollback_version=010", *confirm(NAME, "migration_rollback.yml"))
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    nself_method = host.playbook("migration_rollback.yml", "-e", "migration_rollback_version=009",
                                 "-e", "migration_rollback_method=nself", *confirm(NAME, "migration_rollback.yml"))
    assert_failed_with(nself_method, "method=nself works only with schema_migrations")
    up = runner(host, "up")  # the down files left nothing behind that the up files would trip on
    assert up.returncode == 0, up.stdout + up.stderr
    assert "13/13 applied" in runner(host, "status").stdout
    assert host.psql("SELECT to_regclass('public.registered_devices') IS NOT NULL") == "t"
    # the runner's new rows come after the old ones by id; the rollback still goes by version
    back = host.playbook("migration_rollback.yml", "-e", "migration_rollback_version=012", *confirm(NAME, "migration_rollback.yml"))
    assert back.returncode == 0, back.stdout[-3000:]
    assert host.psql("SELECT count(*), max(name) FROM public._migrations") == "12|012_search_index"
    down = runner(host, "down")
    assert down.returncode == 0 and "Rolled back 012_search_index" in down.stdout
