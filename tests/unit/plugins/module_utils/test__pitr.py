import datetime
import io
import json
import os
import tarfile

import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _pitr as pitr

NOW = datetime.datetime(2026, 11, 27, 3, 0, 0, tzinfo=datetime.timezone.utc)
SEG = 16 * 1024 * 1024
LABEL = (b"START WAL LOCATION: 0/4000028 (file 000000010000000000000004)\nCHECKPOINT LOCATION: 0/4000060\n"
         b"START TIME: 2026-11-27 01:00:00 UTC\nLABEL: nfamily.ops base\nSTART TIMELINE: 1\n")


def make_base_tar(path, members=None):
    members = members if members is not None else {
        "backup_label": LABEL, "PG_VERSION": b"15\n", "global/pg_control": b"\0" * 64,
        "base/1/1259": b"relation", "postgresql.auto.conf": b"archive_mode = 'on'\n",
        "pg_wal/000000010000000000000004": b"w" * 128}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o600, os.getuid(), os.getgid()
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def base(finished_at, name=None, **extra):
    entry = {"file": name or "base_%s.tar.gz" % finished_at, "finished_at": finished_at,
             "finished": datetime.datetime.strptime(finished_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)}
    entry.update(extra)
    return entry


@pytest.mark.parametrize("mount", ["/wal; rm -rf /", "/wal$(id)", "/w al", "wal", "/a/../b", "/wal\n", "/wal`id`", ""])
def test_a_mount_a_shell_would_read_as_more_than_a_path_is_refused(mount):
    """Issue 17, item 8: archive_mount went unchecked into archive_command, which a shell runs."""
    with pytest.raises(pitr.PitrError, match="must be an absolute path"):
        pitr.archive_command(mount)
    with pytest.raises(pitr.PitrError, match="must be an absolute path"):
        pitr.restore_command(mount)
    assert pitr.check_mount("/var/lib/postgresql/wal_archive.2") == "/var/lib/postgresql/wal_archive.2"


def test_archive_command_never_overwrites_and_copies_through_a_temporary_name():
    command = pitr.archive_command("/arch")
    assert command.startswith("if [ -f /arch/%f ]; then cmp -s %p /arch/%f;")
    assert "cp %p /arch/%f.tmp && mv /arch/%f.tmp /arch/%f" in command


def test_override_is_written_when_missing():
    text = pitr.override_text(None, "postgres", "./backups/wal", pitr.ARCHIVE_MOUNT)
    assert "services:\n  postgres:\n    volumes:\n      - ./backups/wal:/var/lib/postgresql/wal_archive\n" in text


def test_override_merge_keeps_other_settings_and_is_idempotent():
    current = "services:\n  nginx:\n    ports: ['8080:80']\n  postgres:\n    volumes:\n      - ./init:/docker-entrypoint-initdb.d\n"
    merged = pitr.override_text(current, "postgres", "./backups/wal", pitr.ARCHIVE_MOUNT)
    assert "8080:80" in merged and "./init:/docker-entrypoint-initdb.d" in merged
    assert "./backups/wal:/var/lib/postgresql/wal_archive" in merged
    assert pitr.override_text(merged, "postgres", "./backups/wal", pitr.ARCHIVE_MOUNT) is None


def test_override_refuses_another_mount_at_the_archive_path():
    current = "services:\n  postgres:\n    volumes:\n      - /elsewhere:/var/lib/postgresql/wal_archive\n"
    with pytest.raises(pitr.PitrError, match="already mounts something else"):
        pitr.override_text(current, "postgres", "./backups/wal", pitr.ARCHIVE_MOUNT)


def test_compose_source_is_relative_inside_the_project():
    assert pitr.compose_source("/opt/p", "/opt/p/backups/wal") == "./backups/wal"
    assert pitr.compose_source("/opt/p", "/srv/wal") == "/srv/wal"


def test_segment_numbers_ignore_the_timeline():
    assert pitr.segment_number("000000010000000000000004", SEG) == 4
    assert pitr.segment_number("000000020000000100000002", SEG) == 256 + 2
    with pytest.raises(ValueError):
        pitr.segment_number("00000002.history", SEG)


def test_archive_gaps_after_the_start_segment():
    segments = ["000000010000000000000004", "000000010000000000000005", "000000010000000000000008"]
    assert pitr.archive_gaps(segments, "000000010000000000000004", SEG) == ["2 segment(s) after 000000010000000000000005"]
    assert pitr.archive_gaps(segments[:2], "000000010000000000000004", SEG) == []
    assert pitr.archive_gaps(segments[1:], "000000010000000000000004", SEG) == ["000000010000000000000004"]


def test_archive_gaps_across_a_log_file_boundary():
    segments = ["0000000100000000000000FF", "000000010000000100000000"]
    assert pitr.archive_gaps(segments, "0000000100000000000000FF", SEG) == []


