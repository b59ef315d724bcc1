"""The sandbox's services behave as nfamily-backend.md describes, and each fault switch bites."""
import json
import re
import time

import pytest

PASSWORD = "family-sandbox-pass"  # tests/sandbox/nself_sandbox/provision.py USER_PASSWORD
DEMO_FAMILY = "00000000-0000-0000-0000-000000000001"
OTHER_FAMILY = "20000000-0000-4000-8000-000000000002"


def http(box, method, url, body=None, token=None, headers=None, insecure=False):
    """curl from inside the host; returns (status, parsed JSON or text)."""
    argv = ["curl", "-s", "-m", "10", "-o", "/tmp/body", "-w", "%{http_code}", "-X", method, url]
    if insecure:
        argv.insert(1, "-k")
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    if token:
        argv += ["-H", "Authorization: Bearer %s" % token]
    for key, value in (headers or {}).items():
        argv += ["-H", "%s: %s" % (key, value)]
    status = int(box.run(*argv).stdout or 0)
    text = box.run("cat", "/tmp/body").stdout
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def login(box, email="owner@nself.org", password=PASSWORD, base="http://127.0.0.1:4000", insecure=False):
    return http(box, "POST", base + "/auth/login", {"email": email, "password": password}, insecure=insecure)


def test_fixture_counts(sandbox):
    assert sandbox.psql("SELECT count(*) FROM schema_migrations") == "13"
    assert sandbox.psql("SELECT count(*) FROM public.families") == "2"
    roles = sandbox.psql("SELECT string_agg(role::text, ',' ORDER BY role) FROM public.family_members WHERE family_id = '%s'"
                         % DEMO_FAMILY)
    assert roles == "OWNER,ADMIN,ADULT_MEMBER,ADULT_MEMBER,YOUTH_MEMBER,CHILD_MEMBER"
    states = sandbox.psql("SELECT string_agg(DISTINCT CASE WHEN is_revoked THEN 'revoked' WHEN credential IS NOT NULL THEN "
                          "'enrolled' ELSE 'pending' END, ',') FROM registered_devices WHERE family_id = '%s'" % DEMO_FAMILY)
    assert states == "enrolled,pending,revoked"
    assert sandbox.psql("SELECT count(*) FROM registered_devices WHERE family_id = '%s'" % OTHER_FAMILY) == "1"
    assert sandbox.psql("SELECT length(credential) FROM registered_devices WHERE credential IS NOT NULL LIMIT 1") == "96"
    assert sandbox.psql("SELECT count(*) FROM auth.refresh_tokens WHERE revoked_at IS NOT NULL") == "1"


def test_runbook_device_sql_fails_on_the_real_schema(sandbox):
    proc = sandbox.run("psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d", "nself_family", "-c",
                       "UPDATE public.registered_devices SET status = 'revoked' WHERE family_id = '%s'" % DEMO_FAMILY)
    assert proc.returncode == 1
    assert 'column "status" of relation "registered_devices" does not exist' in proc.stderr


def test_audit_events_are_immutable_but_truncatable(sandbox):
    proc = sandbox.run("psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d", "nself_family", "-c",
                       "DELETE FROM public.audit_events")
    assert proc.returncode == 1 and "Audit events are immutable" in proc.stderr


