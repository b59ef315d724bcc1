import datetime
import hashlib
import json
import os

import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _backup as bk

NOW = datetime.datetime(2026, 11, 27, 2, 0, 0, tzinfo=datetime.timezone.utc)


def write_backup(directory, name, content=b"PGDMP-data", finished_at="2026-11-27T01:00:00Z", producer=bk.PRODUCER):
    path = directory / name
    path.write_bytes(content)
    manifest = {"producer": producer, "file": name, "sha256": hashlib.sha256(content).hexdigest(), "size": len(content),
                "finished_at": finished_at, "database": "nself_family", "row_counts": {}}
    (directory / (name + bk.MANIFEST_SUFFIX)).write_text(json.dumps(manifest))
    return str(path)


def entry(name, finished_at):
    return {"file": name, "finished_at": finished_at}


def test_prune_keeps_the_newest_count():
    entries = [entry("c", "2026-11-27T01:00:00Z"), entry("b", "2026-11-26T01:00:00Z"), entry("a", "2026-11-25T01:00:00Z")]
    assert [e["file"] for e in bk.prune_plan(entries, 2, 0, NOW)] == ["a"]


def test_prune_by_age_never_removes_the_newest():
    entries = [entry("old2", "2026-01-02T00:00:00Z"), entry("old1", "2026-01-01T00:00:00Z")]
    assert [e["file"] for e in bk.prune_plan(entries, 0, 7, NOW)] == ["old1"]


def test_prune_disabled_keeps_everything():
    entries = [entry("b", "2026-01-02T00:00:00Z"), entry("a", "2026-01-01T00:00:00Z")]
    assert bk.prune_plan(entries, 0, 0, NOW) == []


def test_catalogue_lists_only_own_manifests_newest_first(tmp_path):
    write_backup(tmp_path, "a.dump", finished_at="2026-11-25T00:00:00Z")
    write_backup(tmp_path, "b.dump", finished_at="2026-11-26T00:00:00Z")
    write_backup(tmp_path, "foreign.dump", producer="someone-else")
    (tmp_path / "broken.dump.manifest.json").write_text("{not json")
    (tmp_path / "nself_db_backup.sql").write_text("-- plain")
    assert [m["file"] for m in bk.catalogue(str(tmp_path))] == ["b.dump", "a.dump"]


def plant(directory, manifest_name, names, older=True):
    """A manifest an attacker wrote: ours in every field but the file it names."""
    manifest = {"producer": bk.PRODUCER, "file": names, "sha256": "0" * 64, "size": 1,
                "finished_at": "2000-01-01T00:00:00Z" if older else "2099-01-01T00:00:00Z"}
    (directory / manifest_name).write_text(json.dumps(manifest))


@pytest.mark.parametrize("names", ["<absolute path of the victim>", "../victim", "victim", "sub/../victim", ".hidden", ""])
def test_a_planted_manifest_naming_another_file_is_never_listed_resolved_or_pruned(tmp_path, names):
    backups = tmp_path / "backups"
    backups.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("family data")
    names = str(victim) if names.startswith("<") else names  # never a real system file, should this regress
    (backups / "victim").write_text("family data")
    write_backup(backups, "a.dump", finished_at="2026-11-26T00:00:00Z")
    write_backup(backups, "b.dump", finished_at="2026-11-27T00:00:00Z")
    plant(backups, "planted.dump" + bk.MANIFEST_SUFFIX, names)
    entries = bk.catalogue(str(backups))
    assert [m["file"] for m in entries] == ["b.dump", "a.dump"]
    for doomed in bk.prune_plan(entries, 1, 0, NOW):
        bk.remove_backup(doomed)
    assert victim.read_text() == "family data" and (backups / "victim").read_text() == "family data"
    assert sorted(os.listdir(str(backups))) == ["b.dump", "b.dump.manifest.json", "planted.dump.manifest.json", "victim"]
    with pytest.raises(bk.BackupError, match="not the file beside it"):
        bk.resolve("planted.dump" + bk.MANIFEST_SUFFIX, str(backups))


def test_a_manifest_that_is_a_symbolic_link_is_not_read(tmp_path):
    write_backup(tmp_path, "real.dump")
    os.symlink(str(tmp_path / "real.dump.manifest.json"), str(tmp_path / "link.dump.manifest.json"))
    (tmp_path / "link.dump").write_bytes(b"PGDMP-data")
    assert [m["file"] for m in bk.catalogue(str(tmp_path))] == ["real.dump"]
    with pytest.raises(bk.BackupError, match="symbolic link"):
        bk.resolve("link.dump", str(tmp_path))


