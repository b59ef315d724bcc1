import datetime
import json
import multiprocessing
import os
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _runbook as rb
from ansible_collections.nfamily.ops.plugins.module_utils._redact import redact, scrub

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


def test_a_holder_with_a_process_on_the_host_is_never_taken_over():
    processes = [{"pid": 77, "command": "/usr/bin/python3"}]
    for kwargs in ({}, {"break_lock": True}, {"takeover_run_id": "r1"}):
        action, reason = rb.lock_decision(lock(expires="2026-11-27T00:00:00Z"), REQUEST, NOW, processes=processes, **kwargs)
        assert action == "busy" and "still running on this host: pid 77 (/usr/bin/python3)" in reason


def test_begin_decisions():
    digest = rb.digest({"backup": "a"})
    running = {"status": "running", "inputs_digest": digest, "run_id": "r1", "started_at": "x", "steps": ["stop", "swap"],
               "inputs": {"backup": "a"}, "done": {"stop": {}}, "started": {"stop": {}, "swap": {}}}
    assert rb.begin_decision(None, digest)[0] == "new"
    assert rb.begin_decision(dict(running, status="finished"), "other")[0] == "new"
    assert rb.begin_decision(dict(running, status="closed"), "other")[0] == "new"
    assert rb.begin_decision(running, digest)[0] == "resume"
    action, reason = rb.begin_decision(running, rb.digest({"backup": "b"}))
    assert action == "refuse"
    assert reason == ('unfinished run r1 (started x; inputs backup="a"; steps done: stop; started, not recorded done: swap) '
                      'has other inputs')
    assert rb.begin_decision(running, rb.digest({"backup": "b"}), abandon=True)[0] == "abandon_and_new"


def test_a_run_that_never_began_a_step_blocks_nothing():
    nothing_begun = {"status": "running", "inputs_digest": "x", "run_id": "r1", "done": {}, "started": {}}
    assert rb.begin_decision(nothing_begun, "other") == ("new", "no unfinished run")


def test_a_runbook_that_only_adds_abandons_an_unfinished_run():
    running = {"status": "running", "inputs_digest": "same", "run_id": "r1", "done": {}, "started": {"backup": {}}}
    assert rb.begin_decision(running, "same", resumable=False)[0] == "abandon_and_new"
    assert rb.begin_decision(running, "other", resumable=False)[0] == "abandon_and_new"


def task(run_id, command="sleep 30"):
    """A task as Ansible starts it on a host: a shell that sets the run id, running the module below it."""
    return subprocess.Popen(["/bin/sh", "-c", "NFAMILY_OPS_RUN_ID=%s %s && sleep 0" % (run_id, command)], start_new_session=True)


def end(process):
    os.killpg(process.pid, 9)
    process.wait()


def test_run_processes_finds_a_run_by_the_shell_of_its_task():
    child = task("run-77")
    try:
        # until the shell has started its command, the shell itself is what the run has on the host
        assert wait_until(lambda: [p["command"] for p in rb.run_processes("run-77")] == ["sleep 30"])  # what runs below it
        assert rb.run_processes("run-7") == [] and rb.run_processes("") == []
    finally:
        end(child)
    assert rb.run_processes("run-77") == []


def test_a_daemon_a_task_started_is_not_the_task():
    """A container nself started keeps the environment of the task that started it (as the sandbox's
    services do), but outlives its shell: once the task is over, the run is over."""
    daemon = subprocess.Popen(["sleep", "30"], env=dict(os.environ, NFAMILY_OPS_RUN_ID="run-78"), start_new_session=True)
    try:
        assert rb.run_processes("run-78") == []
    finally:
        end(daemon)


def test_the_caller_never_counts_as_its_own_run(tmp_path):
    """A module of the run itself (its own task's shell names the run) finds no other task of it."""
    script = tmp_path / "me.py"
    script.write_text("import json\nfrom ansible_collections.nfamily.ops.plugins.module_utils import _runbook as rb\n"
                      "print(json.dumps(rb.run_processes('me')))\n")
    me = subprocess.run(["/bin/sh", "-c", "NFAMILY_OPS_RUN_ID=me %s %s && sleep 0" % (sys.executable, script)],
                        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), capture_output=True, text=True, check=True)
    assert me.stdout.strip() == "[]"


