import datetime
import hashlib
import os
import re

import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _s3 as s3lib
from ansible_collections.nfamily.ops.plugins.modules import minio_bucket, minio_prune

from ...conftest import JsonHandler, serve

NOW = datetime.datetime(2026, 11, 27, 3, 0, tzinfo=datetime.timezone.utc)


def obj(key, days_old, size=10):
    return {"Key": key, "Size": size, "LastModified": NOW - datetime.timedelta(days=days_old)}


OBJECTS = [obj("prod/f1/family/media/a/1.jpg", 400), obj("prod/f1/family/media/b/2.jpg", 200),
           obj("prod/f1/family/media/c/3.jpg", 10), obj("prod/f1/family/media/d/4.jpg", 1),
           obj("prod/f10/family/media/e/5.jpg", 900)]


def keys(objects):
    return [o["Key"] for o in objects]


def test_prune_by_age_keeps_newer_objects_and_stays_inside_the_prefix():
    doomed = minio_prune.released(OBJECTS, "prod/f1/", 100, 0, NOW)
    assert keys(doomed) == ["prod/f1/family/media/a/1.jpg", "prod/f1/family/media/b/2.jpg"]  # oldest first, f10 untouched


def test_keep_newest_is_a_floor_not_a_rule():
    """It used to release every object beyond the newest N, however young: now it only keeps."""
    # beyond the newest one are three objects; only the one older than 300 days goes (it used to be all three)
    assert keys(minio_prune.released(OBJECTS, "prod/f1/", 300, 1, NOW)) == ["prod/f1/family/media/a/1.jpg"]
    assert keys(minio_prune.released(OBJECTS, "prod/f1/", 5, 3, NOW)) == ["prod/f1/family/media/a/1.jpg"]
    assert minio_prune.released(OBJECTS, "prod/f1/", 300, 4, NOW) == []


def test_prune_never_releases_the_newest_n_even_when_old():
    old = [obj("p/a", 900), obj("p/b", 800)]
    assert minio_prune.released(old, "p/", 30, 2, NOW) == []
    assert keys(minio_prune.released(old, "p/", 30, 1, NOW)) == ["p/a"]  # p/b is the newest


def test_the_digest_names_the_listing():
    listing = minio_prune.released(OBJECTS, "prod/f1/", 100, 0, NOW)
    digest = minio_prune.listing_digest(listing)
    assert len(digest) == 16 and digest == minio_prune.listing_digest([dict(o) for o in listing])
    rewritten = [dict(listing[0], Size=11)] + listing[1:]
    assert minio_prune.listing_digest(rewritten) != digest  # same keys, another object
    assert minio_prune.listing_digest(listing[:1]) != digest
    assert minio_prune.listing_digest([dict(listing[0], ETag='"x"')] + listing[1:]) != digest


@pytest.mark.parametrize("args, message", [
    ({"prefix": ""}, "must name a folder and end in /"),
    ({"prefix": "/"}, "must name a folder and end in /"),
    ({"prefix": "/prod/"}, "must name a folder and end in /"),  # keys do not start with /: it would list nothing
    ({"prefix": "prod/f1"}, "also matches its siblings (prod/f1 matches prod/f10/)"),
    ({"older_than_days": 0}, "older_than_days must be 1 or more"),
    ({"keep_newest": -1}, "keep_newest 0 or more"),
    ({"confirm_digest": "true"}, "confirm_digest must be the listing_digest a dry run returned"),
    ({"confirm_digest": "ABCDEF0123456789"}, "confirm_digest must be the listing_digest"),
])
def test_prune_refuses_what_is_not_a_prune_before_listing(run_module, args, message):
    """Refused before any request: run_module has no S3 endpoint to answer."""
    result = run_module(minio_prune.main, dict({"bucket": "nf-media", "prefix": "prod/f1/", "older_than_days": 30}, **args), {})[0]
    assert result["failed"] and message in result["msg"]


def test_older_than_days_is_required(run_module):
    result = run_module(minio_prune.main, {"bucket": "nf-media", "prefix": "prod/", "keep_newest": 2}, {})[0]
    assert result["failed"] and "older_than_days" in result["msg"]


@pytest.mark.parametrize("name", ["ab", "Upper", "under_score", "-lead", "trail-", "a..b", "192.168.1.1", "x" * 64])
def test_bad_bucket_names_are_refused(name):
    with pytest.raises(s3lib.S3Error, match="is not valid"):
        s3lib.check_bucket_name(name)


def test_good_bucket_names_pass():
    for name in ("nself-family-prod", "nf-backups", "a.b.c"):
        assert s3lib.check_bucket_name(name) == name


