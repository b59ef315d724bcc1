"""Object storage recovery and the MinIO modules against the scenario's sandbox host (SeaweedFS S3
standing in for MinIO: the data path is real), with the playbooks and modules an operator would
run: each fault is detected, named and repaired or explained, a second run changes nothing, prune
deletes exactly what it listed and nothing outside its prefix, a 1 GB object round-trips with its
sha256 and bounded memory, and no secret reaches the output at -vvv."""
import json
import os
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_shared"))
from runbook_host import PROJECT, STATE, Instance, assert_failed_with, confirm, recap, wait_for  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUCKET = "nself-family-prod"
LIST_SCRIPT = """import json, sys, boto3
from botocore.config import Config
env = {}
for name in ('.env.dev', '.env.prod', '.env.secrets', '.env'):
    try:
        env.update(l.strip().split('=', 1) for l in open(name) if '=' in l and not l.startswith('#'))
    except OSError:
        pass
s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:' + env.get('MINIO_PORT', '9000'), region_name='us-east-1',
                  aws_access_key_id=env['MINIO_ROOT_USER'], aws_secret_access_key=env['MINIO_ROOT_PASSWORD'],
                  config=Config(s3={'addressing_style': 'path'}))
pages = s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[1], Prefix=sys.argv[2])
print(json.dumps(sorted(o['Key'] for p in pages for o in p.get('Contents', []))))
"""


# Objects cannot be made old in the object store: the modules' clock is moved on instead. This interpreter
# starts Python with datetime.datetime.now() 400 days later (a test fixture, as freezegun would be).
CLOCK_AHEAD = """import datetime, os
_days = float(os.environ.get('CLOCK_AHEAD_DAYS', '0'))
class _Ahead(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return super().now(tz) + datetime.timedelta(days=_days)
if _days:
    datetime.datetime = _Ahead
"""
CLOCK_AHEAD_DIR = "/opt/clock-ahead"
CLOCK_AHEAD_PYTHON = CLOCK_AHEAD_DIR + "/python3"
CLOCK_AHEAD_WRAPPER = '#!/bin/sh\nCLOCK_AHEAD_DAYS=400 PYTHONPATH=%s exec /usr/bin/python3 "$@"\n' % CLOCK_AHEAD_DIR


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    instance = Instance("nfamily-molecule-storage", tmp_path_factory.mktemp("storage"))
    subprocess.run(["podman", "cp", os.path.join(REPO, "tests", "bench", "rss_sampler.py"),
                    "%s:/tmp/rss_sampler.py" % instance.name], check=True)
    instance.sh("cat > /tmp/list_keys.py <<'EOF'\n%sEOF" % LIST_SCRIPT)
    instance.sh("mkdir -p {d} && cat > {d}/sitecustomize.py <<'EOF'\n{text}EOF".format(d=CLOCK_AHEAD_DIR, text=CLOCK_AHEAD))
    instance.sh("cat > {p} <<'EOF'\n{text}EOF\nchmod 0755 {p}".format(p=CLOCK_AHEAD_PYTHON, text=CLOCK_AHEAD_WRAPPER))
    return instance


@pytest.fixture
def later(host, tmp_path):
    """The instance reached with the interpreter whose clock is 400 days on."""
    return Instance(host.name, tmp_path, interpreter=CLOCK_AHEAD_PYTHON)


@pytest.fixture
def host(box):
    """Every test starts with no fault, every service healthy, a store that takes writes, and no run state.
    SeaweedFS (the stand-in) keeps its volumes read-only after a full disk until it restarts; MinIO does not."""
    box.run("sandbox-fault", "clear")
    box.sh("rm -rf %s" % STATE)
    if box.statuses().get("minio") != "healthy" or not store_ready(box):
        box.nself("restart", "minio")
    assert wait_for(lambda: set(box.statuses().values()) == {"healthy"} and store_ready(box), timeout=120)
    return box


def store_ready(box):
    """MinIO's readiness: an object can be written and read back."""
    return box.sh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9000/minio/health/ready").stdout == "200"