def wait_until(predicate, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_locks_are_taken_together_or_not_at_all(tmp_path):
    state = str(tmp_path)
    rb.write_json(rb.lock_path(state, "maintenance"), dict(lock(run_id="other"), expires_at="2099-01-01T00:00:00Z"))
    outcome = rb.try_locks(state, ["database", "maintenance"], REQUEST, 3600)
    assert outcome["refused"] == ["maintenance"] and not os.path.exists(rb.lock_path(state, "database"))
    rb.release_locks(state, ["maintenance"], "other")
    outcome = rb.try_locks(state, ["database", "maintenance"], REQUEST, 3600)
    assert outcome["refused"] == [] and rb.read_json(rb.lock_path(state, "maintenance"))["run_id"] == "r2"
    assert sorted(rb.refresh_locks(state, "r2", 60)) == ["database", "maintenance"]
    released = rb.release_locks(state, ["database", "maintenance"], "r2")
    assert [a for a, _h in released.values()] == ["released", "released"]
    assert sorted(os.listdir(os.path.join(state, "locks"))) == [".guard"]


def test_waiting_for_the_tasks_of_a_dead_run(tmp_path):
    state = str(tmp_path)
    rb.write_json(rb.lock_path(state, "database"), dict(lock(), expires_at="2000-01-01T00:00:00Z"))
    clock = [0]
    child = task("r1")
    assert wait_until(lambda: rb.run_processes("r1"))
    try:
        def sleep(seconds):
            clock[0] += seconds
            if clock[0] >= 6:
                end(child)
        expired_but_alive = rb.acquire_locks(state, ["database"], REQUEST, 3600, wait=0, orphan_wait=60,
                                             sleep=sleep, clock=lambda: clock[0])
        assert expired_but_alive["refused"] == ["database"] and clock[0] == 0  # a long task of a live run: no waiting
        outcome = rb.acquire_locks(state, ["database"], REQUEST, 3600, wait=0, orphan_wait=60, takeover_run_id="r1",
                                   sleep=sleep, clock=lambda: clock[0])
        assert outcome["refused"] == [] and outcome["families"]["database"]["action"] == "takeover" and clock[0] == 6
    finally:
        if child.poll() is None:
            end(child)


def test_giving_up_on_a_live_holder_after_the_wait(tmp_path):
    state = str(tmp_path)
    rb.write_json(rb.lock_path(state, "database"), dict(lock(), expires_at="2099-01-01T00:00:00Z"))
    clock = [0]
    outcome = rb.acquire_locks(state, ["database"], REQUEST, 3600, wait=10, orphan_wait=600,
                               sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0])
    assert outcome["refused"] == ["database"] and clock[0] == 10


def _race(state, run_id, barrier, results):
    barrier.wait()
    request = dict(REQUEST, run_id=run_id)
    outcome = rb.try_locks(state, ["database", "maintenance"], request, 3600)
    results.put((run_id, not outcome["refused"]))


@pytest.mark.parametrize("held_before", ["free", "expired"])
def test_racing_processes_never_both_hold_a_lock(tmp_path, held_before):
    """Eight processes released at once ask for the same locks, free or expired: exactly one gets them,
    and the lock files name it. Repeated, so that an unguarded read-decide-write would show."""
    ctx = multiprocessing.get_context("fork")
    for attempt in range(15):
        state = str(tmp_path / str(attempt))
        if held_before == "expired":
            for family in ("database", "maintenance"):
                rb.write_json(rb.lock_path(state, family), dict(lock(run_id="dead"), expires_at="2000-01-01T00:00:00Z"))
        barrier, results = ctx.Barrier(8), ctx.Queue()
        racers = [ctx.Process(target=_race, args=(state, "run%d" % n, barrier, results)) for n in range(8)]
        for racer in racers:
            racer.start()
        outcomes = [results.get(timeout=30) for _racer in racers]
        for racer in racers:
            racer.join()
        winners = [run_id for run_id, won in outcomes if won]
        assert len(winners) == 1, (attempt, winners)
        assert rb.read_json(rb.lock_path(state, "database"))["run_id"] == winners[0]
        assert rb.read_json(rb.lock_path(state, "maintenance"))["run_id"] == winners[0]


def test_digest_is_order_independent():
    assert rb.digest({"a": 1, "b": [1, 2]}) == rb.digest({"b": [1, 2], "a": 1})
    assert rb.digest({"a": 1}) != rb.digest({"a": 2})


def test_redact_hides_secret_keys_at_any_depth():
    data = {"backup": "x.dump", "db_password": "hunter2", "nested": [{"JWT_SECRET": "k", "name": "n"}],
            "minio": {"secret_key": "s", "access_key": "a", "endpoint": "http://minio"}, "refresh_token": "t"}
    clean = redact(data)
    assert clean["backup"] == "x.dump" and clean["nested"][0]["name"] == "n" and clean["minio"]["endpoint"] == "http://minio"
    text = json.dumps(clean)
    for secret in ("hunter2", '"k"', '"s"', '"a"', '"t"'):
        assert secret not in text


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize("text,secret", [
    ("could not connect to postgres://postgres:hunter2pass@postgres:5432/nself_family", "hunter2pass"),
    ("DATABASE_URL=postgresql://u:p4ss@db/x in .env.prod", "p4ss"),
    ("request carried Authorization: Bearer %s" % JWT, JWT),
    ("curl -H 'Authorization: Basic dXNlcjpodW50ZXIy' http://minio", "dXNlcjpodW50ZXIy"),
    ("token %s was refused" % JWT, JWT),
    ("POSTGRES_PASSWORD=hunter2 is set in .env.secrets", "hunter2"),
    ("MINIO_ROOT_PASSWORD='two words' ENV=prod", "two words"),
    ("hasura: HASURA_GRAPHQL_ADMIN_SECRET=adm1nS3cret; restarting", "adm1nS3cret"),
    ('{"password": "hunter2", "email": "owner@example.com"}', "hunter2"),
    ('HASURA_GRAPHQL_JWT_SECRET={"type":"HS256","key":"k3yM4terial"}', "k3yM4terial"),
    ("HASURA_GRAPHQL_JWT_SECRET='{\"type\":\"HS256\",\"key\":\"k3yM4terial\"}'", "k3yM4terial"),
    ('{"type": "HS256", "key": "k3yM4terial"}', "k3yM4terial"),
    ("POSTGRES_PASSWORD: hunter2", "hunter2"),
    ("X-Hasura-Admin-Secret: adm1nS3cret", "adm1nS3cret"),
    ("pg_dump --password hunter2", "hunter2"),
    ("postgres://u:pa/ss@h/db", "pa/ss"),
    ('{"password": "hu\\"nter2"}', "nter2"),
])
def test_scrub_hides_values_shaped_like_secrets_whatever_the_key(text, secret):
    clean = scrub(text)
    assert secret not in clean and "[redacted]" in clean
    assert redact({"summary": text})["summary"] == clean and redact([text]) == [clean] and redact(text) == clean