def test_login_me_refresh_and_errors(sandbox):
    status, body = login(sandbox)
    assert status == 200 and body["data"]["tokens"]["token_type"] == "Bearer"
    tokens = body["data"]["tokens"]
    assert len(tokens["refresh_token"]) == 64 and tokens["expires_in"] == 900
    status, me = http(sandbox, "GET", "http://127.0.0.1:4000/auth/me", token=tokens["access_token"])
    assert status == 200 and me["data"]["user"]["email"] == "owner@nself.org"
    assert [f["id"] for f in me["data"]["families"]] == [DEMO_FAMILY]
    status, body = http(sandbox, "POST", "http://127.0.0.1:4000/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert status == 200 and body["data"]["tokens"]["access_token"] != tokens["access_token"]
    status, body = http(sandbox, "POST", "http://127.0.0.1:4000/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert status == 401 and body["error"]["code"] == "TOKEN_REUSE"
    assert login(sandbox, password="wrong")[1]["error"]["code"] == "INVALID_CREDENTIALS"
    assert login(sandbox, email="disabled@nself.org")[0] == 403
    assert login(sandbox, email="not-an-email")[0] == 400
    status, body = http(sandbox, "GET", "http://127.0.0.1:4000/auth/me", token="garbage")
    assert status == 401 and body["error"]["code"] == "TOKEN_EXPIRED"


def test_ready_reports_in_the_body_not_the_status(healthy):
    assert http(healthy, "GET", "http://127.0.0.1:4000/ready") == (200, {"status": "ready", "service": "auth"})
    healthy.fault("set", "stop_postgres")
    assert http(healthy, "GET", "http://127.0.0.1:4000/ready") == (200, {"status": "not_ready", "service": "auth"})
    assert http(healthy, "GET", "http://127.0.0.1:4001/ready") == (200, {"status": "not_ready", "service": "api"})


def test_hasura_accepts_only_the_key_inside_its_jwt_secret(sandbox):
    token = login(sandbox)[1]["data"]["tokens"]["access_token"]
    status, body = http(sandbox, "POST", "http://127.0.0.1:8080/v1/graphql", {"query": "{ families { id name } }"}, token=token)
    assert status == 200 and body["data"]["families"][0]["id"] == DEMO_FAMILY
    forged = sandbox.run("env", "PYTHONPATH=/opt/nself-sandbox", "python3", "-c",
                         "from nself_sandbox.apps import common; import time; print(common.jwt_encode({'sub': 'x', "
                         "'exp': time.time() + 60, common.HASURA_NS: {'x-hasura-user-id': 'x'}}, 'k' * 40))", check=True).stdout.strip()
    status, body = http(sandbox, "POST", "http://127.0.0.1:8080/v1/graphql", {"query": "{ families { id } }"}, token=forged)
    assert status == 200 and body["errors"][0]["extensions"]["code"] == "invalid-jwt"
    assert http(sandbox, "GET", "http://127.0.0.1:8080/healthz") == (200, "OK")


def graphql(box, query, token=None, headers=None):
    status, body = http(box, "POST", "http://127.0.0.1:8080/v1/graphql", {"query": query}, token=token, headers=headers)
    assert status == 200
    return body


def graphql_error(body):
    return body["errors"][0]["extensions"]["code"], body["errors"][0]["message"]


def test_hasura_takes_the_role_from_the_claims_and_applies_its_select_permissions(sandbox):
    token = login(sandbox)[1]["data"]["tokens"]["access_token"]
    mine = graphql(sandbox, "{ families { id name } users { id email } }", token)["data"]
    assert [f["id"] for f in mine["families"]] == [DEMO_FAMILY] and [u["email"] for u in mine["users"]] == ["owner@nself.org"]
    assert graphql_error(graphql(sandbox, "{ users { id is_active } }", token)) == (
        "validation-failed", "field 'is_active' not found in type: 'users'")
    assert graphql_error(graphql(sandbox, "{ registered_devices { id } }", token)) == (
        "validation-failed", "field 'registered_devices' not found in type: 'query_root'")
    as_admin = graphql(sandbox, "{ families { id } }", token, headers={"x-hasura-role": "admin"})["data"]
    assert len(as_admin["families"]) == 2  # admin is one of the allowed roles of auth's tokens
    assert graphql_error(graphql(sandbox, "{ __typename }", token, headers={"x-hasura-role": "superuser"})) == (
        "access-denied", "Your requested role is not in allowed roles")
    # no Authorization header: HASURA_GRAPHQL_UNAUTHORIZED_ROLE=public, which may read no table
    assert graphql(sandbox, "{ __typename }")["data"] == {"__typename": "query_root"}
    assert graphql_error(graphql(sandbox, "{ families { id } }"))[0] == "validation-failed"


def test_hasura_updates_only_what_the_role_may(sandbox):
    token = login(sandbox)[1]["data"]["tokens"]["access_token"]
    me = graphql(sandbox, "{ users { id display_name } }", token)["data"]["users"][0]
    other = sandbox.psql("SELECT id FROM public.users WHERE email = 'adult@nself.org'")
    update = 'mutation { update_users_by_pk(pk_columns: {id: "%s"}, _set: {%s: "%s"}) { id display_name } }'
    try:
        done = graphql(sandbox, update % (me["id"], "display_name", "Olivia O."), token)["data"]["update_users_by_pk"]
        assert done == {"id": me["id"], "display_name": "Olivia O."}
        assert graphql(sandbox, update % (other, "display_name", "x"), token)["data"]["update_users_by_pk"] is None
        assert graphql_error(graphql(sandbox, update % (me["id"], "email", "x@y.z"), token)) == (
            "validation-failed", "field 'email' not found in type: 'users_set_input'")
    finally:
        sandbox.psql("UPDATE public.users SET display_name = '%s' WHERE id = '%s'" % (me["display_name"], me["id"]))
    assert sandbox.psql("SELECT display_name FROM public.users WHERE id = '%s'" % other) == "Aaron Adult"


def test_hasura_inserts_a_post_only_into_the_sessions_families_as_its_author(sandbox):
    """As upstream's metadata has it: posts are checked against X-Hasura-Family-Ids, which auth's tokens do not carry
    (so the frontend's create post is refused), and author_id is set from X-Hasura-User-Id, never sent."""
    answer = login(sandbox)[1]["data"]
    token, me = answer["tokens"]["access_token"], answer["user"]["id"]
    insert = "mutation P($object: posts_insert_input!) { insert_posts_one(object: $object) { id body } }"
    read = "query R($id: uuid!) { posts_by_pk(id: $id) { id body } }"

    def call(query, variables, token=None, headers=None):
        status, body = http(sandbox, "POST", "http://127.0.0.1:8080/v1/graphql", {"query": query, "variables": variables},
                            token=token, headers=headers)
        assert status == 200
        return body
    posts = sandbox.psql("SELECT count(*) FROM public.posts")
    post = {"family_id": DEMO_FAMILY, "post_type": "text", "body": "smoke"}
    assert graphql_error(call(insert, {"object": post}, token=token)) == ("not-found", 'missing session variable: "x-hasura-family-ids"')
    secret = sandbox.run("sh", "-c", "cd /opt/nself-family/backend && sed -n 's/^HASURA_GRAPHQL_ADMIN_SECRET=//p' .env*"
                         " | tail -1").stdout.strip()
    as_user = {"x-hasura-admin-secret": secret, "x-hasura-role": "user", "x-hasura-user-id": me, "x-hasura-family-ids": "{%s}" % DEMO_FAMILY}
    made = call(insert, {"object": post}, headers=as_user)["data"]["insert_posts_one"]
    try:
        assert made["body"] == "smoke" and call(read, {"id": made["id"]}, headers=as_user)["data"]["posts_by_pk"] == made
        assert sandbox.psql("SELECT author_id FROM public.posts WHERE id = '%s'" % made["id"]) == me
        assert graphql_error(call(insert, {"object": dict(post, family_id=OTHER_FAMILY)}, headers=as_user))[0] == "permission-error"
        assert graphql_error(call(insert, {"object": dict(post, author_id=me)}, headers=as_user)) == (
            "validation-failed", "field 'author_id' not found in type: 'posts_insert_input'")
        hidden = sandbox.psql("INSERT INTO public.posts (family_id, author_id, body) SELECT '%s', id, 'x' FROM public.users "
                              "WHERE email = 'owner@other.family' RETURNING id" % OTHER_FAMILY).splitlines()[0]
        assert call(read, {"id": hidden}, headers=as_user)["data"]["posts_by_pk"] is None  # not a family of the session
    finally:
        sandbox.psql("DELETE FROM public.posts WHERE body IN ('smoke', 'x')")
    assert sandbox.psql("SELECT count(*) FROM public.posts") == posts


@pytest.mark.parametrize("claims,expected", [
    ("{}", ("jwt-invalid-claims", "claims key: 'https://hasura.io/jwt/claims' not found")),
    ("{common.HASURA_NS: {'x-hasura-user-id': 'x'}}", ("jwt-missing-role-claims", "JWT claim does not contain x-hasura-allowed-roles")),
    ("{common.HASURA_NS: {'x-hasura-allowed-roles': ['user'], 'x-hasura-default-role': 'editor'}}",
     ("access-denied", "Your requested role is not in allowed roles")),
])
def test_hasura_refuses_a_token_with_wrong_claims(sandbox, claims, expected):
    secret = sandbox.env("HASURA_GRAPHQL_JWT_SECRET")
    code = ("import json, sys, time; from nself_sandbox.apps import common; claims = dict(%s, sub='x', exp=time.time() + 60); "
            "print(common.jwt_encode(claims, json.loads(sys.argv[1])['key']))" % claims)
    token = sandbox.run("env", "PYTHONPATH=/opt/nself-sandbox", "python3", "-c", code, secret, check=True).stdout.strip()
    assert graphql_error(graphql(sandbox, "{ __typename }", token)) == expected


def test_a_token_auth_signs_without_hasuras_claims_is_refused_by_hasura_alone(healthy):
    healthy.fault("set", "bad_claims", "auth")
    token = login(healthy)[1]["data"]["tokens"]["access_token"]
    assert http(healthy, "GET", "http://127.0.0.1:4000/auth/me", token=token)[0] == 200
    assert graphql_error(graphql(healthy, "{ __typename }", token))[0] == "jwt-invalid-claims"


def test_api_audit_and_upload_write_to_the_object_store(healthy):
    token = login(healthy)[1]["data"]["tokens"]["access_token"]
    assert http(healthy, "GET", "http://127.0.0.1:4001/api/audit", token=token)[0] == 400
    status, body = http(healthy, "GET", "http://127.0.0.1:4001/api/audit", token=token, headers={"X-Family-Id": DEMO_FAMILY})
    assert status == 200 and len(body["data"]["events"]) >= 3
    assert http(healthy, "GET", "http://127.0.0.1:4001/api/audit", token=token, headers={"X-Family-Id": OTHER_FAMILY})[0] == 403
    assert http(healthy, "GET", "http://127.0.0.1:4001/api/audit")[0] == 401
    healthy.sh("head -c 20000 /dev/urandom > /tmp/upload.bin")
    proc = healthy.run("curl", "-s", "-X", "POST", "http://127.0.0.1:4001/api/media/upload", "-H", "Authorization: Bearer " + token,
                       "-H", "X-Family-Id: " + DEMO_FAMILY, "-F", "file=@/tmp/upload.bin;filename=holiday.bin", check=True)
    data = json.loads(proc.stdout)["data"]
    assert data["status"] == "completed" and data["storage_path"].startswith("prod/%s/family/media/" % DEMO_FAMILY)
    assert data["checksum"] == healthy.sh("sha256sum /tmp/upload.bin").stdout.split()[0]
    again = json.loads(healthy.run("curl", "-s", "-X", "POST", "http://127.0.0.1:4001/api/media/upload", "-H",
                                   "Authorization: Bearer " + token, "-H", "X-Family-Id: " + DEMO_FAMILY,
                                   "-F", "file=@/tmp/upload.bin;filename=holiday.bin", check=True).stdout)
    assert again["data"]["status"] == "already_exists"
    listed = healthy.run("env", "PYTHONPATH=/opt/nself-sandbox", "python3", "-c",
                         "import sys; from nself_sandbox import faultctl, envfiles; from nself_sandbox.project import Project; "
                         "import boto3; p = Project('/opt/nself-family/backend'); c = boto3.client('s3', endpoint_url='http://127.0.0.1:9000', "
                         "aws_access_key_id=p.vars['MINIO_ROOT_USER'], aws_secret_access_key=p.vars['MINIO_ROOT_PASSWORD'], "
                         "region_name='us-east-1'); print(c.head_object(Bucket=p.vars['S3_BUCKET'], Key=sys.argv[1])['ContentLength'])",
                         data["storage_path"], check=True)
    assert listed.stdout.strip() == "20000"


def test_nginx_routes_auth_api_health_and_redirects(sandbox):
    assert http(sandbox, "GET", "https://127.0.0.1/health", insecure=True) == (200, "healthy\n")
    assert http(sandbox, "GET", "http://127.0.0.1/health") == (200, "healthy\n")
    assert http(sandbox, "GET", "http://127.0.0.1/auth/me")[0] == 301
    assert login(sandbox, base="https://127.0.0.1", insecure=True)[0] == 200
    status, body = http(sandbox, "GET", "https://127.0.0.1/api/health", insecure=True)
    assert status == 200 and body["service"] == "api"


def test_scheduler_processes_jobs(sandbox):
    sandbox.psql("INSERT INTO scheduler.jobs (job_type) VALUES ('token.cleanup')")
    deadline = time.time() + 20
    while time.time() < deadline:
        if sandbox.psql("SELECT count(*) FROM scheduler.jobs WHERE status = 'pending' AND run_at <= now()") == "0":
            break
        time.sleep(1)
    assert sandbox.psql("SELECT count(*) FROM scheduler.jobs WHERE status = 'pending' AND run_at <= now()") == "0"


# ---------------------------------------------------------------- fault switches

SERVICES = ["postgres", "redis", "minio", "hasura", "auth", "api", "scheduler", "nginx"]


def record(box, service):
    return json.loads(box.run("cat", "/var/lib/nself-sandbox/containers/nself-family_%s.json" % service, check=True).stdout)


def session_processes(box, session):
    """ps lines of the processes still in a container's session (its stand-in cgroup)."""
    lines = box.run("ps", "-eo", "sid=,stat=,args=", check=True).stdout.splitlines()
    return [line for line in lines if line.split()[0] == str(session) and not line.split()[1].startswith("Z")]


@pytest.mark.parametrize("service", SERVICES)
def test_a_crash_takes_every_process_of_the_container_and_its_restart_policy_brings_it_back(healthy, service):
    before = record(healthy, service)
    assert before["restart"] == "unless-stopped" and session_processes(healthy, before["session"])
    healthy.fault("set", "crash", service)
    assert session_processes(healthy, before["session"]) == []  # nginx workers, postgres backends: all gone
    assert healthy.wait_healthy(90)[service] == "healthy"
    after = record(healthy, service)
    assert after["restart_count"] == before.get("restart_count", 0) + 1 and after["session"] != before["session"]


def test_docker_kill_and_stop_are_final_for_the_restart_policy(healthy):
    healthy.fault("set", "kill", "api")
    healthy.nself("stop", "scheduler")
    time.sleep(2)
    assert healthy.states()["api"] == "exited" and record(healthy, "api")["exit_code"] == 137
    # nself reads the health first: a stopped container with a healthcheck is unhealthy, one without it exited
    assert healthy.status()["api"] == "unhealthy" and healthy.status()["scheduler"] == "exited"


def test_a_crash_loop_is_restarting_until_the_cause_goes(healthy):
    healthy.fault("set", "crash_loop", "auth")
    assert healthy.wait_state("auth", "restarting") == "restarting" and record(healthy, "auth")["restart_count"] >= 1
    assert healthy.status()["auth"] in ("unhealthy", "starting")  # `starting` for the moment of each new start
    assert "refuses to start" in healthy.nself("logs", "auth", "--tail", "3").stdout
    healthy.fault("clear", "crash_loop")
    healthy.nself("restart", "auth")
    assert healthy.wait_healthy(60)["auth"] == "healthy"


def test_a_paused_container_is_frozen_whole_and_a_restart_brings_it_back(healthy):
    healthy.fault("set", "pause", "nginx")
    assert healthy.states()["nginx"] == "paused" and healthy.status()["nginx"] == "unhealthy"
    frozen = session_processes(healthy, record(healthy, "nginx")["session"])
    assert frozen and all(line.split()[1].startswith("T") for line in frozen)
    healthy.nself("restart", "nginx")
    assert healthy.wait_healthy(60)["nginx"] == "healthy"


def test_a_foreign_process_on_a_published_port_keeps_the_container_from_starting(healthy):
    healthy.fault("set", "foreign_port", "nginx")
    assert healthy.states()["nginx"] == "exited"
    nginx = record(healthy, "nginx")
    assert nginx["exit_code"] == 128 and "port is already allocated" in nginx["start_error"]
    assert "nginx: master process nginx -c /var/lib/nself-sandbox/foreign/nginx.conf" in healthy.run("ps", "-eo", "args").stdout
    assert "Failed to restart nginx" in healthy.nself("restart", "nginx").stderr
    healthy.fault("clear", "foreign_port")
    healthy.nself("restart", "nginx")
    assert healthy.wait_healthy(60)["nginx"] == "healthy"


def test_restart_deletes_env_runtime_and_a_recreate_then_runs_without_the_secrets(healthy):
    """nself-cli.md §1.5 and §2: `nself restart` deletes .env.runtime; compose restart keeps a container's
    env, but a smart restart after a config change recreates the containers from `.env` alone."""
    healthy.nself("start")
    assert healthy.sh("test -f .env.runtime", check=False).returncode == 0  # nself start writes it
    healthy.nself("restart", "scheduler")
    assert healthy.sh("test -f .env.runtime", check=False).returncode == 1
    assert record(healthy, "scheduler")["env"]["POSTGRES_PASSWORD"]  # same container, same env
    try:
        healthy.sh("touch .env")
        healthy.nself("restart")
        assert record(healthy, "auth")["env"]["JWT_SECRET"] == "" and record(healthy, "postgres")["env"]["POSTGRES_PASSWORD"] == ""
        assert healthy.wait_state("hasura", "restarting") == "restarting"  # its JWT secret is empty: it exits on start
    finally:
        healthy.nself("start")  # writes .env.runtime from the whole cascade, recreating what changed
    assert healthy.wait_healthy(120) and record(healthy, "auth")["env"]["JWT_SECRET"]


def test_malformed_json_fault_makes_status_and_health_invalid_json(healthy):
    healthy.fault("set", "malformed_json")
    for argv in (["status", "--json"], ["health", "--json"]):
        with pytest.raises(ValueError):
            json.loads(healthy.nself(*argv).stdout, strict=False)


def test_fault_hang_makes_a_service_unhealthy(healthy):
    healthy.fault("set", "hang", "api")
    deadline = time.time() + 40
    while healthy.status()["api"] != "unhealthy" and time.time() < deadline:
        time.sleep(1)
    assert healthy.status()["api"] == "unhealthy"


def test_fault_unhealthy_and_refuse(healthy):
    healthy.fault("set", "unhealthy", "auth")
    assert http(healthy, "GET", "http://127.0.0.1:4000/health")[0] == 503
    assert json.loads(healthy.nself("health", "service", "auth", "--json").stdout)["status"] in ("unhealthy", "starting")
    healthy.fault("set", "refuse", "api")
    healthy.nself("restart", "api")
    assert healthy.wait_state("api", "restarting") == "restarting"
    assert "refuses to start" in healthy.nself("logs", "api").stdout


def test_fault_exhaust_connections(healthy):
    healthy.fault("set", "exhaust_connections")
    assert http(healthy, "GET", "http://127.0.0.1:4000/ready")[1]["status"] == "not_ready"
    assert login(healthy)[0] == 500
    assert healthy.nself("doctor").returncode == 1
    healthy.nself("stop")
    healthy.nself("start")
    healthy.wait_healthy()
    assert login(healthy)[0] == 200  # a full restart clears the leak


@pytest.mark.parametrize("mode", ["route", "syntax"])
def test_fault_break_nginx_and_build_repairs_it(healthy, mode):
    healthy.fault("set", "break_nginx", mode)
    if mode == "route":
        assert http(healthy, "GET", "https://127.0.0.1/api/health", insecure=True)[0] == 502
    else:
        healthy.nself("restart", "nginx")
        assert healthy.wait_state("nginx", "restarting") == "restarting"
    healthy.nself("build")
    healthy.nself("restart", "nginx")
    healthy.wait_healthy()
    assert http(healthy, "GET", "https://127.0.0.1/api/health", insecure=True)[0] == 200


def test_fault_fill_disk(healthy):
    healthy.fault("set", "fill_disk", "2")
    free = healthy.sh("df --output=pcent /srv/minio | tail -1").stdout.strip().rstrip("%")
    assert int(free) >= 97
    assert healthy.nself("doctor").returncode == 1


S3 = ("import sys, boto3; from nself_sandbox.project import Project; p = Project('/opt/nself-family/backend'); "
      "c = boto3.client('s3', endpoint_url='http://127.0.0.1:9000', aws_access_key_id=p.vars['MINIO_ROOT_USER'], "
      "aws_secret_access_key=p.vars['MINIO_ROOT_PASSWORD'], region_name='us-east-1')\n")


def s3(box, code):
    return box.run("env", "PYTHONPATH=/opt/nself-sandbox", "python3", "-c", S3 + code, check=True).stdout.split("\n")


def test_the_object_store_refuses_a_write_into_a_missing_bucket_as_minio_does(healthy):
    """SeaweedFS would create the bucket; MinIO answers NoSuchBucket, for a single put and a multipart upload."""
    lines = s3(healthy, "import io\nfor call in (lambda: c.put_object(Bucket='no-such-bucket-xyz', Key='a/b', Body=b'x' * 100),\n"
                        "             lambda: c.upload_fileobj(io.BytesIO(b'x' * 20000000), 'no-such-bucket-xyz', 'a/big')):\n"
                        "    try:\n        call()\n    except Exception as exc:\n        print(exc.response['Error']['Code'])\n"
                        "print(sorted(b['Name'] for b in c.list_buckets()['Buckets']))\n"
                        "c.put_object(Bucket='nf-backups', Key='a/b', Body=b'y' * 3000000)\n"
                        "print(len(c.get_object(Bucket='nf-backups', Key='a/b')['Body'].read()))")
    assert lines[:4] == ["NoSuchBucket", "NoSuchBucket", "['nf-backups', 'nself-family-prod']", "3000000"]


def test_the_object_store_answers_minios_health_endpoints(healthy):
    """Live and ready while it serves and takes writes; molecule/storage has a read-only and a stopped store."""
    for path in ("live", "ready"):
        assert healthy.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5",
                           "http://127.0.0.1:9000/minio/health/" + path).stdout == "200", path


def test_postgres_is_16_with_its_client_tools(healthy):
    assert healthy.psql("SHOW server_version").startswith("16.")
    for tool in ("pg_dump", "pg_restore", "psql", "pg_basebackup", "pg_isready"):
        assert " 16." in healthy.nself("exec", "postgres", tool, "--version").stdout, tool
    assert healthy.psql("SELECT count(*) FROM pg_available_extensions WHERE name IN ('pgcrypto', 'uuid-ossp')") == "2"


def test_fault_delete_bucket_and_storage_credentials(healthy):
    code = ("import sys, boto3; from nself_sandbox.project import Project; p = Project('/opt/nself-family/backend'); "
            "c = boto3.client('s3', endpoint_url='http://127.0.0.1:9000', aws_access_key_id=p.vars['MINIO_ROOT_USER'], "
            "aws_secret_access_key=p.vars['MINIO_ROOT_PASSWORD'], region_name='us-east-1');\n"
            "try:\n    print(sorted(b['Name'] for b in c.list_buckets()['Buckets']))\n"
            "except Exception as e:\n    print(type(e).__name__, getattr(e, 'response', {}).get('Error', {}).get('Code'))")

    def buckets():
        return healthy.run("env", "PYTHONPATH=/opt/nself-sandbox", "python3", "-c", code, check=True).stdout.strip()

    assert buckets() == "['nf-backups', 'nself-family-prod']"
    healthy.fault("set", "delete_bucket", "nf-backups")
    assert buckets() == "['nself-family-prod']"
    healthy.fault("set", "storage_credentials")
    healthy.wait_healthy()
    assert buckets() == "ClientError SignatureDoesNotMatch"
    healthy.fault("clear", "storage_credentials")
    healthy.wait_healthy()
    assert buckets() == "['nself-family-prod']"
    healthy.run("env", "PYTHONPATH=/opt/nself-sandbox", "python3", "-c", code.replace(
        "print(sorted(b['Name'] for b in c.list_buckets()['Buckets']))", "c.create_bucket(Bucket='nf-backups')"), check=True)


def test_fault_stale_key_keeps_the_old_jwt_key_after_a_rotation(healthy):
    project = "/opt/nself-family/backend"
    healthy.run("cp", "-p", project + "/.env.secrets", "/tmp/env.secrets.saved", check=True)
    healthy.fault("set", "stale_key", "hasura")
    try:
        new = "n" * 64
        rewrite = ("import re; p = '%s/.env.secrets'; t = open(p).read(); "
                   "t = re.sub('(?m)^JWT_SECRET=.*$', 'JWT_SECRET=%s', t); "
                   "t = re.sub('(?m)^HASURA_GRAPHQL_JWT_SECRET=.*$', 'HASURA_GRAPHQL_JWT_SECRET={\"type\":\"HS256\",\"key\":\"%s\"}', t); "
                   "open(p, 'w').write(t)" % (project, new, new))
        healthy.run("python3", "-c", rewrite, check=True)
        healthy.nself("build")
        healthy.nself("start")
        healthy.wait_healthy()
        token = login(healthy)[1]["data"]["tokens"]["access_token"]
        assert http(healthy, "GET", "http://127.0.0.1:4000/auth/me", token=token)[0] == 200  # auth runs with the new key
        status, body = http(healthy, "POST", "http://127.0.0.1:8080/v1/graphql", {"query": "{ families { id } }"}, token=token)
        assert body["errors"][0]["extensions"]["code"] == "invalid-jwt"  # hasura still has the old one
        healthy.fault("clear", "stale_key")
        status, body = http(healthy, "POST", "http://127.0.0.1:8080/v1/graphql", {"query": "{ families { id } }"}, token=token)
        assert status == 200 and "errors" not in body
    finally:
        healthy.fault("clear", "stale_key")
        healthy.run("cp", "-p", "/tmp/env.secrets.saved", project + "/.env.secrets", check=True)
        healthy.nself("build")
        healthy.nself("start")
        healthy.wait_healthy()


def test_fault_stop_postgres_shows_as_db_down(healthy):
    healthy.fault("set", "stop_postgres")
    assert healthy.states()["postgres"] == "exited" and healthy.status()["postgres"] == "unhealthy"
    assert "Database container not running" in healthy.nself("db", "migrate", "up").stderr


def test_docker_logs_reads_a_containers_stamped_output_within_a_window(sandbox):
    """What `docker logs --timestamps --since --until` gives nself_traffic_info: nginx's access lines with Docker's time."""
    nginx = sandbox.sh("ls /var/lib/nself-sandbox/containers | sed -n 's/^\\(.*_nginx\\)\\.json$/\\1/p'").stdout.strip()
    assert http(sandbox, "GET", "https://127.0.0.1/api/health?probe=docker-logs", insecure=True)[0] == 200
    stamped = sandbox.run("docker", "logs", "--timestamps", "--since", "2m", nginx).stdout.splitlines()
    lines = [line for line in stamped if "probe=docker-logs" in line]
    assert lines and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \S+ - - \[[^\]]+\] \"GET /api/health\?probe=docker-logs ", lines[-1])
    assert " 200 " in lines[-1]
    plain = [line for line in sandbox.run("docker", "logs", "--since", "2m", nginx).stdout.splitlines() if "probe=docker-logs" in line]
    assert plain and not re.match(r"^\d{4}-\d\d-\d\dT", plain[-1])
    assert "probe=docker-logs" not in sandbox.run("docker", "logs", "--until", "2m", nginx).stdout  # before two minutes ago
    missing = sandbox.run("docker", "logs", "no_such_container")
    assert missing.returncode == 1 and "No such container: no_such_container" in missing.stderr
