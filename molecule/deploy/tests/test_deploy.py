"""The deployment runbook against the scenario's sandbox host: a checkout of the repository at v0.9.0
whose origin has the next releases (tests/sandbox/README.md, "Releases"). Each test starts at v0.9.0
with every service healthy; the releases' tags are created in order, so the real workflow's rollback
target (the second-newest tag by creation date) is never v0.9.0, the release a rollback must reach."""
import json
import os
import re
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_shared"))
import awx_job  # noqa: E402
from runbook_host import PROJECT, STATE, Instance, assert_failed_with, confirm, kill_points, recap, wait_for  # noqa: E402

CHECKOUT = os.path.dirname(PROJECT)
FACTS = ("-e", "deploy_ci_green=true", "-e", "deploy_qa_passed=true", "-e", "deploy_release_notes=https://example.invalid/notes")
FAST = ("-e", "deploy_health_delay=10", "-e", "deploy_watch_seconds=0")
# The write smoke tests (a post, an upload) write to the fixture's second family as its owner (tests/sandbox/nself_sandbox/provision.py).
UPLOAD = ("-e", "deploy_smoke_write_family_id=20000000-0000-4000-8000-000000000002", "-e", "deploy_smoke_write_email=owner@other.family",
          "-e", "deploy_smoke_write_password=family-sandbox-pass")
BASE_VERSION = "1770000000013"


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    return Instance("nfamily-molecule-deploy", tmp_path_factory.mktemp("deploy"))


@pytest.fixture
def host(box):
    return at_v090(box)


def at_v090(box):
    """v0.9.0 checked out, built and running, its migrations and no others, no run state, no traffic."""
    box.run("sandbox-traffic", "stop")
    box.run("sandbox-fault", "clear")
    box.sh("rm -rf %s %s/backups/pre-deploy-*" % (STATE, PROJECT))
    if git(box, "describe", "--tags", "--exact-match") != "v0.9.0" or api_version(box) != "0.9.0":
        box.psql("ALTER TABLE public.posts DROP COLUMN IF EXISTS reaction_count; "
                 "DELETE FROM public.schema_migrations WHERE version > %s" % BASE_VERSION)
        git(box, "checkout", "-q", "v0.9.0")
        box.nself("build")
        box.nself("stop")
        box.nself("start")
    for tag in git(box, "tag").split():
        if tag != "v0.9.0":  # as provisioned: the checkout knows only the running release's tag
            git(box, "tag", "-d", tag)
    assert wait_for(lambda: all_healthy(box) and api_version(box) == "0.9.0", timeout=120)
    return box


def git(box, *argv):
    return box.run("runuser", "-u", "nfamily", "--", "git", "-C", CHECKOUT, *argv).stdout.strip()


def all_healthy(box):
    return set(box.statuses().values()) == {"healthy"}


def api_version(box):
    proc = box.run("curl", "-s", "http://127.0.0.1:4001/health")
    try:
        return json.loads(proc.stdout).get("version")
    except ValueError:
        return None


def last_migration(box):
    return box.psql("SELECT max(version) FROM public.schema_migrations").strip()


def media_count(box):
    return int(box.psql("SELECT count(*) FROM public.media_items").strip())


def post_count(box):
    return int(box.psql("SELECT count(*) FROM public.posts").strip())


def deploy(box, tag, *extra):
    return box.playbook("deploy.yml", "-e", "deploy_tag=%s" % tag, *FACTS, *FAST, *confirm(box.name, "deploy.yml"), *extra)


def report(box, output):
    run_id = [line for line in output.splitlines() if "deploy run " in line][0].split("deploy run ")[1].split()[0]
    with open(os.path.join(box.reports, run_id, box.name + ".json"), encoding="utf-8") as handle:
        return json.load(handle)


def assert_back_on_v090(box):
    assert git(box, "describe", "--tags", "--exact-match") == "v0.9.0"
    assert api_version(box) == "0.9.0" and all_healthy(box)
    assert last_migration(box) == BASE_VERSION
    assert box.psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'posts' AND column_name = 'reaction_count'").strip() == "0"
    # what the real workflow would have rolled back to instead
    assert git(box, "tag", "--sort=-creatordate").splitlines()[1] != "v0.9.0"
    assert git(box, "status", "--porcelain", "--untracked-files=no") == ""


