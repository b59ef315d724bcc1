import hashlib
import json
import os

import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _jwt_key as jk
from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.modules import jwt_signing_key

OLD = "o" * 64


@pytest.fixture
def host(tmp_path):
    directory = tmp_path / "backend"
    directory.mkdir()
    (directory / ".env.dev").write_text("PROJECT_NAME=fam\nJWT_SECRET=dev-jwt-secret-min-32-chars-required\n"
                                        "HASURA_GRAPHQL_JWT_SECRET={\"type\":\"HS256\",\"key\":\"dev-jwt-secret-min-32-chars-required!!\"}\n")
    (directory / ".env.secrets").write_text("POSTGRES_PASSWORD=pw\nJWT_SECRET=%s\n" % OLD)
    (directory / ".env").write_text("ENV=prod\nAUTH_JWT_SECRET=%s\n" % OLD)
    return {"project_dir": str(directory), "state_dir": str(tmp_path / "state")}


def effective(args):
    merged, _files = nenv.load_cascade(args["project_dir"], "prod")
    return merged


def record(args):
    with open(os.path.join(args["state_dir"], "jwt_signing_key", "fam.json")) as handle:
        return json.load(handle)


def test_first_rotation_writes_every_carrier_in_its_file_and_records_a_pending_rotation(run_module, host):
    result, _calls = run_module(jwt_signing_key.main, dict(host, policy="older_than"))
    env = effective(host)
    new = env["JWT_SECRET"]
    assert result["changed"] and result["action"] == "rotate" and result["pending"] and len(new) == 86
    assert env["AUTH_JWT_SECRET"] == new and json.loads(env["HASURA_GRAPHQL_JWT_SECRET"])["key"] == new
    assert sorted(result["files"]) == [".env", ".env.secrets"] and len(result["backups"]) == 2
    assert "POSTGRES_PASSWORD=pw\n" in open(os.path.join(host["project_dir"], ".env.secrets")).read()
    fingerprint = jk.Fingerprints(host["state_dir"])
    assert result["fingerprint"] == fingerprint(new) and result["previous_fingerprint"] == fingerprint(OLD)
    text = json.dumps(result) + json.dumps(record(host))
    assert new not in text and OLD not in text
    assert ".env.dev" not in result["files"]  # overridden by .env.secrets: its values are not in effect


def test_rerun_while_pending_finishes_the_same_rotation_and_never_makes_a_second_key(run_module, host):
    run_module(jwt_signing_key.main, dict(host, policy="always"))
    first = effective(host)["JWT_SECRET"]
    again, _calls = run_module(jwt_signing_key.main, dict(host, policy="always"))
    assert not again["changed"] and again["action"] == "resume" and effective(host)["JWT_SECRET"] == first