def keys(box, bucket, prefix):
    proc = box.run("python3", "/tmp/list_keys.py", bucket, prefix, workdir=PROJECT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def recovery(box, *extra):
    return box.playbook("storage_recovery.yml", *extra)


def summary(box, output):
    run_id = re.search(r" run (\d{8}T\d{6}Z-\d+) on ", output).group(1)
    with open(os.path.join(box.reports, run_id, box.name + ".json"), encoding="utf-8") as handle:
        return json.load(handle)["summary"]


def secrets(box):
    values = box.sh("cat %s/.env.secrets %s/.env.prod %s/.env 2>/dev/null" % (PROJECT, PROJECT, PROJECT)).stdout
    return [line.split("=", 1)[1] for line in values.splitlines()
            if "=" in line and re.search(r"PASSWORD|SECRET|_KEY", line.split("=", 1)[0]) and len(line.split("=", 1)[1]) >= 8]


def test_healthy_store_twice_without_change(host):
    for attempt in (1, 2):
        proc = recovery(host)
        assert proc.returncode == 0 and recap(proc.stdout)["changed"] == 0, proc.stdout[-3000:]
        assert "nfamily-molecule-storage: healthy." in proc.stdout, attempt


def test_stopped_minio_is_restarted_then_second_run_changes_nothing(host):
    host.nself("stop", "minio")
    assert wait_for(lambda: host.statuses()["minio"] != "healthy", timeout=60)
    proc = recovery(host)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert summary(host, proc.stdout).startswith("minio_down: nself restart minio")
    assert host.statuses()["minio"] == "healthy"
    again = recovery(host)
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]


def test_deleted_bucket_is_recreated_then_second_run_changes_nothing(host):
    host.run("sandbox-fault", "set", "delete_bucket", "nf-backups")
    rc, info, _out = host.module("minio_info", {"project_dir": PROJECT})
    assert rc == 0 and info["missing_buckets"] == ["nf-backups"]
    proc = recovery(host)
    assert proc.returncode == 0 and summary(host, proc.stdout).startswith("bucket_missing"), proc.stdout[-3000:]
    rc, info, _out = host.module("minio_info", {"project_dir": PROJECT})
    assert info["missing_buckets"] == []
    again = recovery(host)
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]


def test_refused_credentials_are_named_never_shown(host):
    host.run("sandbox-fault", "set", "storage_credentials")  # restarts the store with other credentials
    assert wait_for(lambda: host.statuses()["minio"] == "healthy", timeout=60)
    proc = recovery(host, "-vvv")
    assert_failed_with(proc, "storage_recovery failed on %s: permission_error" % host.name,
                       "MINIO_ROOT_USER/MINIO_ROOT_PASSWORD is refused by the server")
    leaked = [value for value in secrets(host) if value in proc.stdout]
    assert not leaked, "a secret from the env files is in the -vvv output"


def test_one_gigabyte_object_round_trips_with_its_sha256_in_bounded_memory(host, later):
    host.sh("head -c 1073741824 /dev/urandom > /tmp/big.bin")
    expected = host.sh("sha256sum /tmp/big.bin").stdout.split()[0]
    host.sh("rm -f /tmp/rss.stop")
    sampler = subprocess.Popen(["podman", "exec", host.name, "python3", "/tmp/rss_sampler.py", "AnsiballZ_minio_object",
                                "/tmp/rss.stop"], stdout=subprocess.PIPE, text=True)
    try:
        args = {"project_dir": PROJECT, "bucket": "nf-backups", "key": "roundtrip/big.bin"}
        on_disk = ("-e", "ansible_pipelining=false")  # the module runs from AnsiballZ_minio_object.py: the sampler finds it by name
        put = host.module("minio_object", dict(args, mode="put", src="/tmp/big.bin"), *on_disk)
        get = host.module("minio_object", dict(args, mode="get", dest="/tmp/big.out"), *on_disk)
        again = host.module("minio_object", dict(args, mode="put", src="/tmp/big.bin"), *on_disk)
    finally:
        host.sh("touch /tmp/rss.stop")
    peak = json.loads(sampler.communicate(timeout=30)[0])
    assert put[0] == 0 and put[1]["changed"] and put[1]["object"]["sha256"] == expected, put[2][-2000:]
    assert get[0] == 0 and host.sh("sha256sum /tmp/big.out").stdout.split()[0] == expected, get[2][-2000:]
    assert again[0] == 0 and not again[1]["changed"]  # identical: skipped
    print("minio_object peak RSS: %.1f MB (put %.1f s, get %.1f s)" % (peak["peak_kib"] / 1024.0, put[1]["seconds"], get[1]["seconds"]))
    assert peak["pids"], "the sampler found no AnsiballZ_minio_object process"
    assert peak["peak_kib"] < 150 * 1024
    prune_all(later, "nf-backups", "roundtrip/")
    host.sh("rm -f /tmp/big.bin /tmp/big.out")


