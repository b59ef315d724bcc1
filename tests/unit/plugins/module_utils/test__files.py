import datetime
import os
import stat
import time

import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _files as files

NOW = datetime.datetime(2026, 11, 27, 1, 0, 0, tzinfo=datetime.timezone.utc)


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def test_write_atomic_replaces_whole_files_privately(tmp_path):
    path = tmp_path / "state" / "x.json"
    files.write_json(str(path), {"a": 1})
    files.write_atomic(str(path), "two\n")
    assert path.read_text() == "two\n" and mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert os.listdir(str(path.parent)) == ["x.json"]  # no temp file left


def test_write_atomic_keeps_the_owner_and_takes_the_mode_asked(tmp_path):
    path = tmp_path / "docker-compose.override.yml"
    path.write_text("old")
    before = os.stat(str(path))
    files.write_atomic(str(path), b"new", 0o644)
    after = os.stat(str(path))
    assert path.read_bytes() == b"new" and mode(path) == 0o644
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)


def test_write_atomic_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "x"
    path.write_text("old")

    def no_space(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "rename", no_space)
    with pytest.raises(OSError):
        files.write_atomic(str(path), "new")
    assert path.read_text() == "old" and os.listdir(str(tmp_path)) == ["x"]


def test_partial_file_exists_under_its_name_only_when_complete(tmp_path):
    dest = tmp_path / "b.dump"
    with files.PartialFile(str(dest)) as part:
        part.handle.write(b"data")
        part.sync()
        assert os.path.basename(part.path) == ".b.dump.partial" and not dest.exists()
    assert dest.read_bytes() == b"data" and mode(dest) == 0o600
    with pytest.raises(ValueError):
        with files.PartialFile(str(tmp_path / "c.dump")) as part:
            part.handle.write(b"half")
            raise ValueError("the dump failed")
    assert sorted(os.listdir(str(tmp_path))) == ["b.dump"]


def test_backup_copy_never_overwrites(tmp_path):
    path = tmp_path / ".env.secrets"
    path.write_text("K=1\n")
    first = files.backup_copy(str(path), NOW)
    second = files.backup_copy(str(path), NOW)
    assert first != second and open(first).read() == open(second).read() == "K=1\n"
    assert mode(first) == 0o600


def test_abandoned_partials_are_those_no_process_holds_open(tmp_path):
    held = tmp_path / ".a.dump.partial"
    left = tmp_path / ".b.dump.partial"
    other = tmp_path / "c.dump"
    for path in (held, left, other):
        path.write_bytes(b"x")
    with open(str(held), "ab"):
        assert files.abandoned_partials(str(tmp_path)) == [str(left)]
    assert files.abandoned_partials(str(tmp_path)) == [str(held), str(left)]


def test_abandoned_partials_by_age_where_proc_cannot_tell(tmp_path):
    old = tmp_path / ".a.dump.partial"
    fresh = tmp_path / ".b.dump.partial"
    for path, age in ((old, 7200), (fresh, 60)):
        path.write_bytes(b"x")
        os.utime(str(path), (time.time() - age, time.time() - age))
    assert files.abandoned_partials(str(tmp_path), max_age_s=3600, proc=str(tmp_path / "no-proc")) == [str(old)]


def test_ensure_dir_gives_every_directory_it_creates_the_mode(tmp_path):
    old = os.umask(0o022)
    try:
        files.ensure_dir(str(tmp_path / "nfamily-ops" / "locks"))
    finally:
        os.umask(old)
    assert oct(os.stat(str(tmp_path / "nfamily-ops")).st_mode & 0o777) == "0o700"
    assert oct(os.stat(str(tmp_path / "nfamily-ops" / "locks")).st_mode & 0o777) == "0o700"
    files.ensure_dir(str(tmp_path / "nfamily-ops"))  # existing: nothing to do
