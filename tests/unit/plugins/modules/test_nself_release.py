"""nself_release against real git repositories: a clone of an origin with release tags, as production
has it (/opt/nself-family, the project in backend/)."""
import os
import subprocess

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.nfamily.ops.plugins.modules import nself_release


class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


def git(cwd, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "init.defaultBranch=main",
                           "-C", str(cwd)] + list(args), check=True, capture_output=True, text=True).stdout.strip()


def write(root, path, text="x\n"):
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(text)


@pytest.fixture
def origin(tmp_path):
    """An origin with v0.9 (migrations 001), v0.10 (adds 014 with its down file) and v0.11-bad (adds 015
    without one), and a host's clone of it on v0.9 (detached, as the deploy workflow leaves it)."""
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q")
    write(work, "backend/.gitignore", ".env*\nbackups/\n")
    for name in ("001_core_tables.up.sql", "001_core_tables.down.sql"):
        write(work, "backend/db/migrations/" + name)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "0.9")
    git(work, "tag", "-a", "v0.9", "-m", "v0.9")
    for name in ("014_release_notes.up.sql", "014_release_notes.down.sql"):
        write(work, "backend/db/migrations/" + name)
    write(work, "backend/hasura/migrations/default/1770000000014_notes/up.sql")
    write(work, "backend/hasura/migrations/default/1770000000014_notes/down.sql")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "0.10")
    git(work, "tag", "-a", "v0.10", "-m", "v0.10")
    write(work, "backend/db/migrations/015_no_way_back.up.sql")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "0.11")
    git(work, "tag", "v0.11-bad")
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    host = tmp_path / "nself-family"
    subprocess.run(["git", "clone", "-q", str(bare), str(host)], check=True)
    git(host, "-c", "advice.detachedHead=false", "checkout", "-q", "v0.9")
    (host / "backend" / ".env.secrets").write_text("JWT_SECRET=x\n")  # ignored: never in the way
    return {"work": work, "host": host, "project": str(host / "backend")}