def test_an_object_without_sha256_metadata_is_not_downloaded_unchecked(host):
    """An object another tool put carries no sha256: get refuses it before downloading, unless told to take it
    unchecked, and then says it was not verified."""
    raw = host.run("python3", "-c", LIST_SCRIPT.split("pages =", maxsplit=1)[0] + "\ns3.put_object(Bucket='%s', Key='raw/plain.bin', "
                   "Body=b'not put by minio_object')" % BUCKET, workdir=PROJECT)
    assert raw.returncode == 0, raw.stderr
    args = {"project_dir": PROJECT, "bucket": BUCKET, "key": "raw/plain.bin", "mode": "get", "dest": "/tmp/plain.out"}
    host.sh("rm -f /tmp/plain.out")
    rc, result, output = host.module("minio_object", args)
    assert rc != 0 and "carries no sha256 metadata" in result.get("msg", "") and "Nothing was downloaded" in result["msg"], output[-2000:]
    assert host.run("test", "-e", "/tmp/plain.out").returncode == 1
    rc, result, output = host.module("minio_object", dict(args, require_sha256=False))
    assert rc == 0 and result["changed"] and result["verified"] is False, output[-2000:]
    assert host.run("cat", "/tmp/plain.out").stdout == "not put by minio_object"


def prune_all(box, bucket, prefix):
    """Delete every object under prefix with minio_prune (box: the instance 400 days on): its listing, then that
    listing confirmed."""
    policy = {"project_dir": PROJECT, "bucket": bucket, "prefix": prefix, "older_than_days": 1}
    rc, listing, output = box.module("minio_prune", policy)
    assert rc == 0 and listing["dry_run"], output[-2000:]
    rc, pruned, output = box.module("minio_prune", dict(policy, confirm_digest=listing["listing_digest"]))
    assert rc == 0 and sorted(pruned["removed"]) == sorted(o["key"] for o in listing["listed"]), output[-2000:]


def put_objects(box, *names):
    for name in names:  # one second apart, so their ages order them
        box.sh("head -c 2048 /dev/urandom > /tmp/p.bin")
        assert box.module("minio_object", {"project_dir": PROJECT, "bucket": BUCKET, "key": name, "src": "/tmp/p.bin", "mode": "put"})[0] == 0
        time.sleep(1.1)


