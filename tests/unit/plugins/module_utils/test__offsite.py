"""Offsite copies through the real _s3 and _offsite_key code over an in-memory bucket: what the operator's
key keeps from whoever can read or write the bucket, and what a download never overwrites."""
import base64
import hashlib
import io
import json
import os

import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _backup as bk
from ansible_collections.nfamily.ops.plugins.module_utils import _offsite as offsite
from ansible_collections.nfamily.ops.plugins.module_utils import _offsite_key as okey
from ansible_collections.nfamily.ops.plugins.module_utils import _s3 as s3lib

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode()
NAME = "nself_family_x.dump"
SECRET_ROWS = b"PGDMP family-photo-of-the-kids " * 1000


class Bucket(object):
    """The S3 client calls _s3 makes, over a dict {key: (body, metadata)}. Reads and writes go in odd
    chunk sizes, as a transfer's parts do not fall on the cipher's boundaries."""

    def __init__(self):
        self.objects, self.downloads = {}, []

    def upload_file(self, path, bucket, key, ExtraArgs, Config):
        with open(path, "rb") as handle:
            self.objects[key] = (handle.read(), dict(ExtraArgs["Metadata"]))

    def upload_fileobj(self, handle, bucket, key, ExtraArgs, Config):
        self.objects[key] = (b"".join(iter(lambda: handle.read(1000), b"")), dict(ExtraArgs["Metadata"]))

    def head_object(self, Bucket, Key):
        body, metadata = self.objects[Key]
        return {"ContentLength": len(body), "Metadata": metadata}

    def download_file(self, bucket, key, path, Config):
        self.downloads.append(key)
        with open(path, "wb") as handle:
            handle.write(self.objects[key][0])

    def download_fileobj(self, bucket, key, handle, Config):
        self.downloads.append(key)
        body = self.objects[key][0]
        for start in range(0, len(body), 777):
            handle.write(body[start:start + 777])

    def get_object(self, Bucket, Key):
        return {"Body": io.BytesIO(self.objects[Key][0])}

    def put_object(self, Bucket, Key, Body, Metadata=None):
        self.objects[Key] = (Body, dict(Metadata or {}))

    def get_paginator(self, name):
        return self

    def paginate(self, Bucket, Prefix):
        return [{"Contents": [{"Key": k} for k in sorted(self.objects) if k.startswith(Prefix)]}]

    def manifest(self, name=NAME):
        return json.loads(self.objects["db/" + name + bk.MANIFEST_SUFFIX][0])

    def put_manifest(self, manifest, name=NAME):
        self.objects["db/" + name + bk.MANIFEST_SUFFIX] = (json.dumps(manifest).encode(), {})


def local_backup(directory, name=NAME, content=SECRET_ROWS, finished_at="2026-11-27T01:00:00Z"):
    path = directory / name
    path.write_bytes(content)
    manifest = {"producer": bk.PRODUCER, "file": name, "sha256": hashlib.sha256(content).hexdigest(), "size": len(content),
                "finished_at": finished_at, "database": "nself_family", "row_counts": {}}
    (directory / (name + bk.MANIFEST_SUFFIX)).write_text(json.dumps(manifest))
    return bk.read_manifest(str(path) + bk.MANIFEST_SUFFIX)


@pytest.fixture
def dirs(tmp_path):
    """(the backups directory of the host that took them, an empty one of the host that lost them)"""
    (tmp_path / "taken").mkdir()
    (tmp_path / "lost").mkdir()
    return tmp_path / "taken", tmp_path / "lost"


def copied(bucket, taken, key=KEY, **backup):
    manifest = local_backup(taken, **backup)
    return offsite.copy(s3lib, bucket, manifest, "nf-backups", "db/", okey.OffsiteKey(key) if key else None)


def fetch(bucket, lost, source=NAME, key=KEY, warn=lambda message: None, prefix="db/"):
    return offsite.fetch(s3lib, bucket, "nf-backups", prefix, source, str(lost), warn, okey.OffsiteKey(key) if key else None)