@pytest.mark.parametrize("text", [
    "password authentication failed for user \"postgres\"",
    "GET https://family.example.com/api/healthz 200",
    "key fingerprint sha256:0a1b2c3d, rotated at 2026-11-30T02:00:00Z",
    "restored nself_family from base.dump (sha256 %s)" % ("ab" * 32),
    "auth: exited (137), restarted",
    "Basic authentication is not configured",
    "Bearer authorization required on /api",
    "max_tokens=20 JWT_ACCESS_TOKEN_EXPIRES_IN=900 JWT_KEY_ROTATED_AT=2026-11-30 primary_key=id",
    "run 1 of db_restore (restore_keep_previous=2) has other inputs",
    "refresh tokens revoked: 3",
])
def test_scrub_leaves_ordinary_lines_alone(text):
    assert scrub(text) == text


def test_scrub_is_idempotent():
    text = 'HASURA_GRAPHQL_JWT_SECRET={"key":"k3yM4terial"} POSTGRES_PASSWORD=x url postgres://u:p@h'
    assert scrub(scrub(text)) == scrub(text) == "HASURA_GRAPHQL_JWT_SECRET=[redacted]"


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


def test_a_lock_seen_with_a_task_running_never_looks_expired_after_it(tmp_path):
    state = str(tmp_path)
    rb.write_json(rb.lock_path(state, "database"), dict(lock(run_id="long"), expires_at="2000-01-01T00:00:00Z"))
    child = task("long")
    try:
        assert wait_until(lambda: rb.run_processes("long"))
        assert rb.try_locks(state, ["database"], REQUEST, 3600)["refused"] == ["database"]
    finally:
        end(child)
    kept = rb.read_json(rb.lock_path(state, "database"))
    assert kept["run_id"] == "long" and rb.parse_time(kept["expires_at"]) > rb.utcnow()
    assert rb.try_locks(state, ["database"], REQUEST, 3600)["refused"] == ["database"]  # its next step will refresh it


def test_the_run_log_is_never_written_through_a_link(tmp_path):
    """Issue 17, item 8: append_line followed a symbolic link planted where runs.jsonl belongs."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    os.symlink(str(victim), str(state / "runs.jsonl"))
    with pytest.raises(rb.RunbookStateError, match="is a symbolic link"):
        rb.append_line(str(state / "runs.jsonl"), {"run_id": "1"})
    assert victim.read_text() == "untouched\n"


def test_a_state_directory_that_is_a_link_or_writable_by_others_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    os.symlink(str(elsewhere), str(tmp_path / "linked"))
    with pytest.raises(rb.RunbookStateError, match="is a symbolic link"):
        rb.append_line(str(tmp_path / "linked" / "runs.jsonl"), {"run_id": "1"})
    with pytest.raises(rb.RunbookStateError, match="is a symbolic link"):
        with rb.LockGuard(str(tmp_path / "linked")):
            pass
    assert os.listdir(str(elsewhere)) == []
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(str(open_dir), 0o777)
    with pytest.raises(rb.RunbookStateError, match="writable by no one else"):
        rb.write_state(str(open_dir / "runs" / "x.json"), {})
    with pytest.raises(rb.RunbookStateError, match="writable by no one else"):
        rb.write_state(str(open_dir / "x.json"), {})


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_a_run_log_another_user_owns_or_may_read_is_refused(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    log = state / "runs.jsonl"
    log.write_text("")
    os.chown(str(log), 12345, 12345)
    with pytest.raises(rb.RunbookStateError, match="belongs to uid 12345"):
        rb.append_line(str(log), {"run_id": "1"})
    os.chown(str(log), 0, 0)
    os.chmod(str(log), 0o644)
    with pytest.raises(rb.RunbookStateError, match="is not a 0600 file"):
        rb.append_line(str(log), {"run_id": "1"})
    assert log.read_text() == ""