def test_full_disk_lists_first_then_deletes_exactly_the_confirmed_listing(host, later):
    """400 days on, a policy of older_than_days 300 keeping the newest 2: the run lists and names the listing's
    digest; deleting needs that digest and the host's confirmation; a confirming run whose listing is not the
    one the digest names (here the policy changed; an upload or a delete in between does the same) deletes
    nothing and names the new digest; the confirmed one deletes exactly its objects, never the newest, never
    a sibling prefix. (No object is written while the disk is full: the stand-in then refuses writes.)"""
    put_objects(host, *["prod/prune-test/%d.bin" % index for index in range(4)] + ["prod/prune-testX/outside.bin"])
    before = keys(host, BUCKET, "prod/")
    host.run("sandbox-fault", "set", "fill_disk")
    unset = recovery(later)
    assert_failed_with(unset, "disk_full", "Expand the storage")

    def policy(keep_newest):
        return json.dumps({"storage_recovery_prune": {"bucket": BUCKET, "prefix": "prod/prune-test/", "older_than_days": 300,
                                                      "keep_newest": keep_newest}})
    listed = recovery(later, "-e", policy(2))
    assert_failed_with(listed, "releases 2 object(s)", "nothing was deleted")
    digest = re.search(r"storage_recovery_prune_confirm=([0-9a-f]{16})", " ".join(listed.stdout.split())).group(1)
    assert keys(host, BUCKET, "prod/") == before
    unconfirmed = recovery(later, "-e", policy(2), "-e", "storage_recovery_prune_confirm=" + digest)
    assert_failed_with(unconfirmed, "storage_recovery would destroy or replace data on %s" % host.name,
                       "Re-run with -e runbook_confirm=storage_recovery@%s" % host.name)
    changed = recovery(later, "-e", policy(1), "-e", "storage_recovery_prune_confirm=" + digest, *confirm(host.name, "storage_recovery.yml"))
    assert_failed_with(changed, "the listing changed since the one confirmed (%s): it now releases 3 object(s)" % digest,
                       "Nothing was deleted")
    assert keys(host, BUCKET, "prod/") == before
    digest = re.search(r"digest ([0-9a-f]{16})\. Nothing", " ".join(changed.stdout.split())).group(1)
    confirmed = recovery(later, "-e", policy(1), "-e", "storage_recovery_prune_confirm=" + digest, *confirm(host.name, "storage_recovery.yml"))
    assert "deleted 3 object(s)" in " ".join(confirmed.stdout.split()), confirmed.stdout[-3000:]
    after = keys(host, BUCKET, "prod/")
    assert sorted(set(before) - set(after)) == ["prod/prune-test/%d.bin" % n for n in range(3)]
    assert "prod/prune-test/3.bin" in after and "prod/prune-testX/outside.bin" in after  # the newest, a sibling
    # the ballast still fills the disk: explained, not hidden
    assert_failed_with(confirmed, "what the prune policy releases is not enough")
    # without the clock moved on, nothing under the prefix is 300 days old, not even with no floor
    no_floor = {"bucket": BUCKET, "prefix": "prod/prune-test/", "older_than_days": 300}
    today = recovery(host, "-e", json.dumps({"storage_recovery_prune": no_floor}))
    assert_failed_with(today, "The prune policy releases nothing")


@pytest.mark.parametrize("prune, confirmation, message", [
    ({"prefix": "prod/prune-test"}, "", "prefix ending in / (prod/f1 would also match prod/f10/)"),
    ({"older_than_days": 0}, "", "older_than_days (1 or more: the rule)"),
    ({"keep_newest": 2, "older_than_days": None}, "", "older_than_days (1 or more: the rule)"),
    ({}, "true", "storage_recovery_prune_confirm the listing digest (16 hex digits)"),
])
def test_a_bad_prune_policy_or_confirmation_is_refused_before_anything(host, prune, confirmation, message):
    before = keys(host, BUCKET, "prod/")
    policy = {k: v for k, v in dict({"bucket": BUCKET, "prefix": "prod/", "older_than_days": 30}, **prune).items() if v is not None}
    extra = ("-e", "storage_recovery_prune_confirm=" + confirmation) if confirmation else ()
    proc = recovery(host, "-e", json.dumps({"storage_recovery_prune": policy}), *extra, *confirm(host.name, "storage_recovery.yml"))
    assert_failed_with(proc, message, "Nothing was changed.")
    assert keys(host, BUCKET, "prod/") == before


@pytest.mark.parametrize("args,message", [
    ({"endpoint_url": "http://127.0.0.1:1", "bucket": BUCKET, "key": "x", "mode": "stat"}, "cannot reach the S3 endpoint"),
    ({"endpoint_url": "http://127.0.0.1:4000", "bucket": BUCKET, "key": "x", "mode": "stat"}, "at http://127.0.0.1:4000"),
    ({"bucket": "no-such-bucket", "key": "x", "mode": "stat"}, "bucket no-such-bucket does not exist"),
    ({"bucket": "Bad_Bucket", "key": "x", "mode": "stat"}, "bucket name 'Bad_Bucket' is not valid"),
    ({"bucket": BUCKET, "key": "x", "mode": "put", "src": "/nope"}, "src /nope is not a file"),
])
def test_bad_connections_and_names_are_clear_errors(host, args, message):
    rc, result, output = host.module("minio_object", dict(args, project_dir=PROJECT))
    assert rc != 0 and message in result.get("msg", ""), output[-2000:]