def test_a_kill_between_two_files_is_completed_with_the_key_the_first_file_got(run_module, host, monkeypatch):
    real_write = jk.write_secret_file
    calls = []

    def dies_on_second_file(path, text):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        real_write(path, text)

    monkeypatch.setattr(jk, "write_secret_file", dies_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        run_module(jwt_signing_key.main, dict(host, policy="always"))
    monkeypatch.setattr(jk, "write_secret_file", real_write)
    env = effective(host)
    assert env["JWT_SECRET"] != env["AUTH_JWT_SECRET"]  # half written
    written = env["AUTH_JWT_SECRET"] if env["AUTH_JWT_SECRET"] != OLD else env["JWT_SECRET"]
    result, _calls = run_module(jwt_signing_key.main, dict(host, policy="always"))
    env = effective(host)
    assert result["changed"] and result["action"] == "resume"
    assert env["JWT_SECRET"] == env["AUTH_JWT_SECRET"] == written == json.loads(env["HASURA_GRAPHQL_JWT_SECRET"])["key"]


def test_a_pending_key_that_reached_no_file_is_abandoned_for_a_new_one(run_module, host, monkeypatch):
    def killed(path, text):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(jk, "write_secret_file", killed)
    with pytest.raises(KeyboardInterrupt):
        run_module(jwt_signing_key.main, dict(host, policy="always"))
    monkeypatch.undo()
    assert effective(host)["JWT_SECRET"] == OLD and record(host)["pending"]
    result, _calls = run_module(jwt_signing_key.main, dict(host, policy="always"))
    assert result["action"] == "rotate" and effective(host)["JWT_SECRET"] != OLD
    assert [h["outcome"] for h in record(host)["history"]] == ["abandoned"]
    assert record(host)["pending"]["fingerprint"] == result["fingerprint"]


def test_commit_starts_the_age_clock_and_the_scheduled_policy_waits(run_module, host):
    run_module(jwt_signing_key.main, dict(host, policy="older_than"))
    committed, _calls = run_module(jwt_signing_key.main, dict(host, state="committed"))
    assert committed["changed"] and not committed["pending"]
    again, _calls = run_module(jwt_signing_key.main, dict(host, state="committed"))
    assert not again["changed"]
    scheduled, _calls = run_module(jwt_signing_key.main, dict(host, policy="older_than", max_age_days=90))
    assert not scheduled["changed"] and scheduled["action"] == "none" and scheduled["age_days"] < 0.01
    history = record(host)["history"]
    assert [h["outcome"] for h in history] == ["committed"] and record(host)["current"]["fingerprint"] == committed["fingerprint"]


def test_rollback_puts_the_previous_key_back_everywhere(run_module, host):
    run_module(jwt_signing_key.main, dict(host, policy="always"))
    result, _calls = run_module(jwt_signing_key.main, dict(host, state="rolled_back"))
    env = effective(host)
    assert result["changed"] and result["fingerprint"] == jk.Fingerprints(host["state_dir"])(OLD)
    assert env["JWT_SECRET"] == env["AUTH_JWT_SECRET"] == OLD
    assert "HASURA_GRAPHQL_JWT_SECRET" not in nenv.read_env_file(os.path.join(host["project_dir"], ".env.secrets"))
    assert not run_module(jwt_signing_key.main, dict(host, state="rolled_back"))[0]["changed"]
    assert record(host)["history"][-1]["outcome"] == "rolled_back"


def test_never_aligns_variables_that_disagree(run_module, host):
    with open(os.path.join(host["project_dir"], ".env.secrets"), "a") as handle:
        handle.write('HASURA_GRAPHQL_JWT_SECRET={"type":"HS256","key":"%s"}\n' % ("x" * 40))
    result, _calls = run_module(jwt_signing_key.main, dict(host, policy="never"))
    env = effective(host)
    assert result["changed"] and result["action"] == "align" and json.loads(env["HASURA_GRAPHQL_JWT_SECRET"])["key"] == OLD
    assert env["JWT_SECRET"] == OLD


def test_check_mode_predicts_and_writes_nothing(run_module, host):
    before = open(os.path.join(host["project_dir"], ".env.secrets")).read()
    result, _calls = run_module(jwt_signing_key.main, dict(host, policy="always", _ansible_check_mode=True))
    assert result["changed"] and result["files"] == [".env", ".env.secrets"]
    assert open(os.path.join(host["project_dir"], ".env.secrets")).read() == before
    assert not os.path.exists(os.path.join(host["state_dir"], "jwt_signing_key"))


@pytest.mark.parametrize("args,message", [
    ({"size": 32}, "size must be at least 64"),
    ({"max_age_days": 0}, "max_age_days must be at least 1"),
    ({"project_dir": "/nonexistent"}, "project_dir /nonexistent does not exist"),
])
def test_bad_input_is_refused(run_module, host, args, message):
    result, _calls = run_module(jwt_signing_key.main, dict(host, **args))
    assert result["failed"] and message in result["msg"]


def left_pending_by_the_unkeyed_version(run_module, host):
    """A rotation started, then its record rewritten as version 0.1.0 wrote it (sha256: fingerprints)."""
    run_module(jwt_signing_key.main, dict(host, policy="always"))
    new = effective(host)["JWT_SECRET"]
    path = os.path.join(host["state_dir"], "jwt_signing_key", "fam.json")
    old_record = record(host)
    old_record["pending"].update(fingerprint="sha256:" + hashlib.sha256(new.encode()).hexdigest()[:16],
                                 previous_fingerprint="sha256:" + hashlib.sha256(OLD.encode()).hexdigest()[:16])
    with open(path, "w") as handle:
        json.dump(old_record, handle)
    return new


def test_a_rotation_left_pending_by_the_unkeyed_version_resumes_with_its_key_and_commits_keyed(run_module, host):
    new = left_pending_by_the_unkeyed_version(run_module, host)
    again, _calls = run_module(jwt_signing_key.main, dict(host, policy="always"))
    assert again["action"] == "resume" and effective(host)["JWT_SECRET"] == new  # no second key
    assert again["previous_fingerprint"] == jk.Fingerprints(host["state_dir"])(OLD)  # keyed again: never the unkeyed hash
    assert "sha256:" + hashlib.sha256(OLD.encode()).hexdigest()[:16] not in json.dumps(record(host))
    committed, _calls = run_module(jwt_signing_key.main, dict(host, state="committed"))
    assert committed["changed"] and record(host)["current"]["fingerprint"] == jk.Fingerprints(host["state_dir"])(new)


def test_a_rotation_left_pending_by_the_unkeyed_version_rolls_back(run_module, host):
    left_pending_by_the_unkeyed_version(run_module, host)
    result, _calls = run_module(jwt_signing_key.main, dict(host, state="rolled_back"))
    assert result["changed"] and effective(host)["JWT_SECRET"] == OLD and record(host)["pending"] is None


def test_a_lost_fingerprint_secret_is_refused_while_the_record_names_keys_with_it(run_module, host):
    """A new secret would not know the pending rotation's key: it would abandon it and write a second one."""
    run_module(jwt_signing_key.main, dict(host, policy="always"))
    written = effective(host)["JWT_SECRET"]
    os.unlink(os.path.join(host["state_dir"], "jwt_signing_key", "fingerprint.key"))
    result, _calls = run_module(jwt_signing_key.main, dict(host, policy="always"))
    assert result["failed"] and "the fingerprint secret" in result["msg"] and "restore it from the host's backup" in result["msg"]
    assert effective(host)["JWT_SECRET"] == written and record(host)["pending"]