def run(args, check_mode=False, monkeypatch=None):
    def exit_json(self, **kwargs):
        kwargs.setdefault("failed", False)
        raise ModuleExit(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs.update(failed=True, msg=msg)
        raise ModuleExit(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    with patch_module_args(dict(args, _ansible_check_mode=check_mode)):
        with pytest.raises(ModuleExit) as caught:
            nself_release.main()
    return caught.value.result


@pytest.fixture
def release(monkeypatch):
    return lambda args, check_mode=False: run(args, check_mode, monkeypatch)


def test_check_mode_names_the_running_tag_and_what_the_next_one_adds(origin, release):
    result = release({"project_dir": origin["project"], "tag": "v0.10"}, check_mode=True)
    assert not result["failed"] and result["changed"] and result["problems"] == []
    assert git(origin["host"], "describe", "--tags") == "v0.9"  # nothing moved
    assert result["repository"] == str(origin["host"]) and result["running_tag"] == "v0.9"
    assert result["changed_files"] == [] and result["untracked_files"] == []
    assert sorted((m["scheme"], m["version"], m["down"]) for m in result["migrations_added"]) == [
        ("_migrations", 14, True), ("schema_migrations", 1770000000014, True)]
    assert all(argv[:2] == ["git", "--no-optional-locks"] for argv in result["commands"])  # root's own checkout: no runuser


def test_a_checkout_moves_head_to_the_tag_and_a_second_changes_nothing(origin, release):
    tagged = git(origin["host"], "rev-parse", "v0.10^{commit}")
    planned = release({"project_dir": origin["project"], "tag": "v0.10"}, check_mode=True)
    assert planned["changed"] and git(origin["host"], "describe", "--tags") == "v0.9"  # check mode moves nothing
    first = release({"project_dir": origin["project"], "tag": "v0.10"})
    assert first["changed"] and first["head"] == tagged and first["running_tag"] == "v0.9"
    second = release({"project_dir": origin["project"], "tag": "v0.10"})
    assert not second["failed"] and not second["changed"] and second["running_tag"] == "v0.10"
    assert second["problems"] == ["v0.10 is already checked out (commit %s)" % tagged[:12]]


def test_a_changed_tracked_file_blocks_the_checkout_and_an_untracked_one_does_not(origin, release):
    write(origin["host"], "backend/stray.txt")
    untracked = release({"project_dir": origin["project"], "tag": "v0.10"}, check_mode=True)
    assert untracked["problems"] == [] and untracked["untracked_files"] == ["backend/stray.txt"]
    write(origin["host"], "backend/db/migrations/001_core_tables.up.sql", "-- edited on the host\n")
    refused = release({"project_dir": origin["project"], "tag": "v0.10"})
    assert refused["failed"] and refused["msg"].startswith("cannot check v0.10 out: 1 tracked file(s) changed")
    assert "backend/db/migrations/001_core_tables.up.sql" in refused["msg"] and refused["msg"].endswith("Nothing was checked out")
    assert git(origin["host"], "describe", "--tags") == "v0.9"


def test_a_tag_adding_a_migration_without_its_down_file_is_refused(origin, release):
    refused = release({"project_dir": origin["project"], "tag": "v0.11-bad"})
    assert refused["failed"] and "v0.11-bad adds migration(s) without a down file (015_no_way_back)" in refused["msg"]
    assert git(origin["host"], "describe", "--tags") == "v0.9"


def test_a_tag_pushed_after_the_clone_is_found_only_with_fetch(origin, release):
    git(origin["work"], "tag", "-a", "v0.12", "-m", "v0.12", "v0.10^{commit}")  # the good release, tagged again
    git(origin["work"], "push", "-q", str(origin["host"].parent / "origin.git"), "v0.12")
    missing = release({"project_dir": origin["project"], "tag": "v0.12"})
    expected = "tag v0.12 does not exist in %s (fetch: true fetches the remote's tags); push it, or name an existing one" % origin["host"]
    assert missing["failed"] and missing["problems"] == [expected]
    fetched = release({"project_dir": origin["project"], "tag": "v0.12", "fetch": True})
    assert fetched["changed"] and fetched["head"] == git(origin["host"], "rev-parse", "v0.12^{commit}")


@pytest.mark.parametrize("tag", ["--upload-pack=touch /tmp/x", "../v0.9", "v0.9.lock", "refs/tags/v0.9", ""])
def test_a_tag_that_is_not_a_release_name_is_refused_before_git_runs(origin, release, tag):
    result = release({"project_dir": origin["project"], "tag": tag})
    if tag:
        assert result["failed"] and "is not a release tag" in result["msg"] and result["commands"] == []
    else:
        assert not result["failed"] and result["tag_commit"] is None


def test_a_remote_that_is_not_a_remotes_name_is_refused_before_git_fetches(origin, release):
    result = release({"project_dir": origin["project"], "tag": "v0.10", "fetch": True, "remote": "--upload-pack=touch /tmp/pwned"})
    assert result["failed"] and "is not a remote's name" in result["msg"] and not os.path.exists("/tmp/pwned")


def test_a_project_outside_a_checkout_is_a_clear_error(tmp_path, release):
    project = tmp_path / "backend"
    project.mkdir()
    result = release({"project_dir": str(project)})
    assert result["failed"] and result["msg"].startswith("%s is not in a git checkout" % project)


def test_git_never_waits_for_a_password():
    env = nself_release.rel.git_environment({})
    assert env["GIT_TERMINAL_PROMPT"] == "0" and "BatchMode=yes" in env["GIT_SSH_COMMAND"]
    assert "GIT_SSH_COMMAND" not in nself_release.rel.git_environment({"GIT_SSH_COMMAND": "ssh -i /root/.ssh/deploy"})


def test_check_mode_looks_a_remote_only_tag_up_without_fetching_it(origin, release):
    git(origin["work"], "tag", "-a", "v0.12", "-m", "v0.12", "v0.10^{commit}")
    git(origin["work"], "push", "-q", str(origin["host"].parent / "origin.git"), "v0.12")
    planned = release({"project_dir": origin["project"], "tag": "v0.12", "fetch": True}, check_mode=True)
    assert not planned["failed"] and planned["changed"] and planned["problems"] == []
    assert planned["tag_commit"] == git(origin["work"], "rev-parse", "v0.12^{commit}")
    assert planned["notes"] == ["v0.12 is only on origin: its migrations are listed once it is fetched"]
    assert git(origin["host"], "tag", "-l", "v0.12") == ""  # nothing fetched
    fetched = release({"project_dir": origin["project"], "fetch": True})
    assert fetched["changed"] and fetched["fetched_new_tags"] and git(origin["host"], "tag", "-l", "v0.12") == "v0.12"
    again = release({"project_dir": origin["project"], "fetch": True})
    assert not again["changed"] and not again["fetched_new_tags"]


def test_a_checkout_never_overwrites_an_ignored_file_the_tag_tracks(origin, release):
    """A release that (by mistake) commits an env file must not replace the host's secrets."""
    write(origin["work"], "backend/.env.secrets", "JWT_SECRET=from-the-repository\n")
    git(origin["work"], "checkout", "-q", "v0.10")
    git(origin["work"], "add", "-f", "backend/.env.secrets")
    git(origin["work"], "commit", "-qm", "oops")
    git(origin["work"], "tag", "-a", "v0.13", "-m", "v0.13")
    git(origin["work"], "push", "-q", str(origin["host"].parent / "origin.git"), "v0.13")
    refused = release({"project_dir": origin["project"], "tag": "v0.13", "fetch": True})
    assert refused["failed"] and "would be overwritten by checkout" in refused["msg"], refused["msg"]
    assert (origin["host"] / "backend" / ".env.secrets").read_text() == "JWT_SECRET=x\n"
    assert git(origin["host"], "describe", "--tags") == "v0.9"


def test_renamed_and_oddly_named_files_are_reported_by_their_names(origin, release):
    git(origin["host"], "mv", "backend/db/migrations/001_core_tables.down.sql", "backend/db/migrations/a b \u00e9.sql")
    result = release({"project_dir": origin["project"]})
    assert result["changed_files"] == ["backend/db/migrations/a b \u00e9.sql"]


def test_as_root_git_runs_as_the_owner_of_the_checkout(origin):
    if os.geteuid() != 0:
        pytest.skip("needs root to give the checkout to another user")
    os.chown(str(origin["host"]), 65534, 65534)
    repo = nself_release.rel.Repository(origin["project"], run=None, euid=0)
    argv = repo.argv(["status"])
    assert argv[:6] == ["runuser", "-u", "nobody", "--", "env", "HOME=/nonexistent"] and "safe.directory" not in " ".join(argv)
    assert nself_release.rel.Repository(origin["project"], run=None, euid=1000).as_user is None  # not root: git's own rules


def test_an_older_tag_lists_the_migrations_the_running_release_has_and_it_lacks(origin, release):
    release({"project_dir": origin["project"], "tag": "v0.10"})
    older = release({"project_dir": origin["project"], "tag": "v0.9"}, check_mode=True)
    assert older["problems"] == [] and older["migrations_added"] == []  # the checkout itself may go back (a rollback does)
    assert sorted((m["scheme"], m["version"]) for m in older["migrations_removed"]) == [
        ("_migrations", 14), ("schema_migrations", 1770000000014)]
    newer = release({"project_dir": origin["project"], "tag": "v0.11-bad"}, check_mode=True)
    assert newer["migrations_removed"] == []