def test_no_secret_in_module_output_at_vvv(host):
    rc, _result, output = host.module("minio_info", {"project_dir": PROJECT}, "-vvv")
    assert rc == 0
    assert not [value for value in secrets(host) if value in output]


def test_module_refuses_to_prune_outside_a_prefix(host):
    rc, result, _output = host.module("minio_prune", {"project_dir": PROJECT, "bucket": BUCKET, "prefix": "",
                                                      "older_than_days": 1})
    assert rc != 0 and "must name a folder and end in /" in result["msg"]
    assert len(keys(host, BUCKET, "")) > 0


def test_storage_recovery_refused_by_a_live_holder_says_so_last(host):
    release = host.hold_lock("storage", "storage_recovery")
    try:
        proc = recovery(host, "-e", "runbook_orphan_wait=0")
        assert_failed_with(proc, "The storage lock on this host is held by run held-by-another-run of storage_recovery by alice")
    finally:
        release()


def test_a_minio_restart_waits_for_no_one_while_another_run_holds_the_host(host):
    """A restart of minio is the storage runbook's disruptive fix: while a restore holds the host, it is
    named and not done."""
    host.run("sandbox-fault", "set", "kill", "minio")
    release = host.hold_lock("maintenance", "db_restore")
    try:
        proc = recovery(host)
        assert_failed_with(proc, "Not remediated: maintenance by run held-by-another-run of db_restore (alice)")
        assert host.statuses()["minio"] == "exited"
    finally:
        release()
    fixed = recovery(host)
    assert fixed.returncode == 0, fixed.stdout[-3000:]


def buckets(box):
    rc, result, output = box.module("minio_info", {"project_dir": PROJECT})
    assert rc == 0, output[-2000:]
    return result


def test_minio_info_reads_minios_health_endpoints_and_a_read_only_store_is_not_ready(host):
    assert buckets(host)["health"] == {"source": "minio", "live": True, "ready": True}
    host.run("sandbox-fault", "set", "fill_disk")  # SeaweedFS turns its volumes read-only below 5 % free
    assert wait_for(lambda: buckets(host)["health"] == {"source": "minio", "live": True, "ready": False}, timeout=90, interval=3)
    host.run("sandbox-fault", "clear", "fill_disk")
    assert wait_for(lambda: buckets(host)["health"]["ready"], timeout=90, interval=3)
    host.run("sandbox-fault", "set", "kill", "minio")
    stopped = buckets(host)
    assert stopped["reachable"] is False and stopped["health"]["live"] is False and stopped["health"]["ready"] is False


def test_a_put_into_a_missing_bucket_fails_fast_and_creates_nothing(host):
    host.sh("head -c 20000000 /dev/urandom > /tmp/put.bin")  # above the multipart threshold
    rc, result, _output = host.module("minio_object", {"project_dir": PROJECT, "bucket": "no-such-bucket-xyz", "key": "a/put.bin",
                                                       "src": "/tmp/put.bin", "mode": "put"})
    assert rc != 0 and "bucket no-such-bucket-xyz does not exist" in result["msg"] and "nothing was transferred" in result["msg"]
    raw = host.run("python3", "-c", LIST_SCRIPT.split("pages =", maxsplit=1)[0] + "\ntry:\n    s3.put_object(Bucket='no-such-bucket-xyz', "
                   "Key='a/raw.bin', Body=b'x')\nexcept Exception as exc:\n    print(exc.response['Error']['Code'])\n"
                   "print(sorted(b['Name'] for b in s3.list_buckets()['Buckets']))", workdir=PROJECT)
    assert raw.stdout.split("\n")[:2] == ["NoSuchBucket", "['nf-backups', 'nself-family-prod']"], raw.stdout + raw.stderr


def test_a_prune_policy_on_a_missing_bucket_is_refused_naming_it(host):
    before = keys(host, BUCKET, "prod/")
    host.run("sandbox-fault", "set", "fill_disk")
    policy = json.dumps({"storage_recovery_prune": {"bucket": "no-such-bucket-xyz", "prefix": "prod/", "older_than_days": 1}})
    proc = recovery(host, "-e", policy)
    assert_failed_with(proc, "bucket no-such-bucket-xyz does not exist", "nothing was listed or deleted")
    assert keys(host, BUCKET, "prod/") == before
