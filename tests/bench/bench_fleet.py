"""`make bench-fleet`: the runbooks across many sandbox hosts in one inventory, with forks, as AWX runs them.

1. Scaling: the service report, triage of a healthy host and a backup, each run on the first N hosts (N in --sizes)
   with forks = N, alternated, REPEAT times each: wall(N) / wall(1) (medians), the controller's CPU time (the
   ansible-playbook process and its children: forks and `podman exec` clients), the whole machine's CPU time, and the
   peak RSS of the controller's process tree. Every host is on this machine, so the hosts' own work (nself, psql,
   curl inside the containers) shares its cores with the controller; the machine's CPU time less the controller's is
   that work.
2. Destructive runbooks run one host at a time and stop at the first failure: a restore across three hosts, of a
   backup that the first and the third have and the second lacks. The first is restored, the second fails, and the
   third is never touched, although its restore would have worked.

Ansible reaches the hosts as in `make bench`: pipelined, one process per module.
Usage: python tests/bench/bench_fleet.py --sizes 1,2,4 HOST_CONTAINER...
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from bench import REPO, median, write_figures, write_inventory

REPEAT = 3
STATE = "/var/lib/nfamily-ops"
RUNBOOKS = [("service report", "service_report.yml"), ("triage of a healthy host", "api_triage.yml"), ("backup", "db_backup.yml")]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds():
    """Busy CPU seconds of the whole machine since boot (every state of /proc/stat's cpu line but idle and iowait)."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


def tree_rss_kib(root):
    """RSS of root and all its descendants, in KiB."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, encoding="ascii", errors="replace") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open("/proc/%d/status" % pid, encoding="ascii", errors="replace") as handle:
                total += sum(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
        except OSError:
            continue
    return total


def run_playbook(inventory, playbook, workdir, forks, *extra):
    """Run a playbook; returns (output, wall s, controller CPU s, machine CPU s, peak controller RSS MB)."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CONNECTION_PLUGINS=os.path.join(REPO, "tests", "connection_plugins"))
    argv = ["ansible-playbook", "-i", inventory, os.path.join(REPO, "playbooks", playbook), "--forks", str(forks),
            "-e", "runbook_report_dir=%s" % os.path.join(workdir, "reports")] + list(extra)
    output = tempfile.TemporaryFile(mode="w+")
    machine_before, started = machine_cpu_seconds(), time.monotonic()
    proc = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, env=env)
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_kib(proc.pid))
            done.wait(0.2)
    sampler = threading.Thread(target=sample)
    sampler.start()
    status, usage = os.wait4(proc.pid, 0)[1:]  # the child's own CPU time, with that of the children it waited for
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall, machine = time.monotonic() - started, machine_cpu_seconds() - machine_before
    done.set()
    sampler.join()
    output.seek(0)
    return output.read(), wall, usage.ru_utime + usage.ru_stime, machine, peak[0] / 1024.0


def scaling(hosts, sizes, workdir):
    inventories = dict((n, write_inventory(os.path.join(workdir, "hosts-%d.yml" % n), hosts[:n])) for n in sizes)
    runs = dict(((label, n), []) for label, playbook in RUNBOOKS for n in sizes)
    for rep in range(REPEAT):
        for label, playbook in RUNBOOKS:
            for n in sizes:
                output, wall, controller, machine, rss = run_playbook(inventories[n], playbook, workdir, n)
                failed = [line for line in output.splitlines() if " : ok=" in line and ("failed=0" not in line or "unreachable=0" not in line)]
                if failed or output.count(" : ok=") != n:
                    raise SystemExit("%s on %d hosts did not succeed everywhere:\n%s" % (playbook, n, output[-3000:]))
                runs[(label, n)].append({"wall_s": round(wall, 2), "controller_cpu_s": round(controller, 2),
                                         "machine_cpu_s": round(machine, 2), "controller_peak_rss_mb": round(rss, 1)})
                print("bench-fleet: run %d: %s on %d host(s): %.1f s wall, controller CPU %.1f s, machine CPU %.1f s, "
                      "controller peak RSS %.0f MB" % (rep + 1, label, n, wall, controller, machine, rss), flush=True)
    return runs