# ---------------------------------------------------------------- the key

@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(b"short").decode(), base64.b64encode(bytes(33)).decode()])
def test_a_key_that_is_not_32_base64_bytes_is_refused_saying_how_to_make_one(text):
    with pytest.raises(okey.OffsiteKeyError, match=r"32 random bytes in base64 .*openssl rand -base64 32"):
        okey.OffsiteKey(text)


def test_the_key_id_names_the_key_without_revealing_it():
    key = okey.OffsiteKey(KEY)
    assert key.key_id == okey.OffsiteKey(" %s\n" % KEY).key_id != okey.OffsiteKey(OTHER_KEY).key_id
    assert len(key.key_id) == 16 and key.key_id not in base64.b64decode(KEY).hex()


def test_offsite_copies_need_the_key_unless_plaintext_is_allowed():
    with pytest.raises(okey.OffsiteKeyError, match="offsite copies need the operator's key: set offsite.encryption_key"):
        okey.from_offsite({"bucket": "nf-backups", "encryption_key": None, "allow_plaintext": False})
    assert okey.from_offsite({"encryption_key": "", "allow_plaintext": True}) is None
    assert okey.from_offsite({"encryption_key": KEY, "allow_plaintext": True}).key_id == okey.OffsiteKey(KEY).key_id


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 65535, 65536, 200001])
@pytest.mark.parametrize("read_size", [1, 7, 4096, -1])
def test_the_sealed_stream_opens_to_the_same_bytes_whatever_the_chunking(size, read_size):
    key, plain = okey.OffsiteKey(KEY), os.urandom(size)
    reader = key.encrypting_reader(io.BytesIO(plain), NAME)
    sealed = b"".join(iter(lambda: reader.read(read_size), b""))
    assert len(sealed) == size + okey.OVERHEAD and (size < 16 or plain[:16] not in sealed)
    out = io.BytesIO()
    writer = key.decrypting_writer(out, NAME)
    for start in range(0, len(sealed), 5):
        writer.write(sealed[start:start + 5])
    assert writer.finish() == hashlib.sha256(plain).hexdigest() and out.getvalue() == plain


def test_a_read_to_the_end_returns_the_whole_sealed_stream():
    reader = okey.OffsiteKey(KEY).encrypting_reader(io.BytesIO(SECRET_ROWS), NAME)
    assert len(reader.read()) == len(SECRET_ROWS) + okey.OVERHEAD and reader.read() == b""


def test_a_manifest_whose_mac_is_not_ascii_is_refused_not_a_crash():
    signed = okey.OffsiteKey(KEY).sign({"file": NAME})
    signed["authentication"]["mac"] = "\u00e9" * 64
    with pytest.raises(okey.OffsiteKeyError, match="fails its HMAC"):
        okey.OffsiteKey(KEY).check(signed, "m")


def opened(sealed, key=KEY, name=NAME):
    writer = okey.OffsiteKey(key).decrypting_writer(io.BytesIO(), name)
    writer.write(sealed)
    return writer.finish()