def test_retention_leaves_a_backup_whose_file_is_a_link_and_says_so(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("family data")
    backups = tmp_path / "backups"
    backups.mkdir()
    write_backup(backups, "old.dump")
    os.unlink(str(backups / "old.dump"))
    os.symlink(str(victim), str(backups / "old.dump"))
    entry = bk.catalogue(str(backups))[0]
    with pytest.raises(bk.BackupError, match="not a regular file"):
        bk.remove_backup(entry)
    assert victim.read_text() == "family data"
    assert (backups / "old.dump.manifest.json").exists() and os.path.islink(str(backups / "old.dump"))
    write_backup(backups, "older.dump", finished_at="2026-01-01T00:00:00Z")
    removed, refusals = bk.remove_backups(bk.catalogue(str(backups)))  # the rest of retention still happens
    assert removed == [str(backups / "older.dump")] and len(refusals) == 1 and "old.dump is not a regular file" in refusals[0]


def test_a_backup_file_that_is_a_link_or_a_fifo_is_never_read(tmp_path):
    """A correctly named manifest beside a planted link (to a root-only file, or /dev/zero) or FIFO: the
    restore's first check refuses it without reading or waiting on what it points at."""
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:$6$hash")
    backups = tmp_path / "backups"
    backups.mkdir()
    write_backup(backups, "a.dump", content=b"root:$6$hash")
    os.unlink(str(backups / "a.dump"))
    os.symlink(str(secret), str(backups / "a.dump"))
    with pytest.raises(bk.BackupError, match="a.dump is a symbolic link"):
        bk.check_file(bk.resolve("a.dump", str(backups)))
    write_backup(backups, "b.dump")
    os.unlink(str(backups / "b.dump"))
    os.mkfifo(str(backups / "b.dump"))
    with pytest.raises(bk.BackupError, match="b.dump is not a regular file"):
        bk.check_file(bk.resolve("b.dump", str(backups)))
    os.mkfifo(str(backups / "c.dump.manifest.json"))  # would block an open without O_NONBLOCK
    assert sorted(m["file"] for m in bk.catalogue(str(backups))) == ["a.dump", "b.dump"]


def test_resolve_latest_path_and_manifest(tmp_path):
    path = write_backup(tmp_path, "a.dump")
    assert bk.resolve("latest", str(tmp_path))["path"] == path
    assert bk.resolve("a.dump", str(tmp_path))["path"] == path
    assert bk.resolve(path + bk.MANIFEST_SUFFIX, "/elsewhere")["path"] == path


def test_resolve_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(bk.BackupError, match="no verified backup"):
        bk.resolve("latest", str(tmp_path))
    with pytest.raises(bk.BackupError, match="does not exist"):
        bk.resolve("missing.dump", str(tmp_path))
    (tmp_path / "plain.sql").write_text("-- no manifest")
    with pytest.raises(bk.BackupError, match="has no manifest"):
        bk.resolve("plain.sql", str(tmp_path))


def test_check_file_detects_truncation_and_corruption(tmp_path):
    path = write_backup(tmp_path, "a.dump", content=b"0123456789" * 100)
    manifest = bk.resolve("a.dump", str(tmp_path))
    assert bk.check_file(manifest) == manifest["sha256"]
    with open(path, "r+b") as handle:
        handle.seek(10)
        handle.write(b"X")
    with pytest.raises(bk.BackupError, match="corrupted"):
        bk.check_file(manifest)
    with open(path, "r+b") as handle:
        handle.truncate(500)
    with pytest.raises(bk.BackupError, match="truncated"):
        bk.check_file(manifest)
    os.unlink(path)
    with pytest.raises(bk.BackupError, match="missing"):
        bk.check_file(manifest)


@pytest.mark.parametrize("name", ["", "../x.dump", ".hidden", "a.dump.manifest.json", "a.partial"])
def test_bad_names_are_refused(name):
    with pytest.raises(bk.BackupError, match="not valid"):
        bk.check_name(name)


def test_tables_with_data_reads_pg_restore_listing():
    toc = ["3401; 0 16390 TABLE DATA public users postgres", "3402; 0 16400 TABLE DATA auth sessions postgres",
           "215; 1259 16390 TABLE public users postgres", "3200; 2606 16500 CONSTRAINT public users users_pkey postgres"]
    assert bk.tables_with_data(toc) == {"public.users", "auth.sessions"}


def test_latest_skips_a_backup_that_failed_its_drill_with_a_warning(tmp_path):
    write_backup(tmp_path, "good.dump", finished_at="2026-11-25T00:00:00Z")
    write_backup(tmp_path, "bad.dump", finished_at="2026-11-26T00:00:00Z")
    bad = bk.resolve("bad.dump", str(tmp_path))
    bk.mark_drill(bad, {"result": "failed", "at": "2026-11-26T05:00:00Z", "problems": ["public.users content differs"]})
    stored = json.loads((tmp_path / "bad.dump.manifest.json").read_text())
    assert stored["drill"]["result"] == "failed" and "path" not in stored and stored["sha256"] == bad["sha256"]
    warnings = []
    assert bk.resolve("latest", str(tmp_path), warnings.append)["file"] == "good.dump"
    assert warnings == ["skipping bad.dump, which failed its restore drill on 2026-11-26T05:00:00Z (public.users content differs)"]
    named = []
    assert bk.resolve("bad.dump", str(tmp_path), named.append)["file"] == "bad.dump"  # named: restored, with a warning
    assert named[0].startswith("restoring bad.dump although it failed its restore drill")
    bk.mark_drill(bk.resolve("good.dump", str(tmp_path)), {"result": "failed", "at": "x", "problems": []})
    with pytest.raises(bk.BackupError, match="that passed its drills"):
        bk.resolve("latest", str(tmp_path))