def test_prune_archive_keeps_history_and_what_the_oldest_base_needs(tmp_path):
    for name in ("000000010000000000000002", "000000010000000000000003", "000000010000000000000003.00000028.backup",
                 "000000010000000000000004", "000000020000000000000005", "00000002.history"):
        (tmp_path / name).write_bytes(b"x")
    doomed = pitr.prune_archive_plan(str(tmp_path), "000000010000000000000004", SEG)
    assert doomed == ["000000010000000000000002", "000000010000000000000003", "000000010000000000000003.00000028.backup"]


def test_parse_target_forms():
    assert pitr.parse_target("latest") is None
    assert pitr.parse_target("2026-11-27T03:05:00Z").isoformat() == "2026-11-27T03:05:00+00:00"
    assert pitr.parse_target("2026-11-27 03:05:00").isoformat() == "2026-11-27T03:05:00+00:00"
    assert pitr.parse_target("2026-11-27T04:05:00+01:00").isoformat() == "2026-11-27T03:05:00+00:00"
    with pytest.raises(pitr.PitrError, match="not a time"):
        pitr.parse_target("yesterday'; DROP TABLE users")


def test_choose_base_takes_the_newest_before_the_target():
    bases = [base("2026-11-25T01:00:00Z"), base("2026-11-26T01:00:00Z"), base("2026-11-27T01:00:00Z")]
    target = pitr.parse_target("2026-11-26T12:00:00Z")
    assert pitr.choose_base(bases, target, NOW)["finished_at"] == "2026-11-26T01:00:00Z"
    assert pitr.choose_base(bases, None, NOW)["finished_at"] == "2026-11-27T01:00:00Z"


def test_choose_base_refuses_the_future_and_before_the_oldest():
    bases = [base("2026-11-25T01:00:00Z")]
    with pytest.raises(pitr.PitrError, match="in the future"):
        pitr.choose_base(bases, pitr.parse_target("2026-11-27T04:00:00Z"), NOW)
    with pytest.raises(pitr.PitrError, match="earliest recoverable time is 2026-11-25T01:00:00Z"):
        pitr.choose_base(bases, pitr.parse_target("2026-11-24T00:00:00Z"), NOW)
    with pytest.raises(pitr.PitrError, match="no base backup"):
        pitr.choose_base([], None, NOW)


def test_recovery_settings_for_a_time_and_for_latest():
    settings = pitr.recovery_settings(pitr.parse_target("2026-11-27T03:05:00Z"), "promote")
    assert settings == {"restore_command": "cp /var/lib/postgresql/wal_archive/%f %p", "recovery_target_timeline": "latest",
                        "recovery_target_time": "2026-11-27 03:05:00+00", "recovery_target_action": "promote"}
    assert "recovery_target_time" not in pitr.recovery_settings(None, "promote")


def test_read_base_tar_returns_the_label(tmp_path):
    label = pitr.read_base_tar(make_base_tar(tmp_path / "b.tar.gz"))
    assert label["start_segment"] == "000000010000000000000004" and label["start_lsn"] == "0/4000028"
    assert label["has_wal"]


def test_read_base_tar_refuses_incomplete_and_truncated(tmp_path):
    with pytest.raises(pitr.PitrError, match="incomplete: no global/pg_control"):
        pitr.read_base_tar(make_base_tar(tmp_path / "a.tar.gz", {"backup_label": LABEL, "PG_VERSION": b"15\n"}))
    path = make_base_tar(tmp_path / "b.tar.gz")
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)
    with pytest.raises(pitr.PitrError, match="unreadable"):
        pitr.read_base_tar(path)


def test_prepare_moves_aside_extracts_and_is_idempotent(tmp_path):
    data = tmp_path / "_data"
    data.mkdir()
    (data / "PG_VERSION").write_text("15\n")
    (data / "live_only").write_text("live")
    entry = {"file": "b.tar.gz", "path": make_base_tar(tmp_path / "b.tar.gz")}
    settings = pitr.recovery_settings(pitr.parse_target("2026-11-27T03:05:00Z"), "promote")
    assert pitr.prepare_data_dir(str(data), "run1", entry, settings, "2026-11-27T03:05:00Z") is True
    aside = tmp_path / "_data.pre_pitr_run1"
    assert (aside / "live_only").read_text() == "live"
    assert not (data / "live_only").exists() and (data / "recovery.signal").exists()
    auto_conf = (data / "postgresql.auto.conf").read_text()
    assert auto_conf.startswith("archive_mode = 'on'\n") and "recovery_target_time = '2026-11-27 03:05:00+00'" in auto_conf
    assert oct(os.stat(str(data)).st_mode & 0o777) == "0o700"
    assert pitr.prepare_data_dir(str(data), "run1", entry, settings, "2026-11-27T03:05:00Z") is False
    assert json.loads((tmp_path / "_data.pitr_run1.json").read_text())["target"] == "2026-11-27T03:05:00Z"


