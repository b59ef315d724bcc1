"""Database runbook benchmark (`make bench`): one run on a dedicated sandbox host, every ratio
against the raw tool on the same data, measured now. Prints a table and writes bench.json.

1. Grows the database with nFamily-shaped rows (generate.sql) to the small size, measures the peak
   RSS of the db_backup (with an offsite copy) and db_restore module processes; then again at the
   large size (>= 1 GB on disk).
2. Backup: `nself exec postgres pg_dump -Fc > file` (raw) against the db_backup module run by
   ansible, both wall time, alternated three times, medians compared.
3. Offsite: upload throughput of db_backup's offsite copy (encrypted, as production sends it) against
   boto3's upload_file of the same file to the same store with default settings (medians of three
   alternated runs); and of a copy without encryption (allow_plaintext), which isolates what the
   encryption costs from what the module adds.
4. Restore: the restore role (playbooks/db_restore.yml with its defaults) against the runbook's manual
   path done right: stop the services, drop and create the database, plain SQL piped to psql,
   start the services, wait until healthy (medians of three alternated runs). Also how long the role
   kept the services down (from its stop task's start to its start task's end) against the manual
   path, which is down throughout, and where the role's time went, task by task.
5. Triage of the healthy host against the runbook's investigation commands in a shell script on the
   host, plus the floor every playbook pays (a one-task playbook on the same host, in the same run).
6. No-op second runs: for each runbook whose second run has nothing to do (a rotation not due, a
   revocation already done, storage healthy after a repair), the second run's time over the first's.

Ansible reaches the host as the Molecule suites do and as production does over SSH: pipelined
(tests/connection_plugins/podman_pipelined.py), one process per module.

Usage: python tests/bench/bench.py HOST_CONTAINER [--small-mb 300] [--large-mb 1100]
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROJECT = "/opt/nself-family/backend"
DB = "nself_family"
SERVICES = ["hasura", "auth", "api", "scheduler"]
REPEAT = 3
BENCH_OFFSITE_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # a test key: bytes 0..31


def write_inventory(path, hosts, **host_vars):
    """An inventory of sandbox hosts in the prod group, reached pipelined, with the sandbox's group variables.
    host_vars: values with %s, filled with each host's name. Returns path."""
    with open(os.path.join(REPO, "inventories", "sandbox", "group_vars", "nfamily_backend.yml"), encoding="utf-8") as handle:
        group_vars = yaml.safe_load(handle)
    entries = dict((name, dict({"ansible_connection": "podman_pipelined", "ansible_python_interpreter": "/usr/bin/python3"},
                               **dict((var, value % name) for var, value in host_vars.items()))) for name in hosts)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump({"all": {"children": {"nfamily_backend": {"vars": group_vars, "children": {"prod": {"hosts": entries}}}}}},
                       handle)
    return path


def write_figures(name, figures):
    """Keep a benchmark's raw figures in tests/output/<name> and say where."""
    with open(os.path.join(REPO, "tests", "output", name), "w", encoding="utf-8") as handle:
        json.dump(figures, handle, indent=1)
    print("\nraw figures: tests/output/%s" % name)