def test_a_sealed_stream_changed_renamed_cut_or_opened_with_another_key_fails():
    sealed = b"".join(iter(okey.OffsiteKey(KEY).encrypting_reader(io.BytesIO(SECRET_ROWS), NAME).read, b""))
    flipped = bytearray(sealed)
    flipped[len(sealed) // 2] ^= 1
    for bad, how in ((bytes(flipped), {}), (sealed, {"name": "other.dump"}), (sealed, {"key": OTHER_KEY}), (sealed[:-1], {})):
        with pytest.raises(okey.OffsiteKeyError):
            opened(bad, **how)
    assert opened(sealed) == hashlib.sha256(SECRET_ROWS).hexdigest()


def test_a_signed_manifest_fails_once_any_field_changes():
    key = okey.OffsiteKey(KEY)
    signed = key.sign({"file": NAME, "sha256": "a" * 64, "size": 3})
    key.check(signed, "m")
    for change in ({"sha256": "b" * 64}, {"file": "other.dump"}, {"drill": {"result": "passed"}}):
        with pytest.raises(okey.OffsiteKeyError, match="fails its HMAC"):
            key.check(dict(signed, **change), "m")
    with pytest.raises(okey.OffsiteKeyError, match="signed with offsite key .*, not with the key given"):
        okey.OffsiteKey(OTHER_KEY).check(signed, "m")
    with pytest.raises(okey.OffsiteKeyError, match="is not authenticated"):
        key.check({"file": NAME}, "m")


# ---------------------------------------------------------------- copies and fetches

def test_the_bucket_holds_only_ciphertext_and_a_signed_manifest_and_the_copy_comes_back(dirs):
    taken, lost = dirs
    bucket = Bucket()
    location = copied(bucket, taken)
    body, metadata = bucket.objects["db/" + NAME]
    assert b"family-photo" not in body and len(body) == len(SECRET_ROWS) + okey.OVERHEAD
    key_id = okey.OffsiteKey(KEY).key_id
    assert metadata == {"sha256": hashlib.sha256(SECRET_ROWS).hexdigest(), "encryption": "AES-256-GCM", "key-id": key_id}
    assert location["encryption"] == {"algorithm": "AES-256-GCM", "key_id": key_id}
    assert bucket.manifest()["authentication"]["key_id"] == key_id
    assert json.loads((taken / (NAME + bk.MANIFEST_SUFFIX)).read_text())["offsite"] == {
        "bucket": "nf-backups", "key": "db/" + NAME, "encryption": {"algorithm": "AES-256-GCM", "key_id": key_id}}
    fetched = fetch(bucket, lost)
    assert (lost / NAME).read_bytes() == SECRET_ROWS and fetched["sha256"] == metadata["sha256"]
    bk.check_file(fetched)
    assert oct(os.stat(str(lost / NAME)).st_mode & 0o777) == "0o600"


def test_a_manifest_the_bucket_writer_forged_is_refused_by_name_and_skipped_by_latest(dirs):
    taken, lost = dirs
    bucket = Bucket()
    copied(bucket, taken, name="sealed.dump", finished_at="2026-11-26T01:00:00Z")
    planted = (b"PGDMP planted", {"sha256": hashlib.sha256(b"PGDMP planted").hexdigest()})
    bucket.objects["db/" + NAME] = planted
    forged = dict(bucket.manifest("sealed.dump"), file=NAME, sha256=planted[1]["sha256"], finished_at="2026-11-28T01:00:00Z")
    bucket.put_manifest(forged)
    with pytest.raises(bk.BackupError, match="fails its HMAC"):
        fetch(bucket, lost)
    del forged["authentication"]
    bucket.put_manifest(forged)
    with pytest.raises(bk.BackupError, match="is not authenticated"):
        fetch(bucket, lost)
    warnings = []
    assert fetch(bucket, lost, "latest", warn=warnings.append)["file"] == "sealed.dump"
    assert warnings == ["latest skipped 1 manifest(s) under s3://nf-backups/db/: s3://nf-backups/db/%s%s is not authenticated "
                        "(no HMAC): it was not written with an offsite key, or someone who can write the bucket replaced it"
                        % (NAME, bk.MANIFEST_SUFFIX)]
    assert sorted(os.listdir(str(lost))) == ["sealed.dump", "sealed.dump" + bk.MANIFEST_SUFFIX]


def test_a_sealed_object_swapped_for_another_sealed_one_is_not_kept(dirs):
    """Both were sealed with the key, but the object under one name is the other's: its tag fails."""
    taken, lost = dirs
    bucket = Bucket()
    copied(bucket, taken, name="a.dump", content=b"PGDMP a" * 100)
    copied(bucket, taken, name="b.dump", content=b"PGDMP b" * 100)
    bucket.objects["db/a.dump"] = bucket.objects["db/b.dump"]
    with pytest.raises(s3lib.S3Error, match="fails its authentication tag.*nothing was kept"):
        fetch(bucket, lost, "a.dump")
    assert os.listdir(str(lost)) == []


def test_a_manifest_copied_under_another_name_is_refused_before_any_download(dirs):
    taken, lost = dirs
    bucket = Bucket()
    copied(bucket, taken)
    bucket.put_manifest(bucket.manifest(), "renamed.dump")
    with pytest.raises(bk.BackupError, match="names the file 'nself_family_x.dump', not the one beside it"):
        fetch(bucket, lost, "renamed.dump")
    assert bucket.downloads == [] and os.listdir(str(lost)) == []


def test_without_the_key_an_encrypted_copy_is_refused_naming_its_key_id(dirs):
    taken, lost = dirs
    bucket = Bucket()
    copied(bucket, taken)
    with pytest.raises(s3lib.S3Error, match="is encrypted with offsite key %s and no key was given: give that key" % okey.OffsiteKey(KEY).key_id):
        fetch(bucket, lost, key=None)
    assert os.listdir(str(lost)) == []


def test_with_the_key_a_plaintext_copy_is_not_brought_back(dirs):
    taken, lost = dirs
    bucket = Bucket()
    copied(bucket, taken, key=None)
    assert "authentication" not in bucket.manifest() and bucket.objects["db/" + NAME][0] == SECRET_ROWS
    with pytest.raises(bk.BackupError, match="is not authenticated"):
        fetch(bucket, lost)
    assert fetch(bucket, lost, key=None)["sha256"] == hashlib.sha256(SECRET_ROWS).hexdigest()  # allow_plaintext


def test_a_drill_record_is_signed_again(dirs):
    taken, lost = dirs
    bucket = Bucket()
    copied(bucket, taken)
    manifest = fetch(bucket, lost)
    manifest["drill"] = {"result": "passed"}
    offsite.put_manifest(s3lib, bucket, "nf-backups", "db/" + NAME + bk.MANIFEST_SUFFIX, manifest, okey.OffsiteKey(KEY))
    okey.OffsiteKey(KEY).check(bucket.manifest(), "m")
    assert bucket.manifest()["drill"] == {"result": "passed"}


def test_an_offsite_copy_never_overwrites_a_local_backup_of_the_same_name(dirs):
    taken, lost = dirs
    bucket = Bucket()
    copied(bucket, taken)
    local = local_backup(lost, content=b"PGDMP-local")["path"]
    os.unlink(local + bk.MANIFEST_SUFFIX)  # a file of that name, whatever wrote it
    with pytest.raises(bk.BackupError, match="is a local backup of the same name with other contents .* nothing was overwritten"):
        fetch(bucket, lost)
    assert open(local, "rb").read() == b"PGDMP-local" and bucket.downloads == []
    assert not os.path.exists(local + bk.MANIFEST_SUFFIX)


def test_an_offsite_copy_is_brought_once_and_the_same_local_backup_keeps_its_manifest(dirs):
    taken, lost = dirs
    bucket = Bucket()
    copied(bucket, taken)
    fetched = fetch(bucket, lost)
    assert fetched["sha256"] == bucket.manifest()["sha256"] and bucket.downloads == ["db/" + NAME]
    local_manifest = lost / (NAME + bk.MANIFEST_SUFFIX)
    local_manifest.write_text(json.dumps(dict(bk.stored(fetched), drill={"result": "passed"})))
    again = fetch(bucket, lost)
    assert bucket.downloads == ["db/" + NAME] and again["drill"] == {"result": "passed"}


def test_a_surviving_local_manifest_decides_what_the_offsite_copy_must_be(dirs):
    """The dump is lost, its manifest is not: a bucket naming another sha256 is refused, nothing downloaded,
    and the local manifest is never overwritten with the bucket's."""
    taken, lost = dirs
    bucket = Bucket()
    copied(bucket, taken, content=b"PGDMP-other-night")
    local = local_backup(lost, content=b"PGDMP-taken-here")["path"]
    os.unlink(local)
    kept = open(local + bk.MANIFEST_SUFFIX).read()
    with pytest.raises(bk.BackupError, match="the local manifest .* names sha256 .* nothing was downloaded or overwritten"):
        fetch(bucket, lost)
    assert bucket.downloads == [] and open(local + bk.MANIFEST_SUFFIX).read() == kept and not os.path.exists(local)


def test_a_signed_copy_moved_from_another_prefix_does_not_count(dirs):
    """staging and prod share the key and the file names: a bucket writer copies staging's newer backup
    into prod's prefix. Its manifest was signed for staging's key, and its object sealed under it."""
    taken, lost = dirs
    bucket = Bucket()
    copied(bucket, taken, finished_at="2026-11-26T01:00:00Z")
    staging = okey.OffsiteKey(KEY)
    other = local_backup(taken, name="newer.dump", content=b"PGDMP staging", finished_at="2026-11-28T01:00:00Z")
    offsite.copy(s3lib, bucket, other, "nf-backups", "staging/", staging)
    for suffix in ("", bk.MANIFEST_SUFFIX):
        bucket.objects["db/newer.dump" + suffix] = bucket.objects["staging/newer.dump" + suffix]
    with pytest.raises(bk.BackupError, match="was signed for staging/newer.dump, not for this place"):
        fetch(bucket, lost, "newer.dump")
    warnings = []
    assert fetch(bucket, lost, "latest", warn=warnings.append)["file"] == NAME and "signed for staging/newer.dump" in warnings[0]
    forged = dict(bucket.manifest("newer.dump"))  # even re-signed for db/, the object stays sealed for staging/
    forged["offsite"] = dict(forged["offsite"], key="db/newer.dump")
    bucket.put_manifest(staging.sign(forged), "newer.dump")
    with pytest.raises(s3lib.S3Error, match="fails its authentication tag"):
        fetch(bucket, lost, "newer.dump")
    assert not os.path.exists(str(lost / "newer.dump"))


def test_a_download_that_breaks_midway_leaves_nothing(dirs, monkeypatch):
    taken, lost = dirs
    bucket = Bucket()
    copied(bucket, taken)

    def broken(bucket_name, key, handle, Config):
        handle.write(bucket.objects[key][0][:5000])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bucket, "download_fileobj", broken)
    with pytest.raises(s3lib.S3Error, match=r"downloading s3://nf-backups/db/%s failed \(.*No space left.*\): nothing was kept" % NAME):
        fetch(bucket, lost)
    assert os.listdir(str(lost)) == []


