"""A month in an hour (`make soak`): one sandbox host driven through a compressed month of AWX
schedules, each job launched the way AWX launches it (ansible-runner, a private data dir per job,
the extra vars AWX sets: awx_job_id, and awx_user_name for a job a person launched or
awx_schedule_name for a scheduled one, which has no user), and the host checked at the end.

Every day: the nightly backup (keep 7), the nightly base backup, the daily key-age check (the
scheduled rotation, older_than 90 days), and the hourly triage (twice a day, compressed). Every
seventh day: the restore drill. Besides the schedules:
- night 10: a runaway log has filled the backups disk (a 2 GiB host's small backups volume): the
  backup fails; the log is rotated away during the day, and night 11's backup succeeds with no one
  touching anything of the collection's;
- day 12: a person restores the night 11 backup by hand; an hourly triage fires while the restore
  has the services stopped (the restore is held there, as a long one would be);
- day 20: a person rotates the signing key; an hourly triage fires while the rotation holds the host,
  with auth down.

At the end: one run record per job in runs.jsonl, exactly the backups the retention policy keeps,
no lock and no unfinished run left, every service healthy, and no triage that restarted, stopped or
rebuilt anything while another run held the host. Prints a summary and writes tests/output/soak.json.

Usage: python tests/soak/soak.py HOST_CONTAINER [--days 30]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROJECT = "/opt/nself-family/backend"
STATE = "/var/lib/nfamily-ops"
BACKUPS = "/srv/backups"  # a small volume of its own (tests/bin/soak.sh), so the disk can really fill
KEEP = 7
DISRUPTIVE = (["start"], ["stop"], ["restart"], ["build"])


class Host:
    def __init__(self, name):
        self.name = name

    def sh(self, script):
        return subprocess.run(["podman", "exec", "-w", PROJECT, self.name, "sh", "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, check=False)

    def json(self, path):
        proc = self.sh("cat %s" % path)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def lines(self, path):
        return [json.loads(line) for line in self.sh("cat %s" % path).stdout.splitlines() if line.strip()]

    def statuses(self):
        return {s["name"]: s["status"] for s in json.loads(self.sh("nself status --json").stdout)["services"]}

    def wait(self, predicate, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return True
            time.sleep(0.5)
        return False


class Awx:
    """Launches playbooks as AWX jobs: ansible-runner on a private data dir of its own per job."""

    def __init__(self, host, workdir):
        self.host = host
        self.workdir = workdir
        self.job = 1000
        self.jobs = []
        with open(os.path.join(REPO, "inventories", "sandbox", "group_vars", "nfamily_backend.yml"), encoding="utf-8") as handle:
            group_vars = yaml.safe_load(handle)
        self.inventory = {"all": {"children": {"nfamily_backend": {"vars": group_vars, "children": {"prod": {"hosts": {
            host.name: {"ansible_connection": "podman_pipelined", "ansible_python_interpreter": "/usr/bin/python3"}}}}}}}}
        self.envvars = {"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
                        "ANSIBLE_CONNECTION_PLUGINS": os.path.join(REPO, "tests", "connection_plugins"),
                        "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", "")}
        if os.environ.get("ANSIBLE_COLLECTIONS_PATH"):
            self.envvars["ANSIBLE_COLLECTIONS_PATH"] = os.environ["ANSIBLE_COLLECTIONS_PATH"]

    def launch(self, template, playbook, day, extravars=None, user=None):
        """Start a job, by a schedule or, with `user`, by hand; returns it (a dict with its process)."""
        self.job += 1
        pdd = os.path.join(self.workdir, "job-%d" % self.job)
        os.makedirs(os.path.join(pdd, "inventory"))
        os.makedirs(os.path.join(pdd, "env"))
        with open(os.path.join(pdd, "inventory", "hosts.yml"), "w", encoding="utf-8") as handle:
            yaml.safe_dump(self.inventory, handle)
        variables = {"awx_job_id": self.job, "awx_job_template_name": template,
                     "runbook_report_dir": os.path.join(self.workdir, "reports")}
        if user:
            variables.update(awx_user_name=user, awx_job_launch_type="manual")
        else:  # AWX sets no awx_user_* on a scheduled job
            variables.update(awx_schedule_name=template, awx_job_launch_type="scheduled")
        variables.update(extravars or {})
        with open(os.path.join(pdd, "env", "extravars"), "w", encoding="utf-8") as handle:
            yaml.safe_dump(variables, handle)
        with open(os.path.join(pdd, "env", "envvars"), "w", encoding="utf-8") as handle:
            yaml.safe_dump(self.envvars, handle)
        argv = ["ansible-runner", "run", pdd, "--project-dir", REPO, "-p", os.path.join("playbooks", playbook),
                "--ident", "job", "-j"]
        job = {"id": str(self.job), "template": template, "day": day, "pdd": pdd, "started": time.time(),
               "proc": subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)}
        self.jobs.append(job)
        return job

    def wait(self, job):
        job["proc"].wait()
        job["seconds"] = round(time.time() - job["started"], 1)
        artifacts = os.path.join(job["pdd"], "artifacts", "job")
        with open(os.path.join(artifacts, "status"), encoding="utf-8") as handle:
            job["status"] = handle.read().strip()
        job["failure"] = last_failure(artifacts)
        return job

    def run(self, template, playbook, day, extravars=None, user=None):
        return self.wait(self.launch(template, playbook, day, extravars, user))


def last_failure(artifacts):
    folder = os.path.join(artifacts, "job_events")
    failed = []
    for name in sorted(os.listdir(folder), key=lambda n: int(n.split("-")[0])):
        with open(os.path.join(folder, name), encoding="utf-8") as handle:
            event = json.load(handle)
        if event.get("event") == "runner_on_failed" and not event["event_data"].get("ignore_errors"):
            failed.append(event["event_data"]["res"].get("msg", ""))
    return " ".join(str(failed[-1]).split()) if failed else ""


def playbook_pid(job):
    """The job's ansible-playbook: the runner's child, on a pty in a session (and process group) of its own."""
    proc = subprocess.run(["pgrep", "-P", str(job["proc"].pid), "-f", "ansible-playbook"], stdout=subprocess.PIPE,
                          text=True, check=False)
    return int(proc.stdout.split()[0]) if proc.stdout.split() else None


def hold_at(host, job, path, step):
    """Hold a job once its checkpoint shows `step` done, as a long step would: its ansible-playbook is
    stopped, so it starts no next task. Only that process: a task's worker and its `podman exec` are
    left to finish (a stopped podman client can hold the container's lock and hang every other one)."""
    if not host.wait(lambda: step in ((host.json(path) or {}).get("done") or {}) and (host.json(path) or {}).get("run_id") == job["id"],
                     timeout=300):
        raise SystemExit("job %s never reached %s" % (job["id"], step))
    job["held"] = playbook_pid(job)
    if job["held"] is None:
        raise SystemExit("job %s has no ansible-playbook process" % job["id"])
    os.kill(job["held"], signal.SIGSTOP)


def go_on(job):
    os.kill(job.pop("held"), signal.SIGCONT)


def triage_during(awx, host, day, holder_runbook, problem=None):
    """An hourly triage while another run holds the host: it must observe and touch nothing."""
    if problem:
        host.sh("sandbox-fault set kill %s" % problem)
        host.wait(lambda: host.statuses().get(problem) == "exited", 30)
    job = awx.run("hourly triage", "api_triage.yml", day)
    touched = [argv for argv in calls(host, job["id"]) if argv[:1] in DISRUPTIVE]
    record = [r for r in host.lines(STATE + "/runs.jsonl") if r["run_id"] == job["id"]][-1]
    ok = job["status"] == "successful" and not touched and record["summary"].startswith("maintenance by run") \
        and (" of %s " % holder_runbook) in record["summary"]
    job["during"] = {"holder": holder_runbook, "touched": touched, "summary": record["summary"], "ok": ok}
    if problem:
        host.sh("sandbox-fault clear")
    return job


def calls(host, run_id):
    return [e["argv"] for e in host.lines("/var/lib/nself-sandbox/calls.jsonl") if e.get("run_id") == run_id]


def month(awx, host, days):
    nightly = {"backup_dest": BACKUPS, "backup_keep_count": KEEP, "backup_keep_days": 0}
    events = []
    awx.run("enable point-in-time recovery", "db_pitr_enable.yml", 0, user="alice")
    for day in range(1, days + 1):
        if day == 10:
            free = int(host.sh("df -B1 --output=avail %s | tail -1" % BACKUPS).stdout)
            host.sh("fallocate -l %d %s/runaway.log" % (max(free - 4096, 0), BACKUPS))
            events.append("night 10: a runaway log filled %s" % BACKUPS)
        awx.run("nightly backup", "db_backup.yml", day, nightly)
        if day == 10:
            host.sh("rm -f %s/runaway.log" % BACKUPS)  # logrotate, during the day
            events.append("day 10: the log was rotated away")
        awx.run("nightly base backup", "db_pitr_base_backup.yml", day, {"pitr_base_keep": 3})
        awx.run("daily key-age check", "rotate_jwt.yml", day, {"rotate_jwt_mode": "scheduled", "runbook_confirm": "rotate_jwt@" + host.name})
        awx.run("hourly triage", "api_triage.yml", day)
        if day % 7 == 0:
            awx.run("weekly restore drill", "db_restore_drill.yml", day, {"restore_drill_backups_dir": BACKUPS})
        if day == 12:
            source = [j for j in awx.jobs if j["template"] == "nightly backup" and j["day"] == 11][0]
            restore = awx.launch("restore (by hand)", "db_restore.yml", day, {
                "restore_source": artifact(host, source), "restore_backups_dir": BACKUPS,
                "runbook_confirm": "db_restore@" + host.name}, user="alice")
            hold_at(host, restore, STATE + "/runs/db_restore.json", "stop_services")
            triage_during(awx, host, day, "db_restore")
            go_on(restore)
            awx.wait(restore)
            events.append("day 12: alice restored the night 11 backup; a triage fired while the services were stopped")
        if day == 20:
            rotation = awx.launch("rotate the signing key (by hand)", "rotate_jwt.yml", day,
                                  {"rotate_jwt_mode": "forced", "runbook_confirm": "rotate_jwt@" + host.name}, user="alice")
            hold_at(host, rotation, STATE + "/runs/rotate_jwt.json", "rotate")
            triage_during(awx, host, day, "rotate_jwt", problem="auth")
            go_on(rotation)
            awx.wait(rotation)
            events.append("day 20: alice rotated the key; a triage fired while it held the host, with auth down")
        awx.run("hourly triage", "api_triage.yml", day)
        print("day %2d: %s" % (day, ", ".join("%s %s" % (j["template"], j["status"]) for j in awx.jobs if j["day"] == day)),
              flush=True)
    return events


def artifact(host, job):
    record = [r for r in host.lines(STATE + "/runs.jsonl") if r["run_id"] == job["id"]][-1]
    return record["artifacts"][0]


def check(awx, host):
    """What must hold after the month: (name, ok, detail) rows."""
    records = host.lines(STATE + "/runs.jsonl")
    launched = [j["id"] for j in awx.jobs]
    by_id = {}
    for record in records:
        by_id.setdefault(record["run_id"], []).append(record)
    rows = [("one run record per job", sorted(by_id) == sorted(launched) and all(len(v) == 1 for v in by_id.values()),
             "%d jobs, %d records" % (len(launched), len(records)))]
    backups = [j for j in awx.jobs if j["template"] == "nightly backup"]
    failed = [j for j in backups if j["status"] != "successful"]
    night10 = [j for j in backups if j["day"] == 10]
    rows.append(("the night of the full disk failed with its cause, the next night succeeded",
                 [j["day"] for j in failed] == [10] and "free" in night10[0]["failure"]
                 and [j for j in backups if j["day"] == 11][0]["status"] == "successful",
                 "night 10: %s" % (night10[0]["failure"][:160] if night10 else "?")))
    taken = [artifact(host, j) for j in backups if j["status"] == "successful"]
    kept = sorted(host.sh("ls %s/*.dump 2>/dev/null" % BACKUPS).stdout.split())
    rows.append(("backups exactly as retention keeps them (the %d newest)" % KEEP, kept == sorted(taken[-KEEP:]),
                 "%d taken, %d kept" % (len(taken), len(kept))))
    locks = [n for n in host.sh("ls -A %s/locks" % STATE).stdout.split() if n != ".guard"]
    running = [n for n in host.sh("ls %s/runs" % STATE).stdout.split()
               if (host.json("%s/runs/%s" % (STATE, n)) or {}).get("status") == "running"]
    rows.append(("no lock and no unfinished run left", not locks and not running, "locks %s, unfinished %s" % (locks, running)))
    during = [j["during"] for j in awx.jobs if "during" in j]
    rows.append(("triage during the restore and the rotation touched nothing", len(during) == 2 and all(d["ok"] for d in during),
                 "; ".join(d["summary"][:110] for d in during)))
    statuses = host.statuses()
    rows.append(("every service healthy", set(statuses.values()) == {"healthy"}, json.dumps(statuses)))
    drills = [j for j in awx.jobs if j["template"] == "weekly restore drill"]
    rows.append(("every weekly drill passed", drills and all(j["status"] == "successful" for j in drills), "%d drills" % len(drills)))
    others = [j for j in awx.jobs if j["template"] != "nightly backup" and j["status"] != "successful"]
    failures = ", ".join("%s day %d: %s" % (j["template"], j["day"], j["failure"][:120]) for j in others)
    rows.append(("every other job succeeded", not others, failures))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    host = Host(args.host)
    workdir = tempfile.mkdtemp(prefix="nfamily-soak-")
    awx = Awx(host, workdir)
    started = time.time()
    try:
        events = month(awx, host, args.days)
        rows = check(awx, host)
    finally:
        for job in awx.jobs:
            if job["proc"].poll() is None:
                playbook = playbook_pid(job)
                if playbook:
                    os.killpg(playbook, signal.SIGKILL)  # the playbook and its workers
                os.killpg(job["proc"].pid, signal.SIGKILL)
    wall = round(time.time() - started)
    print("\n| check | result | detail |\n|---|---|---|")
    for name, ok, detail in rows:
        print("| %s | %s | %s |" % (name, "ok" if ok else "FAILED", detail))
    by_template = {}
    for job in awx.jobs:
        by_template.setdefault(job["template"], []).append(job.get("seconds", 0))
    print("\n| job template | jobs | median s |\n|---|---|---|")
    for template, seconds in sorted(by_template.items()):
        print("| %s | %d | %.1f |" % (template, len(seconds), sorted(seconds)[len(seconds) // 2]))
    print("\n%d days, %d jobs, wall time %d min %d s" % (args.days, len(awx.jobs), wall // 60, wall % 60))
    os.makedirs(os.path.join(REPO, "tests", "output"), exist_ok=True)
    with open(os.path.join(REPO, "tests", "output", "soak.json"), "w", encoding="utf-8") as handle:
        json.dump({"days": args.days, "wall_s": wall, "events": events, "checks": [list(r) for r in rows],
                   "jobs": [{k: j.get(k) for k in ("id", "template", "day", "status", "seconds", "failure", "during")}
                            for j in awx.jobs]}, handle, indent=1)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(ok for _name, ok, _detail in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