def test_named_policies_and_their_canonical_form():
    assert minio_bucket.policy_document("media", "private") == {}
    download = minio_bucket.policy_document("media", "download")
    assert download["Statement"][0]["Action"] == ["s3:GetObject"]
    assert download["Statement"][0]["Resource"] == ["arn:aws:s3:::media/*"]
    assert len(minio_bucket.policy_document("media", "public")["Statement"]) == 2
    as_returned = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                                           "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*"}]}
    assert minio_bucket.canonical(as_returned) == minio_bucket.canonical(download)
    assert minio_bucket.policy_document("media", None) is None
    with pytest.raises(s3lib.S3Error, match="policy must be"):
        minio_bucket.policy_document("media", "world-writable")


def test_settings_come_from_the_env_cascade_and_prefer_s3_keys(tmp_path):
    (tmp_path / ".env").write_text("ENV=prod\nMINIO_PORT=9002\nMINIO_ROOT_USER=root\nMINIO_ROOT_PASSWORD=rootpw\n"
                                   "S3_ACCESS_KEY=app\nS3_SECRET_KEY=apppw\n")
    settings, env = s3lib.module_settings({"project_dir": str(tmp_path), "environment": None})
    assert settings["endpoint_url"] == "http://127.0.0.1:9002"
    assert (settings["access_key"], settings["secret_key"]) == ("app", "apppw")
    given = {"project_dir": str(tmp_path), "environment": None, "access_key": "x", "secret_key": "y"}
    assert s3lib.module_settings(given)[0]["access_key"] == "x"
    with pytest.raises(s3lib.S3Error, match="does not exist"):
        s3lib.module_settings({"project_dir": str(tmp_path / "nope"), "environment": None})


def test_minio_info_reads_minio_health_endpoints_when_the_server_has_them(run_module):
    """A small server speaking MinIO's documented health responses: live 200, ready 503 (no quorum)."""
    from ansible_collections.nfamily.ops.plugins.modules import minio_info

    class Handler(JsonHandler):
        def do_GET(self):  # noqa: N802
            self.send_response({"/minio/health/live": 200, "/minio/health/ready": 503}.get(self.path, 403))
            self.end_headers()

    server, url = serve(Handler)
    try:
        args = {"endpoint_url": url, "access_key": "ak",
                "secret_key": "sk-not-shown", "buckets": []}
        result = run_module(minio_info.main, args, {})[0]
    finally:
        server.shutdown()
    assert result["health"] == {"source": "minio", "live": True, "ready": False}
    assert result["reachable"] is True and result["credentials_accepted"] is False
    assert "sk-not-shown" not in str(result)


def test_minio_info_of_an_endpoint_nothing_answers_names_it_without_trying_s3(run_module, monkeypatch):
    """A stopped minio refuses connections: the diagnosis is made from that, without boto3's retries
    of each credential set (a minute of backoff in every triage of a down store)."""
    import socket

    from ansible_collections.nfamily.ops.plugins.modules import minio_info

    def no_s3(settings):
        raise AssertionError("an S3 call was made to an endpoint that does not answer")

    monkeypatch.setattr(s3lib, "client", no_s3)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        args = {"endpoint_url": "http://127.0.0.1:%d" % port, "access_key": "ak", "secret_key": "sk-not-shown",
                "buckets": ["nf-backups"]}
        result = run_module(minio_info.main, args, {})[0]
    assert result["reachable"] is False and result["credentials_accepted"] is False
    assert result["credential_error"].startswith("unreachable: ") and "refused" in result["credential_error"].lower()
    assert result["health"] == {"source": "s3", "live": False, "ready": False}
    assert result["credential_sets"] == [] and result["buckets"] == []


class FakeS3:
    """An S3 client whose calls answer from a script: {operation: error code or None}."""

    def __init__(self, **errors):
        self.errors, self.calls = errors, []

    def _call(self, operation, **kwargs):
        from botocore.exceptions import ClientError
        self.calls.append((operation, kwargs.get("Key")))
        code = self.errors.get(operation)
        if code:
            raise ClientError({"Error": {"Code": code, "Message": code}}, operation)
        return {}

    def put_object(self, **kwargs):
        return self._call("PutObject", **kwargs)

    def delete_object(self, **kwargs):
        return self._call("DeleteObject", **kwargs)

    def head_bucket(self, **kwargs):
        return self._call("HeadBucket", **kwargs)