def test_a_copy_larger_than_one_gcm_message_is_refused_before_anything_is_sent(dirs, monkeypatch):
    taken, lost = dirs
    bucket = Bucket()
    monkeypatch.setattr(okey.OffsiteKey, "max_size", 100)
    with pytest.raises(s3lib.S3Error, match="more than one AES-256-GCM object may seal .*nothing was sent"):
        copied(bucket, taken)
    assert bucket.objects == {}


def test_a_stream_of_known_size_gets_parts_large_enough_for_s3s_ten_thousand():
    assert s3lib.transfer_config(100 << 20).multipart_chunksize == s3lib.PART_SIZE
    big = 200 << 30  # 200 GiB
    chunk = s3lib.transfer_config(big).multipart_chunksize
    assert -(-big // chunk) < 10000 and chunk % (1 << 20) == 0


def test_a_stream_reads_ahead_two_parts_whatever_its_size():
    """A stream's parts wait in memory for an upload thread: few of them, so the offsite copy's memory stays bounded."""
    assert s3lib.transfer_config(100 << 20).max_in_memory_upload_chunks == 2
    assert s3lib.transfer_config(200 << 30).max_in_memory_upload_chunks == 2


def test_a_drill_without_the_key_leaves_the_signed_manifest_of_a_sealed_copy_alone(dirs):
    taken, lost = dirs
    bucket = Bucket()
    copied(bucket, taken)
    signed = bucket.manifest()
    manifest = fetch(bucket, lost)
    manifest["drill"] = {"result": "passed"}
    assert not offsite.put_manifest(s3lib, bucket, "nf-backups", "db/" + NAME + bk.MANIFEST_SUFFIX, manifest, None)
    assert bucket.manifest() == signed
