"""Argument checks of the database modules (bad input fails before anything runs), and what a restore
and a drill conclude from what they read."""
import json
import re

import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _pitr as pitr
from ansible_collections.nfamily.ops.plugins.modules import db_backup, db_migration, db_pitr, db_restore, db_wal_archive


def project(tmp_path):
    (tmp_path / ".env").write_text("ENV=prod\nPOSTGRES_DB=nself_family\n")
    (tmp_path / "backups").mkdir(exist_ok=True)
    return str(tmp_path)


def test_restore_of_a_missing_backup_runs_nothing(run_module, tmp_path):
    result, calls = run_module(db_restore.main, {"project_dir": project(tmp_path), "source": "nope.dump"})
    assert result["failed"] and "does not exist" in result["msg"] and calls == []


def test_restore_verified_state_checks_only_the_file(run_module, tmp_path):
    result, calls = run_module(db_restore.main, {"project_dir": project(tmp_path), "source": "latest", "state": "verified"})
    assert result["failed"] and "no verified backup" in result["msg"] and calls == []


def test_restore_refuses_a_container_tmp_that_is_not_a_plain_path(run_module, tmp_path):
    result, calls = run_module(db_restore.main, {"project_dir": project(tmp_path), "source": "latest", "container_tmp": "/tmp/$(x)"})
    assert result["failed"] and "container_tmp" in result["msg"] and calls == []


def test_backup_refuses_bad_retention_and_compression(run_module, tmp_path):
    result, calls = run_module(db_backup.main, {"project_dir": project(tmp_path), "keep_count": -1})
    assert result["failed"] and "keep_count" in result["msg"] and calls == []
    result, calls = run_module(db_backup.main, {"project_dir": project(tmp_path), "compress": 12})
    assert result["failed"] and "compress" in result["msg"] and calls == []


def test_migration_refuses_a_non_numeric_version(run_module, tmp_path):
    result, calls = run_module(db_migration.main, {"project_dir": project(tmp_path), "version": "ten"})
    assert result["failed"] and "not a number" in result["msg"] and calls == []


def test_transaction_control_detection():
    assert db_migration.TRANSACTION_CONTROL_RE.search("BEGIN;\nDROP TABLE x;\nCOMMIT;\n")
    assert not db_migration.TRANSACTION_CONTROL_RE.search("DROP TABLE IF EXISTS begin_dates;\n-- commit later\n")


class Scratch:
    """A restored database as differences() reads it."""

    def __init__(self, counts, migrations, sums):
        self.counts, self.migrations, self.sums = counts, migrations, sums

    def row_counts(self, tables):
        return dict((t, self.counts[t]) for t in tables if t in self.counts)

    def migration_state(self):
        return self.migrations

    def table_checksums(self, tables):
        return dict((t, self.sums[t]) for t in tables if t in self.sums)


MANIFEST = {"row_counts": {"public.users": 9, "public.families": 2}, "migrations": {"_migrations": {"applied": 5}},
            "checksums": {"public.users": "111", "public.families": "222"}}


def test_differences_name_each_table_that_does_not_match():
    same = Scratch({"public.users": 9, "public.families": 2}, {"_migrations": {"applied": 5}}, {"public.users": "111", "public.families": "222"})
    assert db_restore.differences(same, MANIFEST, checksums=True) == []
    edited = Scratch({"public.users": 9, "public.families": 2}, {"_migrations": {"applied": 5}}, {"public.users": "999", "public.families": "222"})
    assert db_restore.differences(edited, MANIFEST) == []  # counts and migrations only, as a restore checks
    assert db_restore.differences(edited, MANIFEST, checksums=True) == [
        "public.users content differs from the backup's (checksum 999, the manifest says 111)"]
    short = Scratch({"public.users": 8, "public.families": 2}, {"_migrations": {"applied": 4}}, {"public.users": "5", "public.families": "222"})
    assert db_restore.differences(short, MANIFEST, checksums=True) == [
        "public.users has 8 rows, the manifest says 9", "migrations {'_migrations': {'applied': 4}}, the manifest says "
        "{'_migrations': {'applied': 5}}"]