def test_check_mode_plans_the_deploy_and_changes_nothing(host):
    proc = host.playbook("deploy.yml", "-e", "deploy_tag=v0.10.0", *FACTS, "--check")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "to do: backup, deploy, verify, rollback (check mode: nothing will change)" in " ".join(proc.stdout.split())
    assert re.search(r"v0\.10\.0 \([0-9a-f]{12}\) replaces v0\.9\.0; migrations it adds: none \(v0\.10\.0 is only on origin: its "
                     r"migrations are listed once it is fetched\)", " ".join(proc.stdout.split()))
    assert recap(proc.stdout)["changed"] == 0
    assert git(host, "describe", "--tags", "--exact-match") == "v0.9.0" and git(host, "tag") == "v0.9.0"  # nothing fetched
    assert host.run("sh", "-c", "ls %s/backups/pre-deploy-*" % PROJECT).returncode != 0


def test_the_gates_refuse_everything_at_once_before_anything_changes(host):
    host.sh("echo 'DEBUG=true' >> %s/.env.dev" % PROJECT)
    try:
        proc = host.playbook("deploy.yml", "-e", "deploy_tag=v9.9.9", "-e", "deploy_backup=existing", *confirm(host.name, "deploy.yml"))
        message = assert_failed_with(proc, "v9.9.9 is not deployed:", "tracked file(s) changed", "backend/.env.dev",
                                     "tag v9.9.9 does not exist", "a host not known to be dev or staging needs deploy_ci_green=true",
                                     "deploy_qa_passed=true", "deploy_release_notes=", "no backup in %s/backups is younger than 24 h" % PROJECT,
                                     "Nothing was changed.")
        assert message.count(";") >= 3
    finally:
        git(host, "checkout", "--", "backend/.env.dev")
    proc = deploy(host, "v0.10.5")
    assert_failed_with(proc, "v0.10.5 adds migration(s) without a down file (1770000000015_no_down)")
    assert git(host, "describe", "--tags", "--exact-match") == "v0.9.0" and api_version(host) == "0.9.0"
    assert host.run("sh", "-c", "ls %s/backups/pre-deploy-*" % PROJECT).returncode != 0


def test_an_unhealthy_release_is_rolled_back_to_the_release_that_ran(host):
    proc = deploy(host, "v0.10.1")
    message = assert_failed_with(proc, "v0.10.1 was rolled back to v0.9.0 (migrations down to %s, v0.9.0 built and healthy)" % BASE_VERSION,
                                 "not healthy after 3 checks", "api")
    assert "smoke" not in message
    assert_back_on_v090(host)
    record = report(host, proc.stdout)
    assert record["result"] == "failed" and "health: not healthy after 3 check(s)" in record["details"]["criteria"]
    assert host.read_json(STATE + "/runs/deploy.json")["status"] == "finished"  # closed: the next run starts anew


def test_server_errors_in_the_watch_window_roll_back(host):
    host.run("sandbox-traffic", "start", "10")
    try:
        host.sh("sleep 12")  # traffic before the deploy
        # without the smoke test, which would see the server errors first
        proc = deploy(host, "v0.10.2", "-e", "deploy_watch_seconds=12", "-e", "deploy_min_requests=20", "-e", "deploy_smoke_email=")
    finally:
        host.run("sandbox-traffic", "stop")
    assert_failed_with(proc, "v0.10.2 was rolled back to v0.9.0", "error rate 100.0 % of", "above 5.0 %", "requests before)")
    assert_back_on_v090(host)


def test_a_broken_upload_fails_the_smoke_test_and_rolls_back(host):
    media = media_count(host)
    proc = deploy(host, "v0.10.3", *UPLOAD)
    assert_failed_with(proc, "v0.10.3 was rolled back to v0.9.0 (migrations down to %s" % BASE_VERSION,
                       "smoke test failed: write smoke test failed: api POST /api/media/upload (expected 201, got 500 INTERNAL_ERROR)")
    assert media_count(host) == media
    assert_back_on_v090(host)


def test_a_failed_data_check_restores_the_pre_deploy_backup(host):
    before = media_count(host)
    proc = deploy(host, "v0.10.4")
    assert_failed_with(proc, "v0.10.4 was rolled back to v0.9.0 (restored pre-deploy-v0.10.4_",
                       "public.media_items has %d rows, %d before" % (before - 2, before))
    assert media_count(host) == before
    assert_back_on_v090(host)


