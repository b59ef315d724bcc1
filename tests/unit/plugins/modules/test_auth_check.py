import json

import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _jwt_key as jk
from ansible_collections.nfamily.ops.plugins.modules import auth_check

from ...conftest import JsonHandler, serve

NEW = "n" * 86
OLD = "o" * 86


class Stack:
    """auth, api and hasura on one local port: auth signs with sign_key, each service verifies with its own key."""

    def __init__(self, sign_key, verify_keys):
        self.sign_key, self.verify_keys, self.logouts, self.redirect_to, self.seen = sign_key, verify_keys, 0, None, []
        stack = self

        class Handler(JsonHandler):
            def verified(self, service):
                stack.seen.append(self.headers.get("Authorization", ""))
                token = self.headers.get("Authorization", "")[7:]
                return bool(token) and jk.signed_with(token, stack.verify_keys[service])

            def do_GET(self):
                if stack.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", stack.redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                service = "auth" if self.path == "/auth/me" else "api"
                if not self.verified(service):
                    return self.send(401, {"error": {"code": "TOKEN_EXPIRED"}})
                return self.send(200 if service == "auth" else 400, {"data": {}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                if self.path == "/auth/login":
                    if body != {"email": "ops@x.org", "password": "pw"}:
                        return self.send(401, {"error": {"code": "INVALID_CREDENTIALS"}})
                    token = jk.sign_hs256({"sub": "u1", "session_id": "s1", "exp": 9999999999}, stack.sign_key)
                    return self.send(200, {"data": {"tokens": {"access_token": token}}})
                if self.path == "/auth/logout":
                    stack.logouts += 1
                    return self.send(200, {})
                if not self.verified("hasura"):
                    return self.send(200, {"errors": [{"extensions": {"code": "invalid-jwt"}, "message": "Could not verify JWT"}]})
                return self.send(200, {"data": {"__typename": "query_root"}})

        self.server, self.url = serve(Handler)


@pytest.fixture
def host(tmp_path):
    """A project whose env files hold NEW, with a pending rotation whose backup holds OLD."""
    project = tmp_path / "backend"
    project.mkdir()
    (project / ".env").write_text("ENV=prod\nPROJECT_NAME=fam\n")
    (project / ".env.secrets").write_text("JWT_SECRET=%s\n" % NEW)
    (project / "backup").write_text("JWT_SECRET=%s\n" % OLD)
    state = tmp_path / "state"
    jk.write_record(jk.record_path(str(state), str(project), "prod"), {"current": None, "history": [], "pending": {
        "fingerprint": jk.Fingerprints(str(state))(NEW), "primary_file": ".env.secrets", "backups": {".env.secrets": str(project / "backup")}}})
    return {"project_dir": str(project), "state_dir": str(state), "email": "ops@x.org", "password": "pw",
            "reject_previous_key": True, "timeout": 2}


def run(run_module, host, stack):
    args = dict(host, auth_url=stack.url, api_url=stack.url, hasura_url=stack.url)
    return run_module(auth_check.main, args)[0]


def test_a_rotation_in_effect_passes_every_check_and_logs_out(run_module, host):
    stack = Stack(NEW, {"auth": NEW, "api": NEW, "hasura": NEW})
    result = run(run_module, host, stack)
    assert not result["failed"] and result["ok"] and len(result["checks"]) == 8 and stack.logouts == 1
    fingerprint = jk.Fingerprints(host["state_dir"])
    assert result["key_fingerprint"] == fingerprint(NEW) and result["previous_fingerprint"] == fingerprint(OLD)
    assert NEW not in json.dumps(result) and OLD not in json.dumps(result) and "pw" not in json.dumps(result["checks"])


def test_hasura_still_on_the_old_key_fails_both_ways(run_module, host):
    result = run(run_module, host, Stack(NEW, {"auth": NEW, "api": NEW, "hasura": OLD}))
    assert result["failed"] and [c["name"] for c in result["checks"] if not c["ok"]] == [
        "hasura /v1/graphql with the new token", "hasura /v1/graphql with the previous key's token"]


def test_auth_signing_with_another_key_than_the_env_files_is_named(run_module, host):
    result = run(run_module, host, Stack(OLD, {"auth": OLD, "api": OLD, "hasura": OLD}))
    assert result["failed"] and "auth still runs with another key" in result["msg"]


def test_a_wrong_password_is_a_failed_login(run_module, host):
    result = run(run_module, dict(host, password="nope"), Stack(NEW, {"auth": NEW, "api": NEW, "hasura": NEW}))
    assert result["failed"] and "got 401 INVALID_CREDENTIALS" in result["msg"] and len(result["checks"]) == 1


def test_no_previous_key_on_record_is_a_clear_error(run_module, host, tmp_path):
    result = run(run_module, dict(host, state_dir=str(tmp_path / "empty")), Stack(NEW, {"auth": NEW, "api": NEW, "hasura": NEW}))
    assert result["failed"] and "no rotation is on record" in result["msg"]


def test_a_redirect_is_a_failed_check_and_the_token_goes_nowhere_else(run_module, host):
    """Issue 17, item 8: auth_check followed redirects with the Bearer token."""
    elsewhere = Stack(NEW, {"auth": NEW, "api": NEW, "hasura": NEW})
    stack = Stack(NEW, {"auth": NEW, "api": NEW, "hasura": NEW})
    stack.redirect_to = elsewhere.url
    result = run(run_module, host, stack)
    assert result["failed"] and "auth /auth/me with the new token" in [c["name"] for c in result["checks"] if not c["ok"]]
    assert [c["status"] for c in result["checks"] if c["name"] == "auth /auth/me with the new token"] == [302]
    assert elsewhere.seen == []


@pytest.mark.parametrize("option,url,says", [
    ("auth_url", "file:///etc/passwd", "must be an http:// or https:// URL"),
    ("api_url", "ftp://127.0.0.1/", "must be an http:// or https:// URL"),
    ("auth_url", "http://203.0.113.5:4000", "plain http:// to 203.0.113.5"),
    ("hasura_url", "http://hasura.example.com", "plain http:// to hasura.example.com"),
])
def test_the_password_goes_to_no_other_scheme_and_not_in_clear_off_the_host(run_module, host, option, url, says):
    stack = Stack(NEW, {"auth": NEW, "api": NEW, "hasura": NEW})
    args = dict(host, auth_url=stack.url, api_url=stack.url, hasura_url=stack.url)
    args[option] = url
    result, _calls = run_module(auth_check.main, args)
    assert result["failed"] and result["msg"].startswith(option + " ") and says in result["msg"] and "Nothing was sent" in result["msg"]
    assert stack.seen == [] and stack.logouts == 0