def test_drill_of_a_backup_without_checksums_compares_counts_and_migrations():
    old = dict(MANIFEST, checksums={})
    same = Scratch({"public.users": 9, "public.families": 2}, {"_migrations": {"applied": 5}}, {})
    assert db_restore.differences(same, old, checksums=True) == []


class FailingPg:
    """A postgres container whose pg_restore fails with a given error."""

    def __init__(self, error):
        self.error, self.user, self.database, self.ran = error, "postgres", "nself_family", []

    def feed(self, tool, path):
        self.ran.append(tool)

    def run(self, tool):
        self.ran.append(tool)
        if tool[0] == "env":
            raise db_restore.PostgresError("pg_restore failed (rc 1): " + self.error)


class Admin:
    def __init__(self):
        self.sql = []

    def query(self, *statements):
        self.sql.extend(statements)
        return [["UTF8", "C.UTF-8", "C.UTF-8"]]


@pytest.mark.parametrize("error,blamed", [
    ("pg_restore: error: could not read from input file: end of file", True),
    ("pg_restore: error: did not find magic string in file header", True),
    ("pg_restore: error: could not extend file \"base/16384/2619\": No space left on device", False),
    ("FATAL:  sorry, too many clients already", False),
])
def test_a_restore_failure_blames_the_archive_only_when_it_is_the_archive(error, blamed):
    pg = FailingPg(error)
    with pytest.raises(db_restore.ArchiveError if blamed else db_restore.PostgresError):
        db_restore.restore_into_scratch(pg, Admin(), {"sha256": "a" * 64, "path": "/b.dump"}, "scratch", 2, "/tmp")
    assert pg.ran[-1][:2] == ["rm", "-f"]  # the archive copy is removed either way


def test_the_archive_copy_in_the_container_has_a_name_no_one_can_plant_and_is_never_written_through():
    """Issue 17, item 8: the copy went to the predictable /tmp/nfamily-restore-<sha>.dump, written through a link."""
    names = []
    for _attempt in range(2):
        pg = FailingPg("pg_restore: error: did not find magic string in file header")
        with pytest.raises(db_restore.ArchiveError):
            db_restore.restore_into_scratch(pg, Admin(), {"sha256": "a" * 64, "path": "/b.dump"}, "scratch", 2, "/tmp")
        copy = pg.ran[0]
        assert copy[:3] == ["sh", "-c", 'umask 077 && set -C && cat > "$1"'] and pg.ran[-1] == ["rm", "-f", copy[-1]]
        names.append(copy[-1])
    assert names[0] != names[1] and not [name for name in names if "a" * 12 in name]
    assert all(re.match(r"^/tmp/nfamily-restore-[0-9a-f]{24}\.dump$", name) for name in names)


class FakeDatabase:
    env = {"MINIO_ROOT_USER": "minio-user", "MINIO_ROOT_PASSWORD": "minio-secret"}
    database = "nself_family"
    commands = []

    def database_size(self):
        return 0


@pytest.fixture
def offsite_backup(monkeypatch, tmp_path):
    """db_backup with the database and the object store stood in for: returns the files the dump wrote."""
    import os

    dumped = []

    def take_backup(pg, dest, name, *rest):
        path = os.path.join(dest, name)
        with open(path, "wb") as handle:
            handle.write(b"dump")
        dumped.append(path)
        return {"path": path, "file": name, "sha256": "ab" * 32}

    monkeypatch.setattr(db_backup, "project_database", lambda module: FakeDatabase())
    monkeypatch.setattr(db_backup.s3lib, "client", lambda settings: object())
    monkeypatch.setattr(db_backup.bk, "take_backup", take_backup)
    return dumped


OFFSITE_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes 0..31, a test key


