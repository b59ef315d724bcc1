"""write_smoke against a local stand-in of auth, hasura and the api: the post and the upload as they are sent, and what is never sent."""
import json

import pytest

from ansible_collections.nfamily.ops.plugins.modules import write_smoke

from ...conftest import JsonHandler, serve

FAMILY = "20000000-0000-4000-8000-000000000002"


def project(tmp_path, *extra):
    (tmp_path / ".env").write_text("\n".join(("ENV=prod", "PROJECT_NAME=fam", "S3_BUCKET=fam-prod", "MINIO_ROOT_USER=u",
                                              "MINIO_ROOT_PASSWORD=p") + extra) + "\n")
    return str(tmp_path)


@pytest.fixture
def services():
    """auth's login and logout, hasura's graphql and the api's upload on one port; upload_status decides the api's
    answer, posts holds what hasura keeps (graphql_error makes it refuse)."""
    seen = {"uploads": [], "logouts": 0, "upload_status": 201, "graphql": [], "posts": {}, "graphql_error": None}

    class Handler(JsonHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/auth/login":
                return self.send(200, {"data": {"tokens": {"access_token": "token-1"}}})
            if self.path == "/v1/graphql":
                request = json.loads(body)
                seen["graphql"].append({"headers": dict(self.headers), "request": request})
                if seen["graphql_error"]:
                    return self.send(200, {"errors": [{"extensions": {"code": "permission-error"}, "message": seen["graphql_error"]}]})
                if "insert_posts_one" in request["query"]:
                    seen["posts"]["p-1"] = request["variables"]["object"]
                    return self.send(200, {"data": {"insert_posts_one": {"id": "p-1"}}})
                post = seen["posts"].get(request["variables"]["id"])
                return self.send(200, {"data": {"posts_by_pk": dict(post, id="p-1") if post else None}})
            if self.path == "/auth/logout":
                seen["logouts"] += 1
                return self.send(200, {})
            seen["uploads"].append({"headers": dict(self.headers), "body": body})
            if seen["upload_status"] != 201:
                return self.send(seen["upload_status"], {"error": {"code": "INTERNAL_ERROR"}})
            return self.send(201, {"data": {"media_item_id": "m-1", "storage_path": "prod/%s/family/media/x/f.txt" % FAMILY,
                                            "checksum": "not-the-file's", "status": "completed"}})

    server, seen["url"] = serve(Handler)
    yield seen
    server.shutdown()


def args(tmp_path, services, *extra):
    return {"project_dir": project(tmp_path, *extra), "email": "owner@other.family", "password": "pw", "family_id": FAMILY,
            "auth_url": services["url"], "api_url": services["url"], "hasura_url": services["url"], "timeout": 2}


def test_demo_mode_writes_nothing_and_says_why(run_module, tmp_path, services):
    result, _calls = run_module(write_smoke.main, args(tmp_path, services, "DEMO_MODE=true"))
    assert not result["failed"] and not result["changed"] and result["skip_reason"].startswith("demo mode")
    assert services["uploads"] == [] and services["graphql"] == []


def test_a_family_that_is_no_uuid_is_refused_before_anything_is_sent(run_module, tmp_path, services):
    result, _calls = run_module(write_smoke.main, dict(args(tmp_path, services), family_id="the-other-family"))
    assert result["failed"] and "family_id 'the-other-family' is not a UUID" in result["msg"] and services["uploads"] == []


def test_a_failed_upload_fails_once_names_the_answer_and_still_cleans_up(run_module, tmp_path, services, monkeypatch):
    removed = []
    monkeypatch.setattr(write_smoke, "remove", lambda module, env, family_id, post_text, file_name, key: removed.append((post_text, file_name, key)) or [])
    services["upload_status"] = 500
    result, _calls = run_module(write_smoke.main, dict(args(tmp_path, services), tests=["upload"]))
    assert result["failed"] and "api POST /api/media/upload (expected 201, got 500 INTERNAL_ERROR)" in result["msg"]
    assert len(services["uploads"]) == 1  # a write is never retried
    upload = services["uploads"][0]
    assert upload["headers"]["X-Family-Id"] == FAMILY and upload["headers"]["Authorization"] == "Bearer token-1"
    assert upload["headers"]["Content-Type"].startswith("multipart/form-data; boundary=nfamily-ops-")
    assert b'name="file"; filename="nfamily-ops-smoke-' in upload["body"]
    name = upload["body"].split(b'filename="')[1].split(b'"')[0].decode()
    # the upload's answer named no item: its row and object are looked for by the file's unique name
    assert services["logouts"] == 1 and removed == [(None, name, None)] and services["graphql"] == []


def test_an_answer_whose_checksum_is_not_the_files_fails(run_module, tmp_path, services, monkeypatch):
    removed = []
    monkeypatch.setattr(write_smoke, "remove", lambda module, env, family_id, post_text, file_name, key: removed.append((post_text, file_name, key)) or [])
    result, _calls = run_module(write_smoke.main, args(tmp_path, services))
    assert result["failed"] and result["changed"] and "api POST /api/media/upload" in result["msg"]
    name = services["uploads"][0]["body"].split(b'filename="')[1].split(b'"')[0].decode()
    assert removed == [(services["posts"]["p-1"]["body"], name, "prod/%s/family/media/x/f.txt" % FAMILY)]  # what was made is removed
    assert "pw" not in json.dumps(result)


def test_the_post_goes_through_hasura_as_the_account_is_read_back_and_removed(run_module, tmp_path, services, monkeypatch):
    removed = []
    monkeypatch.setattr(write_smoke, "remove", lambda module, env, family_id, post_text, file_name, key: removed.append((post_text, file_name, key)) or [])
    result, _calls = run_module(write_smoke.main, dict(args(tmp_path, services), tests=["post"]))
    assert not result["failed"] and result["changed"] and result["post_id"] == "p-1", result
    insert, read = services["graphql"]
    assert insert["headers"]["Authorization"] == "Bearer token-1" and "insert_posts_one" in insert["request"]["query"]
    post = insert["request"]["variables"]["object"]
    # author_id is Hasura's to set from the token (upstream's insert permission presets it); the frontend never sends it
    assert post["family_id"] == FAMILY and "author_id" not in post and post["body"].startswith("nfamily.ops smoke test ")
    assert read["request"]["variables"] == {"id": "p-1"} and services["uploads"] == []
    assert [c["name"] for c in result["checks"]] == ["auth /auth/login as owner@other.family", "hasura insert_posts_one",
                                                     "hasura posts_by_pk", "clean-up"]
    assert removed == [(post["body"], None, None)] and services["logouts"] == 1


def test_a_refused_post_fails_once_with_hasuras_words(run_module, tmp_path, services, monkeypatch):
    monkeypatch.setattr(write_smoke, "remove", lambda module, env, family_id, post_text, file_name, key: [])
    services["graphql_error"] = 'check constraint of an insert/update permission has failed'
    result, _calls = run_module(write_smoke.main, dict(args(tmp_path, services), tests=["post"]))
    assert result["failed"] and not result["changed"]
    assert "hasura insert_posts_one (expected the new post, got permission-error: check constraint" in result["msg"]
    assert "nself logs hasura" in result["msg"] and len(services["graphql"]) == 1  # a write is never retried


@pytest.mark.parametrize("value", ["true", "false", "0"])
def test_any_demo_mode_value_is_demo_mode_as_the_services_read_it(run_module, tmp_path, services, value):
    result, _calls = run_module(write_smoke.main, args(tmp_path, services, "DEMO_MODE=%s" % value))
    assert not result["failed"] and result["skip_reason"].startswith("demo mode (DEMO_MODE=%s" % value)
    assert services["uploads"] == [] and services["graphql"] == []


def test_each_write_is_tested_once(run_module, tmp_path, services, monkeypatch):
    monkeypatch.setattr(write_smoke, "remove", lambda module, env, family_id, post_text, file_name, key: [])
    result, _calls = run_module(write_smoke.main, dict(args(tmp_path, services), tests=["post", "post"]))
    assert not result["failed"] and len(services["graphql"]) == 2  # one insert, one read