class Host:
    def __init__(self, name, workdir):
        self.name = name
        self.workdir = workdir
        self.inventory = write_inventory(os.path.join(workdir, "hosts.yml"), [name])

    def sh(self, script, check=True):
        proc = subprocess.run(["podman", "exec", "-w", PROJECT, self.name, "sh", "-c", script],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
        if check and proc.returncode != 0:
            raise SystemExit("on %s: %s\n%s" % (self.name, script, proc.stderr[-2000:]))
        return proc.stdout.strip()

    def psql(self, sql, database=DB):
        return self.sh("psql -X -A -t -h /var/run/postgresql -U postgres -d %s -c \"%s\"" % (database, sql))

    def db_bytes(self):
        return int(self.psql("SELECT pg_database_size('%s')" % DB))

    def ansible(self, args, **env_extra):
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_CONNECTION_PLUGINS=os.path.join(REPO, "tests", "connection_plugins"), **env_extra)
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise SystemExit("%s failed:\n%s" % (" ".join(args[:3]), proc.stdout[-3000:]))
        return proc.stdout

    def module(self, module_name, named_process=False, **args):
        """Run one module with ansible (ad hoc); returns its result. named_process: through the unpipelined podman
        connection, where the module's process is named after it (AnsiballZ_<module>.py) for the RSS sampler; a
        pipelined module is a bare python3 reading stdin."""
        unpipelined = ["-e", "ansible_connection=containers.podman.podman"] if named_process else []
        out = self.ansible(["ansible", self.name, "-i", self.inventory, "-m", "nfamily.ops." + module_name, "-a", json.dumps(args)]
                           + unpipelined, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
        return json.loads(out[out.index("{"):])["plays"][0]["tasks"][0]["hosts"][self.name]

    def playbook(self, playbook, *extra, **env_extra):
        path = playbook if os.path.isabs(playbook) else os.path.join(REPO, "playbooks", playbook)
        return self.ansible(["ansible-playbook", "-i", self.inventory, path,
                             "-e", "runbook_report_dir=%s" % os.path.join(self.workdir, "reports")] + list(extra), **env_extra)

    def timed_playbook(self, playbook, *extra):
        """(wall seconds, [(task name, start, end)] in run order) of a playbook run, from the json callback."""
        started = time.monotonic()
        out = self.playbook(playbook, *extra, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
        wall = time.monotonic() - started
        tasks = [(task["task"]["name"], parse_iso(task["task"]["duration"]["start"]), parse_iso(task["task"]["duration"]["end"]))
                 for play in json.loads(out[out.index("{"):])["plays"] for task in play["tasks"] if "end" in task["task"]["duration"]]
        return wall, tasks


def median(values):
    return sorted(values)[len(values) // 2]


def parse_iso(text):
    """Seconds since the epoch of the json callback's task times (2026-12-01T16:20:01.123456Z)."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def timed(action):
    """Seconds action took."""
    started = time.monotonic()
    action()
    return time.monotonic() - started


def grow(host, target_bytes):
    while host.db_bytes() < target_bytes:
        host.sh("psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -U postgres -d %s -f /tmp/bench/generate.sql" % DB)
    host.psql("ANALYZE")
    return host.db_bytes()


def peak_rss(host, pattern, action):
    """Run action while a sampler inside the host records the peak RSS (MB) of processes matching pattern."""
    stop = "/tmp/bench/stop-%s" % pattern
    host.sh("rm -f %s" % stop)
    sampler = subprocess.Popen(["podman", "exec", host.name, "python3", "/tmp/bench/rss_sampler.py", pattern, stop],
                               stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    try:
        action()
    finally:
        host.sh("touch %s" % stop)
    peak = json.loads(sampler.communicate()[0])
    if not peak["pids"]:
        raise SystemExit("the RSS sampler saw no %s process" % pattern)
    return peak["peak_kib"] / 1024.0


def backup_module(host, name, named_process=False, **extra):
    return host.module("db_backup", named_process=named_process, project_dir=PROJECT, dest="/tmp/bench/backups", name=name, **extra)


def restore_module(host, name, named_process=False):
    return host.module("db_restore", named_process=named_process, project_dir=PROJECT, source="/tmp/bench/backups/%s" % name,
                       keep_previous=0)


def all_healthy(host):
    statuses = json.loads(host.sh("nself status --json"))["services"]
    return all(s["status"] == "healthy" for s in statuses)


def wait_healthy(host, timeout=300):
    deadline = time.monotonic() + timeout
    while not all_healthy(host):
        if time.monotonic() > deadline:
            raise SystemExit("services did not come back healthy")
        time.sleep(1)


# The restore role's tasks that stop and start the services: the outage is from the first's start to the second's end.
STOP_TASK = "Stop them and wait until they are down"
START_TASK = "Start them and wait until they are healthy"


def time_breakdown(wall, tasks, slowest=6):
    """Lines saying where a playbook's wall time went: its slowest tasks, the rest of its tasks, and what no task
    accounts for (start-up, loading, the gaps between tasks)."""
    ranked = sorted(tasks, key=lambda task: task[1] - task[2])
    lines = ["%5.1f s  %s" % (end - start, name) for name, start, end in ranked[:slowest]]
    rest = ranked[slowest:]
    lines.append("%5.1f s  the other %d tasks" % (sum(end - start for name, start, end in rest), len(rest)))
    lines.append("%5.1f s  outside any task (start-up, includes, between tasks)" % (wall - sum(end - start for name, start, end in tasks)))
    return lines


def manual_restore(host):
    """The runbook's path, done so that it works: stop, fresh database, plain SQL into psql, start."""
    host.sh("nself stop %s" % " ".join(SERVICES))
    host.sh("psql -X -q -h /var/run/postgresql -U postgres -d postgres -c 'DROP DATABASE %s WITH (FORCE)' -c 'CREATE DATABASE %s'"
            % (DB, DB))
    host.sh("nself exec -i postgres psql -X -q -U postgres -d %s < /tmp/bench/plain.sql > /dev/null 2>&1" % DB)
    host.sh("nself restart %s" % " ".join(SERVICES), check=False)
    wait_healthy(host)


def restore_times(host):
    """([(role wall s, services down s, tasks)], [manual wall s]), alternated, REPEAT of each. The role runs with its
    defaults (the swap keeps the replaced database, so no safety dump); the manual path's fresh database carries no
    restore marker, so each role run restores again."""
    host.sh("nself exec postgres pg_dump -U postgres -d %s -Fp > /tmp/bench/plain.sql" % DB)
    host.psql("INSERT INTO public.families (name) VALUES ('changed before the restore')")
    args = ["-e", "restore_source=/tmp/bench/backups/timed.dump", "-e", "restore_backups_dir=/tmp/bench/backups",
            "-e", "runbook_confirm=db_restore@%s" % host.name]
    role_runs, manual_runs = [], []
    for dummy in range(REPEAT):
        wall, tasks = host.timed_playbook("db_restore.yml", *args)
        stopping = [start for name, start, end in tasks if name.split(" : ")[-1] == STOP_TASK]  # "<role> : <task>"
        started = [end for name, start, end in tasks if name.split(" : ")[-1] == START_TASK]
        if not (stopping and started):
            raise SystemExit("the restore ran no %r or %r task: the bench no longer matches roles/restore" % (STOP_TASK, START_TASK))
        role_runs.append((wall, started[-1] - stopping[0], tasks))
        manual_runs.append(timed(lambda: manual_restore(host)))
    return role_runs, manual_runs


def raw_upload_seconds(host, path):
    script = ("import boto3, time, sys; from botocore.config import Config\n"
              "env = dict(l.strip().split('=', 1) for f in ('.env.dev', '.env.prod', '.env.secrets') "
              "for l in open(f) if '=' in l and not l.startswith('#'))\n"
              "s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:' + env.get('MINIO_PORT', '9000'), "
              "aws_access_key_id=env['MINIO_ROOT_USER'], aws_secret_access_key=env['MINIO_ROOT_PASSWORD'], "
              "region_name='us-east-1', config=Config(s3={'addressing_style': 'path'}))\n"
              "t = time.monotonic(); s3.upload_file(sys.argv[1], 'nf-backups', 'bench/raw.dump'); print(time.monotonic() - t)\n")
    host.sh("cat > /tmp/bench/raw_upload.py <<'EOF'\n%sEOF" % script)
    return float(host.sh("python3 /tmp/bench/raw_upload.py %s" % path))


# The runbook's investigation steps (runbooks.md, "API Outage Triage") as a shell script, with what it cannot mean
# literally done the way triage does it: `nself db console` is interactive (psql's SELECT 1 instead), `docker stats`
# is what `nself status --json` reports per service, and the health endpoints and routes are curled.
TRIAGE_SCRIPT = """cd %s
nself status --json >/dev/null </dev/null
for s in api auth; do nself logs $s --tail 100 >/dev/null </dev/null; done
nself logs nginx --tail 50 >/dev/null </dev/null
psql -X -A -t -h /var/run/postgresql -U postgres -d %s -c 'SELECT 1' >/dev/null
df -P %s >/dev/null
for url in http://127.0.0.1:4000/health http://127.0.0.1:4000/ready http://127.0.0.1:4001/health \\
    http://127.0.0.1:4001/ready http://127.0.0.1:8080/healthz https://127.0.0.1/health https://127.0.0.1/auth/me \\
    https://127.0.0.1/api/health; do curl -sk -m 10 -o /dev/null "$url"; done
curl -sk -m 10 -o /dev/null -H 'Host: api.family.sandbox.test' https://127.0.0.1/healthz
curl -sk -m 10 -o /dev/null -H 'Host: auth.family.sandbox.test' https://127.0.0.1/health
""" % (PROJECT, DB, PROJECT)
ONE_TASK = """- name: The floor every playbook pays (one task on the host)
  hosts: all
  gather_facts: false
  tasks:
    - name: One task
      ansible.builtin.command: "true"
      changed_when: false
"""


def triage_times(host):
    """(triage playbook, script, one-task playbook) wall times, alternated, REPEAT of each."""
    floor_playbook = os.path.join(host.workdir, "one_task.yml")
    with open(floor_playbook, "w", encoding="utf-8") as handle:
        handle.write(ONE_TASK)
    host.sh("cat > /tmp/bench/triage.sh <<'EOF'\n%sEOF" % TRIAGE_SCRIPT)
    triage, script, floor = [], [], []
    for dummy in range(REPEAT):
        triage.append(timed(lambda: host.playbook("api_triage.yml")))
        script.append(timed(lambda: host.sh("sh /tmp/bench/triage.sh")))
        floor.append(timed(lambda: host.playbook(floor_playbook)))
    return triage, script, floor


def noop_pairs(host):
    """{runbook: (first run s, second run s)} for the runbooks whose second run has nothing to do."""
    def confirm(runbook):
        return ("-e", "runbook_confirm=%s@%s" % (runbook, host.name))
    host.psql("CREATE TABLE IF NOT EXISTS public.devices_bench AS SELECT * FROM public.registered_devices")
    pairs = {"rotate_jwt (a rotation, then one not due)": [], "revoke_devices (a revocation, then the same one)": [],
             "storage_recovery (a bucket recreated, then a healthy store)": []}
    for dummy in range(REPEAT):
        rotations = pairs["rotate_jwt (a rotation, then one not due)"]
        rotations.append((timed(lambda: host.playbook("rotate_jwt.yml", "-e", "rotate_jwt_mode=forced", *confirm("rotate_jwt"))),
                          timed(lambda: host.playbook("rotate_jwt.yml", "-e", "rotate_jwt_mode=scheduled", *confirm("rotate_jwt")))))
        host.psql("UPDATE public.registered_devices d SET is_revoked = s.is_revoked, credential = s.credential, "
                  "bootstrap_token = s.bootstrap_token FROM public.devices_bench s WHERE d.id = s.id")
        revoke = ("-e", "revoke_devices_family_id=00000000-0000-0000-0000-000000000001") + confirm("revoke_devices")
        pairs["revoke_devices (a revocation, then the same one)"].append(
            (timed(lambda: host.playbook("revoke_devices.yml", *revoke)), timed(lambda: host.playbook("revoke_devices.yml", *revoke))))
        host.sh("sandbox-fault set delete_bucket nf-backups")
        pairs["storage_recovery (a bucket recreated, then a healthy store)"].append(
            (timed(lambda: host.playbook("storage_recovery.yml")), timed(lambda: host.playbook("storage_recovery.yml"))))
    return pairs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("--small-mb", type=int, default=300)
    parser.add_argument("--large-mb", type=int, default=1100)
    opts = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="nfamily-bench-")
    host = Host(opts.host, workdir)
    subprocess.run(["podman", "exec", host.name, "mkdir", "-p", "/tmp/bench/backups"], check=True)
    for name in ("generate.sql", "rss_sampler.py"):
        subprocess.run(["podman", "cp", os.path.join(HERE, name), "%s:/tmp/bench/%s" % (host.name, name)], check=True)
    results = {"rss_mb": {}}

    def log(text):
        print("bench: " + text, flush=True)

    for label, size_mb in (("small", opts.small_mb), ("large", opts.large_mb)):
        size = grow(host, size_mb * 1024 * 1024)
        log("%s database: %d MB on disk" % (label, size // 1048576))
        host.sh("rm -f /tmp/bench/backups/*")
        backup_rss = peak_rss(host, "AnsiballZ_db_backup", lambda: backup_module(
            host, "m.dump", True, offsite={"bucket": "nf-backups", "prefix": "bench-rss/", "encryption_key": BENCH_OFFSITE_KEY}))
        restore_rss = peak_rss(host, "AnsiballZ_db_restore", lambda: restore_module(host, "m.dump", True))
        results["rss_mb"][label] = {"db_mb": size // 1048576, "db_backup": round(backup_rss, 1), "db_restore": round(restore_rss, 1)}
        log("%s: db_backup peak RSS %.1f MB, db_restore peak RSS %.1f MB" % (label, backup_rss, restore_rss))

    results["db_mb"] = host.db_bytes() // 1048576
    host.sh("rm -f /tmp/bench/backups/*")
    # Alternated and repeated, the median taken: single runs of a few seconds are too noisy to compare.
    raw_backups, module_backups, raw_uploads, module_uploads, plain_uploads = [], [], [], [], []
    for dummy in range(REPEAT):
        host.sh("rm -f /tmp/bench/backups/*")
        raw_backups.append(timed(lambda: host.sh("nself exec postgres pg_dump -U postgres -d %s -Fc > /tmp/bench/raw.dump" % DB)))
        module_backups.append(timed(lambda: backup_module(host, "timed.dump")))
        raw_uploads.append(raw_upload_seconds(host, "/tmp/bench/backups/timed.dump"))
        out = backup_module(host, "offsite.dump", offsite={"bucket": "nf-backups", "prefix": "bench/", "encryption_key": BENCH_OFFSITE_KEY})
        module_uploads.append(out["backup"]["offsite"]["duration_s"])
        out = backup_module(host, "plain.dump", offsite={"bucket": "nf-backups", "prefix": "bench-plain/", "allow_plaintext": True})
        plain_uploads.append(out["backup"]["offsite"]["duration_s"])
    raw_backup, module_backup = median(raw_backups), median(module_backups)
    raw_upload, module_upload = median(raw_uploads), median(module_uploads)
    dump_bytes = int(host.sh("stat -c %s /tmp/bench/backups/timed.dump"))
    results["backup"] = {"raw_s": raw_backups, "module_s": module_backups}
    results["offsite"] = {"bytes": dump_bytes, "raw_s": raw_uploads, "module_s": module_uploads, "module_plaintext_s": plain_uploads}
    log("backup (median of %d): pg_dump -Fc %.1f s, db_backup %.1f s" % (REPEAT, raw_backup, module_backup))
    log("offsite (median of %d): boto3 upload_file %.2f s, db_backup offsite %.2f s encrypted, %.2f s without encryption (%d MB)"
        % (REPEAT, raw_upload, module_upload, median(plain_uploads), dump_bytes // 1048576))

    role_runs, manual_runs = restore_times(host)
    role_restore, manual = median([run[0] for run in role_runs]), median(manual_runs)
    role_outage = median([run[1] for run in role_runs])
    typical = sorted(role_runs, key=lambda run: run[0])[len(role_runs) // 2]
    results["restore"] = {"role_s": [round(run[0], 2) for run in role_runs], "role_outage_s": [round(run[1], 2) for run in role_runs],
                          "manual_s": [round(m, 2) for m in manual_runs],
                          "median_run_tasks": [(name, round(end - start, 3)) for name, start, end in typical[2]]}
    log("restore (median of %d): role %.1f s (services down %.1f s), manual path %.1f s (services down all along)"
        % (REPEAT, role_restore, role_outage, manual))
    log("restore: where the median role run's %.1f s went:" % typical[0])
    for line in time_breakdown(typical[0], typical[2]):
        log("  " + line)

    triage, script, floor = triage_times(host)
    results["triage"] = {"playbook_s": triage, "script_s": script, "one_task_playbook_s": floor}
    triage_ratio = median(triage) / (median(script) + median(floor))
    log("triage (median of %d): playbook %.1f s; the runbook's commands %.1f s + a one-task playbook %.1f s"
        % (REPEAT, median(triage), median(script), median(floor)))
    pairs = noop_pairs(host)
    results["noop"] = dict((name, {"first_s": [p[0] for p in runs], "second_s": [p[1] for p in runs]}) for name, runs in pairs.items())
    noop_ratios = [("second run / first run, " + name, median([p[1] for p in runs]) / median([p[0] for p in runs]))
                   for name, runs in pairs.items()]
    for name, runs in pairs.items():
        log("%s (median of %d): first %.1f s, second %.1f s" % (name, REPEAT, median([p[0] for p in runs]), median([p[1] for p in runs])))

    ratios = [
        ("backup wall time / raw pg_dump -Fc", module_backup / raw_backup, "<= 1.10", module_backup / raw_backup <= 1.10),
        ("restore role / manual psql path, wall time", role_restore / manual, "<= 0.67", role_restore / manual <= 0.67),
        ("restore role / manual psql path, services down", role_outage / manual, "<= 0.15", role_outage / manual <= 0.15),
        ("offsite upload throughput (encrypted, as production sends it) / boto3 upload_file", raw_upload / module_upload, ">= 0.95",
         raw_upload / module_upload >= 0.95),
        ("offsite upload throughput without encryption (allow_plaintext) / boto3 upload_file", raw_upload / median(plain_uploads),
         "no target", None),
        ("triage of a healthy host / (its commands in a shell + a one-task playbook)", triage_ratio, "<= 2.0", triage_ratio <= 2.0),
    ] + [(name, ratio, "<= 0.5", ratio <= 0.5) for name, ratio in noop_ratios]
    rss = results["rss_mb"]
    peak = max(max(v["db_backup"], v["db_restore"]) for v in rss.values())
    growth = max(rss["large"][m] - rss["small"][m] for m in ("db_backup", "db_restore"))
    print("\nnfamily.ops database benchmark on %s (%d MB database, %d CPUs; Ansible reaches it pipelined, one process per module, "
          "as over SSH with pipelining)" % (host.name, results["db_mb"], os.cpu_count()))
    print("| measure | value | target | met |\n|---|---|---|---|")
    for name, value, target, met in ratios:
        print("| %s | %.2f | %s | %s |" % (name, value, target, ("yes" if met else "NO") if "target" not in target else "-"))
    measured = "backup %.1f/%.1f, restore %.1f/%.1f" % (
        rss["small"]["db_backup"], rss["large"]["db_backup"], rss["small"]["db_restore"], rss["large"]["db_restore"])
    print("| peak RSS of module processes (MB), %d MB and %d MB databases | %s | < 150, flat | %s |" % (
        rss["small"]["db_mb"], rss["large"]["db_mb"], measured, "yes" if peak < 150 and growth < 10 else "NO"))
    results["ratios"] = dict((ratio[0], round(ratio[1], 3)) for ratio in ratios)
    write_figures("bench.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
