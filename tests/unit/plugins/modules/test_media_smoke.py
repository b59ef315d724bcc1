"""media_smoke against a local stand-in of auth and the api: the upload as the api takes it, and what is never sent."""
import http.server
import json
import threading

import pytest

from ansible_collections.nfamily.ops.plugins.modules import media_smoke

FAMILY = "20000000-0000-4000-8000-000000000002"


def project(tmp_path, *extra):
    (tmp_path / ".env").write_text("\n".join(("ENV=prod", "PROJECT_NAME=fam", "S3_BUCKET=fam-prod", "MINIO_ROOT_USER=u",
                                              "MINIO_ROOT_PASSWORD=p") + extra) + "\n")
    return str(tmp_path)


@pytest.fixture
def services():
    """auth's login and logout and the api's upload on one port; upload_status decides the api's answer."""
    seen = {"uploads": [], "logouts": 0, "upload_status": 201}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/auth/login":
                return self.send(200, {"data": {"tokens": {"access_token": "token-1"}}})
            if self.path == "/auth/logout":
                seen["logouts"] += 1
                return self.send(200, {})
            seen["uploads"].append({"headers": dict(self.headers), "body": body})
            if seen["upload_status"] != 201:
                return self.send(seen["upload_status"], {"error": {"code": "INTERNAL_ERROR"}})
            return self.send(201, {"data": {"media_item_id": "m-1", "storage_path": "prod/%s/family/media/x/f.txt" % FAMILY,
                                            "checksum": "not-the-file's", "status": "completed"}})

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen["url"] = "http://127.0.0.1:%d" % server.server_address[1]
    yield seen
    server.shutdown()


def args(tmp_path, services, *extra):
    return {"project_dir": project(tmp_path, *extra), "email": "owner@other.family", "password": "pw", "family_id": FAMILY,
            "auth_url": services["url"], "api_url": services["url"], "timeout": 2}


def test_demo_mode_uploads_nothing_and_says_why(run_module, tmp_path, services):
    result, _calls = run_module(media_smoke.main, args(tmp_path, services, "DEMO_MODE=true"))
    assert not result["failed"] and not result["changed"] and result["skip_reason"].startswith("demo mode")
    assert services["uploads"] == []


def test_a_family_that_is_no_uuid_is_refused_before_anything_is_sent(run_module, tmp_path, services):
    result, _calls = run_module(media_smoke.main, dict(args(tmp_path, services), family_id="the-other-family"))
    assert result["failed"] and "family_id 'the-other-family' is not a UUID" in result["msg"] and services["uploads"] == []


def test_a_failed_upload_fails_once_names_the_answer_and_still_cleans_up(run_module, tmp_path, services, monkeypatch):
    removed = []
    monkeypatch.setattr(media_smoke, "remove", lambda module, env, item_id, key: removed.append((item_id, key)) or [])
    services["upload_status"] = 500
    result, _calls = run_module(media_smoke.main, args(tmp_path, services))
    assert result["failed"] and "api POST /api/media/upload (expected 201, got 500 INTERNAL_ERROR)" in result["msg"]
    assert len(services["uploads"]) == 1  # a write is never retried
    upload = services["uploads"][0]
    assert upload["headers"]["X-Family-Id"] == FAMILY and upload["headers"]["Authorization"] == "Bearer token-1"
    assert upload["headers"]["Content-Type"].startswith("multipart/form-data; boundary=nfamily-ops-")
    assert b'name="file"; filename="nfamily-ops-smoke-' in upload["body"]
    assert services["logouts"] == 1 and removed == [(None, None)]


def test_an_answer_whose_checksum_is_not_the_files_fails(run_module, tmp_path, services, monkeypatch):
    removed = []
    monkeypatch.setattr(media_smoke, "remove", lambda module, env, item_id, key: removed.append((item_id, key)) or [])
    result, _calls = run_module(media_smoke.main, args(tmp_path, services))
    assert result["failed"] and result["changed"] and "api POST /api/media/upload" in result["msg"]
    assert removed == [("m-1", "prod/%s/family/media/x/f.txt" % FAMILY)]  # what was made is removed
    assert "pw" not in json.dumps(result)