def test_a_good_release_is_deployed_verified_and_a_rerun_changes_nothing(host):
    host.run("sandbox-traffic", "start", "10")
    try:
        host.sh("sleep 8")
        media, posts = media_count(host), post_count(host)
        proc = deploy(host, "v0.10.0", "-e", "deploy_watch_seconds=8", "-e", "deploy_min_requests=20", *UPLOAD)
    finally:
        host.run("sandbox-traffic", "stop")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert git(host, "describe", "--tags", "--exact-match") == "v0.10.0" and api_version(host) == "0.10.0" and all_healthy(host)
    assert last_migration(host) == "1770000000014"
    criteria = report(host, proc.stdout)["details"]["criteria"]
    assert criteria[1:3] == ["smoke: passed", "write smoke: passed"]
    assert criteria[3].startswith("error rate: error rate 0.0 % of") and "within 5.0 %" in criteria[3]
    assert criteria[4] == "data: row counts held, no broken foreign key"
    assert media_count(host) == media and post_count(host) == posts  # the test post and file went again
    assert "family-sandbox-pass" not in proc.stdout
    backups = host.run("sh", "-c", "ls %s/backups/pre-deploy-*.dump" % PROJECT).stdout.split()
    again = deploy(host, "v0.10.0")
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    assert "to do: nothing" in again.stdout
    assert host.run("sh", "-c", "ls %s/backups/pre-deploy-*.dump" % PROJECT).stdout.split() == backups
    older = deploy(host, "v0.9.0")  # a downgrade whose database has a migration the tag does not know
    assert_failed_with(older, "v0.9.0 is not deployed:", "v0.9.0 is older than what runs: the database has migration(s) it does not "
                       "know (1770000000014_post_reaction_count); roll them back first (playbooks/migration_rollback.yml)")
    assert git(host, "describe", "--tags", "--exact-match") == "v0.10.0" and last_migration(host) == "1770000000014"


@pytest.mark.skipif(os.environ.get("NFAMILY_OPS_AWX_RUNS") != "all", reason="make awx-runs runs it (README, the suite's time)")
def test_an_awx_shaped_deploy_ends_as_the_same_deploy_from_ansible_playbook(box, tmp_path):
    """The deploy launched as AWX's approved workflow node launches it (molecule/_shared/awx_job.py) and from a shell,
    each from v0.9.0: the same record, report and host (tag, API version, migrations, health, one pre-deploy backup)."""
    answers = {"deploy_tag": "v0.10.0", "deploy_ci_green": True, "deploy_qa_passed": True, "deploy_health_delay": 10,
               "deploy_release_notes": "https://example.invalid/notes", "deploy_watch_seconds": 0, "runbook_confirm": "deploy@" + box.name}

    def state():
        return (git(box, "describe", "--tags", "--exact-match"), api_version(box), last_migration(box), all_healthy(box),
                len(box.run("sh", "-c", "ls %s/backups/pre-deploy-*.dump" % PROJECT).stdout.split()))
    shell, _awx = awx_job.compare(box, awx_job.inventory(box), tmp_path, "deploy.yml", answers, lambda: at_v090(box), state)
    assert shell["result"] == "success" and state() == ("v0.10.0", "0.10.0", "1770000000014", True, 1)


@pytest.mark.parametrize("tag, kill_in, converged", kill_points(
    [("v0.10.0", "backup", "v0.10.0"), ("v0.10.0", "deploy", "v0.10.0"), ("v0.10.0", "verify", "v0.10.0"), ("v0.10.1", "rollback", "v0.9.0")],
    [("v0.10.0", "deploy", "v0.10.0")]))
def test_a_run_killed_in_a_step_then_run_again_converges(host, tag, kill_in, converged):
    """Killed in any step of a good release (while what runs is recorded and backed up; while the release is checked
    out, migrated and built; while it is verified), the run again ends with it verified; killed while a bad release
    is being rolled back, with the release that ran before restored. Never in between."""
    # a watch window keeps the verification going past the kill (the re-run watches for no time)
    watch = ("-e", "deploy_watch_seconds=30") if kill_in == "verify" else ()
    state = STATE + "/runs/deploy.json"
    run = host.playbook("deploy.yml", "-e", "deploy_tag=%s" % tag, *FACTS, *FAST, *watch, *confirm(host.name, "deploy.yml"), background=True)
    reached = wait_for(lambda: kill_in in (host.read_json(state) or {}).get("started", {}), timeout=240, interval=0.2)
    time.sleep(3)  # into the step
    os.killpg(run.pid, signal.SIGKILL)
    output = run.communicate()[0]
    assert reached, output[-3000:]
    rerun = deploy(host, tag)
    assert "resuming" in rerun.stdout, rerun.stdout[-3000:]
    if converged == tag:
        assert rerun.returncode == 0, rerun.stdout[-3000:]
        assert git(host, "describe", "--tags", "--exact-match") == tag and api_version(host) == "0.10.0" and all_healthy(host)
        assert last_migration(host) == "1770000000014"
    else:
        assert_failed_with(rerun, "%s was rolled back to v0.9.0" % tag, "not healthy after 3 checks")
        assert_back_on_v090(host)
    assert host.read_json(state)["status"] == "finished"
    assert len(host.run("sh", "-c", "ls %s/backups/pre-deploy-*.dump" % PROJECT).stdout.split()) == 1  # one backup, not one per run