def test_prepare_after_a_kill_mid_extraction_redoes_it_and_keeps_the_live_data(tmp_path):
    data = tmp_path / "_data"
    aside = tmp_path / "_data.pre_pitr_run1"
    aside.mkdir()
    (aside / "live_only").write_text("live")
    data.mkdir()
    (data / "half").write_text("partial extraction")
    entry = {"file": "b.tar.gz", "path": make_base_tar(tmp_path / "b.tar.gz")}
    assert pitr.prepare_data_dir(str(data), "run1", entry, pitr.recovery_settings(None, "promote"), "latest")
    assert not (data / "half").exists() and (data / "PG_VERSION").exists()
    assert (aside / "live_only").read_text() == "live"


def test_extract_refuses_paths_that_leave_the_data_directory(tmp_path):
    data = tmp_path / "_data"
    data.mkdir()
    entry = {"file": "evil.tar.gz", "path": make_base_tar(tmp_path / "evil.tar.gz", {"../escape": b"x"})}
    with pytest.raises(pitr.PitrError, match="unsafe entry"):
        pitr.prepare_data_dir(str(data), "run1", entry, {}, "latest")
    assert not (tmp_path / "escape").exists()


def test_extract_drops_setuid_setgid_and_sticky_bits(tmp_path):
    """Issue 17, item 8: a planted base backup must not leave a setuid file in the data directory."""
    path = make_base_tar(tmp_path / "b.tar.gz")
    with tarfile.open(path, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members:
            if member.name == "base/1/1259":
                member.mode = 0o6755
            if member.name == "PG_VERSION":
                member.mode = 0o1640
            tar.addfile(member, io.BytesIO(data))
    data = tmp_path / "_data"
    data.mkdir()
    pitr.prepare_data_dir(str(data), "run1", {"file": "b.tar.gz", "path": path}, {}, "latest")
    assert oct(os.stat(str(data / "base" / "1" / "1259")).st_mode & 0o7777) == "0o755"
    assert oct(os.stat(str(data / "PG_VERSION")).st_mode & 0o7777) == "0o640"


def test_rollback_puts_the_original_back_and_keeps_the_failed_one(tmp_path):
    data = tmp_path / "_data"
    data.mkdir()
    (data / "live_only").write_text("live")
    entry = {"file": "b.tar.gz", "path": make_base_tar(tmp_path / "b.tar.gz")}
    pitr.prepare_data_dir(str(data), "run1", entry, {}, "latest")
    assert pitr.rollback_data_dir(str(data), "run1") is True
    assert (data / "live_only").read_text() == "live"
    assert (tmp_path / "_data.failed_pitr_run1" / "recovery.signal").exists()
    assert pitr.rollback_data_dir(str(data), "run1") is False


def test_base_catalogue_lists_complete_backups_oldest_first(tmp_path):
    for stamp in ("2026-11-26T01:00:00Z", "2026-11-25T01:00:00Z"):
        name = "base_%s.tar.gz" % stamp.replace("-", "").replace(":", "")
        (tmp_path / name).write_bytes(b"x")
        pitr.write_base_manifest(str(tmp_path / name), {"producer": pitr.PRODUCER, "file": name, "sha256": "0" * 64,
                                                        "finished_at": stamp})
    (tmp_path / "base_broken.tar.gz.json").write_text("{not json")
    # planted: another producer's, and ours naming a file that is not beside it
    pitr.write_base_manifest(str(tmp_path / "base_foreign.tar.gz"), {"producer": "someone", "file": "base_foreign.tar.gz",
                                                                     "sha256": "0" * 64, "finished_at": "2000-01-01T00:00:00Z"})
    pitr.write_base_manifest(str(tmp_path / "base_planted.tar.gz"), {"producer": pitr.PRODUCER, "file": "../../etc/shadow",
                                                                     "sha256": "0" * 64, "finished_at": "2000-01-01T00:00:00Z"})
    assert [b["finished_at"] for b in pitr.base_catalogue(str(tmp_path))] == ["2026-11-25T01:00:00Z", "2026-11-26T01:00:00Z"]


def test_recoveries_are_recorded_once_per_run(tmp_path):
    pitr.record_recovery(str(tmp_path), {"run_id": "a", "target": "t", "timeline": "00000002"})
    pitr.record_recovery(str(tmp_path), {"run_id": "a", "target": "t", "timeline": "00000002"})
    pitr.record_recovery(str(tmp_path), {"run_id": "b", "target": "u", "timeline": "00000003"})
    assert [r["run_id"] for r in pitr.recoveries(str(tmp_path))] == ["a", "b"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_base_backups_and_recovery_records_are_written_in_the_project_owners_directory(tmp_path):
    """The state directory's checks are for the collection's state only: backups/ belongs to the project's owner."""
    base = tmp_path / "backups" / "base"
    base.mkdir(parents=True)
    os.chown(str(tmp_path / "backups"), 1000, 1000)
    os.chown(str(base), 1000, 1000)
    pitr.write_base_manifest(str(base / "base_x.tar.gz"), {"file": "base_x.tar.gz"})
    pitr.record_recovery(str(base), {"run_id": "a", "target": "t", "timeline": "00000002"})
    assert sorted(os.listdir(str(base))) == ["base_x.tar.gz.json", "recoveries.json"]
