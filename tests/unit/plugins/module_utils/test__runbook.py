import datetime
import json
import os
import stat

import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _runbook as rb

NOW = datetime.datetime(2026, 11, 27, 1, 0, 0, tzinfo=datetime.timezone.utc)


def lock(run_id="r1", runbook="db_restore", target="prod:abc", expires="2026-11-27T02:00:00Z"):
    return {"run_id": run_id, "runbook": runbook, "target": target, "owner": "alice", "acquired_at": "2026-11-27T00:30:00Z",
            "expires_at": expires, "controller": {"host": "ops1", "pid": 4242}}


REQUEST = {"run_id": "r2", "runbook": "db_restore", "target": "prod:abc"}


def test_free_lock_is_acquired():
    assert rb.lock_decision(None, REQUEST, NOW)[0] == "acquire"


def test_own_lock_is_refreshed():
    assert rb.lock_decision(lock(run_id="r2"), REQUEST, NOW)[0] == "refresh"


def test_live_holder_is_refused_with_its_description():
    action, reason = rb.lock_decision(lock(), REQUEST, NOW)
    assert action == "refuse"
    assert "run r1 of db_restore by alice (ansible-playbook pid 4242 on ops1) since 2026-11-27T00:30:00Z" in reason


def test_expired_lock_is_taken_over():
    assert rb.lock_decision(lock(expires="2026-11-27T00:59:59Z"), REQUEST, NOW) == ("takeover", "expired")


def test_break_lock_takes_over():
    assert rb.lock_decision(lock(), REQUEST, NOW, break_lock=True)[0] == "takeover"


def test_dead_holder_taken_over_only_for_same_runbook_and_target():
    assert rb.lock_decision(lock(), REQUEST, NOW, takeover_run_id="r1")[0] == "takeover"
    assert rb.lock_decision(lock(target="prod:other"), REQUEST, NOW, takeover_run_id="r1")[0] == "refuse"
    assert rb.lock_decision(lock(runbook="db_backup"), REQUEST, NOW, takeover_run_id="r1")[0] == "refuse"
    assert rb.lock_decision(lock(), REQUEST, NOW, takeover_run_id="someone-else")[0] == "refuse"


def test_begin_decisions():
    digest = rb.digest({"backup": "a"})
    running = {"status": "running", "inputs_digest": digest, "run_id": "r1", "started_at": "x", "done": {"stop": {}}}
    assert rb.begin_decision(None, digest)[0] == "new"
    assert rb.begin_decision(dict(running, status="finished"), "other")[0] == "new"
    assert rb.begin_decision(running, digest)[0] == "resume"
    action, reason = rb.begin_decision(running, rb.digest({"backup": "b"}))
    assert action == "refuse" and "run r1" in reason and "stop" in reason
    assert rb.begin_decision(running, rb.digest({"backup": "b"}), abandon=True)[0] == "abandon_and_new"


def test_digest_is_order_independent():
    assert rb.digest({"a": 1, "b": [1, 2]}) == rb.digest({"b": [1, 2], "a": 1})
    assert rb.digest({"a": 1}) != rb.digest({"a": 2})


def test_redact_hides_secret_keys_at_any_depth():
    data = {"backup": "x.dump", "db_password": "hunter2", "nested": [{"JWT_SECRET": "k", "name": "n"}],
            "minio": {"secret_key": "s", "access_key": "a", "endpoint": "http://minio"}, "refresh_token": "t"}
    clean = rb.redact(data)
    assert clean["backup"] == "x.dump" and clean["nested"][0]["name"] == "n" and clean["minio"]["endpoint"] == "http://minio"
    text = json.dumps(clean)
    for secret in ("hunter2", '"k"', '"s"', '"a"', '"t"'):
        assert secret not in text


@pytest.mark.parametrize("name", ["Database", "", "db restore", "x" * 65, "../etc"])
def test_bad_names_are_refused(name):
    with pytest.raises(rb.RunbookStateError):
        rb.check_name("family", name)


def test_write_json_is_atomic_and_private(tmp_path):
    path = str(tmp_path / "state" / "runs" / "x.json")
    rb.write_json(path, {"a": 1})
    rb.write_json(path, {"a": 2})
    assert rb.read_json(path) == {"a": 2}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert os.listdir(os.path.dirname(path)) == ["x.json"]


def test_create_exclusive_only_once(tmp_path):
    path = str(tmp_path / "locks" / "database.json")
    assert rb.create_exclusive(path, {"run_id": "r1"}) is True
    assert rb.create_exclusive(path, {"run_id": "r2"}) is False
    assert rb.read_json(path) == {"run_id": "r1"}


def test_append_line_keeps_one_record_per_line(tmp_path):
    path = str(tmp_path / "runs.jsonl")
    rb.append_line(path, {"run_id": "1"})
    rb.append_line(path, {"run_id": "2"})
    with open(path) as handle:
        assert [json.loads(line)["run_id"] for line in handle] == ["1", "2"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_corrupt_state_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(rb.RunbookStateError, match="not valid JSON"):
        rb.read_json(str(path))