def test_an_offsite_copy_without_the_operators_key_is_refused_before_the_dump(run_module, tmp_path, offsite_backup):
    """Issue 17, item 7: a copy goes up encrypted, or unencrypted only when the operator says so."""
    for offsite, message in (({"bucket": "nf-backups"}, "offsite copies need the operator's key"),
                             ({"bucket": "nf-backups", "encryption_key": "hunter2hunter2"}, "must be 32 random bytes in base64")):
        result = run_module(db_backup.main, {"project_dir": project(tmp_path), "name": "n.dump", "offsite": offsite})[0]
        assert result["failed"] and message in result["msg"] and offsite_backup == []
        assert "hunter2" not in json.dumps(result)


def test_an_offsite_bucket_that_does_not_take_a_write_is_refused_before_the_dump(run_module, tmp_path, monkeypatch,
                                                                                 offsite_backup):
    def refuse(s3, bucket, prefix, endpoint, probe=True):
        raise db_backup.s3lib.S3Error("bucket %s does not exist at %s" % (bucket, endpoint))

    monkeypatch.setattr(db_backup.s3lib, "require_writable", refuse)
    result = run_module(db_backup.main, {"project_dir": project(tmp_path), "name": "n.dump",
                                         "offsite": {"bucket": "no-such-bucket-xyz", "encryption_key": OFFSITE_KEY}})[0]
    assert result["failed"] and "bucket no-such-bucket-xyz does not exist" in result["msg"]
    assert "Nothing was dumped" in result["msg"] and offsite_backup == []


def test_an_offsite_copy_that_fails_after_the_dump_keeps_the_local_backup_and_says_so(run_module, tmp_path, monkeypatch,
                                                                                      offsite_backup):
    import os

    def copy_offsite(*args):
        raise db_backup.s3lib.S3Error("uploading to s3://nf-backups/db/n.dump failed (NoSuchBucket: gone)")

    monkeypatch.setattr(db_backup.s3lib, "require_writable", lambda *args, **kwargs: [])
    monkeypatch.setattr(db_backup.offsite, "copy", copy_offsite)
    result = run_module(db_backup.main, {"project_dir": project(tmp_path), "name": "n.dump",
                                         "offsite": {"bucket": "nf-backups", "encryption_key": OFFSITE_KEY}})[0]
    kept = os.path.join(str(tmp_path), "backups", "n.dump")
    assert result["failed"] and "NoSuchBucket" in result["msg"]
    assert "The local backup %s is kept (sha256 %s)" % (kept, "ab" * 32) in result["msg"] and os.path.isfile(kept)
    assert "minio-secret" not in str(result) and OFFSITE_KEY not in json.dumps(result)


def test_the_wal_archive_diff_of_an_existing_override_shows_only_the_mount_it_adds():
    """Issue 17, item 6: an override may carry environment secrets, and AWX keeps every result."""
    current = "services:\n  api:\n    environment:\n      STRIPE_SECRET_KEY: sk_live_hunter2\n"
    new = pitr.override_text(current, "postgres", "./backups/wal", pitr.ARCHIVE_MOUNT)
    assert "sk_live_hunter2" in new  # the file keeps it
    diff = db_wal_archive.override_diff("/p/docker-compose.override.yml", current, new, "postgres", "./backups/wal",
                                        pitr.ARCHIVE_MOUNT)
    shown = "".join(str(value) for value in diff.values())
    assert "sk_live_hunter2" not in shown and "STRIPE" not in shown
    assert diff["after"] == "services:\n  postgres:\n    volumes:\n      - ./backups/wal:%s\n" % pitr.ARCHIVE_MOUNT
    assert "only the mount added" in diff["before_header"]
    fresh = db_wal_archive.override_diff("/p/o.yml", None, "whole file\n", "postgres", "./backups/wal", pitr.ARCHIVE_MOUNT)
    assert fresh["after"] == "whole file\n"  # written by the module: nothing but the mount


@pytest.mark.parametrize("main", [db_wal_archive.main, db_pitr.main])
def test_an_archive_mount_with_shell_syntax_is_refused_before_anything_runs(run_module, tmp_path, main):
    result, calls = run_module(main, {"project_dir": project(tmp_path), "archive_mount": "/wal;reboot"})
    assert result["failed"] and "archive_mount '/wal;reboot' must be an absolute path" in result["msg"] and calls == []