def test_the_write_probe_is_what_the_copy_does_and_a_missing_bucket_is_named():
    endpoint = "http://127.0.0.1:9000"
    ok = FakeS3()
    assert s3lib.require_writable(ok, "nf-backups", "db/", endpoint) == []
    assert ok.calls == [("PutObject", "db/.nfamily-ops-write-probe"), ("DeleteObject", "db/.nfamily-ops-write-probe")]
    with pytest.raises(s3lib.S3Error, match="bucket gone does not exist at http://127.0.0.1:9000"):
        s3lib.require_writable(FakeS3(PutObject="NoSuchBucket"), "gone", "db/", endpoint)
    with pytest.raises(s3lib.S3Error, match="does not take a write .XMinioStorageFull"):
        s3lib.require_writable(FakeS3(PutObject="XMinioStorageFull"), "nf-backups", "db/", endpoint)
    add_only = s3lib.require_writable(FakeS3(DeleteObject="AccessDenied"), "nf-backups", "db/", endpoint)
    assert len(add_only) == 1 and "stays: the credentials may not delete" in add_only[0]


def test_check_mode_asks_whether_the_bucket_exists_and_writes_nothing():
    endpoint = "http://127.0.0.1:9000"
    ok = FakeS3()
    assert s3lib.require_writable(ok, "nf-backups", "db/", endpoint, probe=False) == [] and ok.calls == [("HeadBucket", None)]
    with pytest.raises(s3lib.S3Error, match="bucket gone does not exist"):
        s3lib.require_writable(FakeS3(HeadBucket="404"), "gone", "db/", endpoint, probe=False)
    denied = s3lib.require_writable(FakeS3(HeadBucket="AccessDenied"), "nf-backups", "db/", endpoint, probe=False)
    assert len(denied) == 1 and "the run checks it with a write" in denied[0]


@pytest.mark.parametrize("endpoint, refused", [
    ("http://backup.example.net:9000", True),  # plain http across the network: the keys' signatures and the dumps
    ("http://10.0.0.5:9000", True),
    ("ftp://127.0.0.1:9000", True),
    ("https://backup.example.net", False),
    ("http://127.0.0.1:9000", False),
    ("http://localhost:9000", False),
    ("http://[::1]:9000", False),
])
def test_plain_http_goes_only_to_the_loopback_address(endpoint, refused):
    given = {"endpoint_url": endpoint, "access_key": "x", "secret_key": "y"}
    if refused:
        with pytest.raises(s3lib.S3Error, match="nothing was sent"):
            s3lib.settings_from_env({}, given)
    else:
        assert s3lib.settings_from_env({}, given)["endpoint_url"] == endpoint


class DownloadingS3(object):
    """An S3 client whose object holds content and claims sha256 in its metadata (or nothing)."""

    def __init__(self, content, claimed=None):
        self.content, self.claimed = content, claimed

    def head_object(self, Bucket, Key):
        return {"Metadata": {"sha256": self.claimed} if self.claimed else {}}

    def download_fileobj(self, bucket, key, handle, Config=None):
        handle.write(self.content)


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("claimed, expected, unchecked_ok, problem", [
    (None, None, False, "carries no sha256 metadata to check it against"),
    (sha(b"other"), None, False, "its metadata says " + sha(b"other")),
    (None, sha(b"other"), False, "its manifest says " + sha(b"other")),
    (sha(b"data"), sha(b"other"), False, "its manifest says " + sha(b"other")),
    (sha(b"other"), sha(b"data"), True, "its metadata says " + sha(b"other")),
])
def test_a_download_that_cannot_be_checked_or_does_not_match_is_not_kept(tmp_path, claimed, expected, unchecked_ok, problem):
    dest = tmp_path / "copy.dump"
    dest.write_bytes(b"what was here")
    with pytest.raises(s3lib.S3Error, match=re.escape(problem) + ".*: not kept"):
        s3lib.download(DownloadingS3(b"data", claimed), "nf-backups", "db/copy.dump", str(dest), expected, unchecked_ok)
    assert dest.read_bytes() == b"what was here" and os.listdir(str(tmp_path)) == ["copy.dump"]


def test_a_download_is_kept_when_it_matches_or_when_unchecked_is_allowed(tmp_path):
    dest = tmp_path / "copy.dump"
    assert s3lib.download(DownloadingS3(b"data", sha(b"data")), "b", "k", str(dest), sha(b"data")) == (sha(b"data"), True)
    assert dest.read_bytes() == b"data" and oct(dest.stat().st_mode & 0o777) == "0o600"
    assert s3lib.download(DownloadingS3(b"raw"), "b", "k", str(dest), unchecked_ok=True) == (sha(b"raw"), False)
