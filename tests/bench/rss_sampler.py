"""Runs inside the benchmark host: records the peak RSS (VmHWM) of every process whose command line
contains a pattern, until a stop file appears. Prints {"peak_kib": n, "pids": m} as JSON.
Usage: python3 rss_sampler.py PATTERN STOPFILE"""
import json
import os
import sys
import time


def scan(pattern, peaks):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
            if pattern not in cmdline or "rss_sampler" in cmdline:
                continue
            with open("/proc/%s/status" % pid) as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
        except OSError:
            continue


def main():
    pattern, stop_file = sys.argv[1], sys.argv[2]
    peaks = {}
    while not os.path.exists(stop_file):
        scan(pattern, peaks)
        time.sleep(0.05)
    print(json.dumps({"peak_kib": max(peaks.values()) if peaks else 0, "pids": len(peaks)}))


if __name__ == "__main__":
    main()