def sh(host, script):
    proc = subprocess.run(["podman", "exec", host, "sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("on %s: %s\n%s" % (host, script, proc.stderr[-2000:]))
    return proc.stdout


def restore_records(host):
    lines = sh(host, "cat %s/runs.jsonl 2>/dev/null || true" % STATE).splitlines()
    return [record for record in (json.loads(line) for line in lines) if record.get("runbook") == "db_restore"]


def serial_stop(hosts, workdir):
    """A restore across three hosts whose second lacks the backup: returns what each host saw, and fails unless the
    first was restored, the second failed and the third was not touched."""
    first, second, third = hosts[:3]
    both = write_inventory(os.path.join(workdir, "hosts-serial-backup.yml"), [first, third])
    output = run_playbook(both, "db_backup.yml", workdir, 2, "-e", "backup_name=serial-proof.dump")[0]
    if output.count(" : ok=") != 2 or "failed=1" in output:
        raise SystemExit("the backups for the serial proof failed:\n%s" % output[-3000:])
    inventory = write_inventory(os.path.join(workdir, "hosts-serial.yml"), [first, second, third],
                                runbook_confirm="db_restore@%s")
    before = dict((host, len(restore_records(host))) for host in (first, second, third))
    output = run_playbook(inventory, "db_restore.yml", workdir, 3, "-e", "restore_source=serial-proof.dump")[0]
    after = dict((host, restore_records(host)) for host in (first, second, third))
    seen = {
        first: after[first][-1]["result"] if len(after[first]) > before[first] else "not run",
        second: after[second][-1]["result"] if len(after[second]) > before[second] else "not run",
        third: after[third][-1]["result"] if len(after[third]) > before[third] else "not run",
    }
    expected = {first: "success", second: "failed", third: "not run"}
    if seen != expected:
        raise SystemExit("serial: expected %s, saw %s\n%s" % (expected, seen, output[-3000:]))
    return seen, output


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,2,4")
    parser.add_argument("hosts", nargs="+")
    opts = parser.parse_args()
    sizes = [int(n) for n in opts.sizes.split(",")]
    if max(sizes) > len(opts.hosts) or len(opts.hosts) < 3:
        raise SystemExit("need at least max(--sizes) hosts and 3 for the serial proof")
    workdir = tempfile.mkdtemp(prefix="nfamily-bench-fleet-")
    runs = scaling(opts.hosts, sizes, workdir)
    seen, output = serial_stop(opts.hosts, workdir)
    print("bench-fleet: a restore across %s: %s" % (", ".join(sorted(seen)), ", ".join("%s %s" % item for item in sorted(seen.items()))))

    def figure(label, n, what):
        return median([run[what] for run in runs[(label, n)]])
    print("\nnfamily.ops fleet benchmark: %d sandbox hosts on this machine (%d CPUs, %.0f GB), medians of %d alternated runs, "
          "forks = hosts" % (max(sizes), os.cpu_count(), os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, REPEAT))
    print("| runbook | hosts | wall (s) | wall(N) / wall(1) | controller CPU (s) | per host | machine CPU (s) | controller peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = {}
    for label, playbook in RUNBOOKS:
        for n in sizes:
            ratio = figure(label, n, "wall_s") / figure(label, 1, "wall_s")
            ratios["%s, %d hosts" % (label, n)] = round(ratio, 3)
            print("| %s | %d | %.1f | %.2f | %.1f | %.2f | %.1f | %.0f |" % (
                label, n, figure(label, n, "wall_s"), ratio, figure(label, n, "controller_cpu_s"),
                figure(label, n, "controller_cpu_s") / n, figure(label, n, "machine_cpu_s"), figure(label, n, "controller_peak_rss_mb")))
    if 4 in sizes:
        print("\n| target | value | met |\n|---|---|---|")
        for label in ("service report", "triage of a healthy host"):
            ratio = ratios["%s, 4 hosts" % label]
            print("| %s: wall(4) / wall(1) <= 1.5 | %.2f | %s |" % (label, ratio, "yes" if ratio <= 1.5 else "NO"))
    print("| a destructive runbook (restore) stops at the first failed host, one host at a time | %s | yes |"
          % ", ".join("%s: %s" % item for item in sorted(seen.items())))
    result = {"sizes": sizes, "runs": dict(("%s|%d" % key, value) for key, value in runs.items()), "ratios": ratios, "serial": seen}
    write_figures("bench_fleet.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
