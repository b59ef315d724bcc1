# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""The traffic a host really serves, from nginx's access log as nself's nginx container writes it: to its
stdout (`access_log /dev/stdout`, nginx's combined format), read back with `docker logs --timestamps`,
which puts Docker's own UTC time before each line. A window of it gives requests, server errors (5xx)
and their rate; two windows of the same length (before and after a deploy) are compared as the
deployment checklist's "error rate above 5 %" and "no regression in key metrics" mean.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

# [docker time] remote - user [time_local] "request" status bytes "referer" "agent"
LINE_RE = re.compile(r'^(?:(?P<docker>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\s+)?'
                     r'(?P<remote>\S+) \S+ \S+ \[(?P<local>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) (?P<bytes>\d+|-)')
LOCAL_FORMAT = "%d/%b/%Y:%H:%M:%S %z"
# Requests that are not the family's traffic: the containers' own health checks.
DEFAULT_EXCLUDED = ("/health",)


def parse_time(docker, local):
    if docker:
        whole, _dot, fraction = docker[:-1].partition(".")
        moment = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
        return moment.replace(microsecond=int((fraction + "000000")[:6]), tzinfo=datetime.timezone.utc)
    return datetime.datetime.strptime(local, LOCAL_FORMAT).astimezone(datetime.timezone.utc)


def parse_line(line):
    """{time, method, path, status} of one access-log line, or None for anything else (error-log lines
    on the same stream, a startup message)."""
    match = LINE_RE.match(line.strip())
    if not match:
        return None
    try:
        moment = parse_time(match.group("docker"), match.group("local"))
    except ValueError:
        return None
    parts = match.group("request").split(" ")
    method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("-", "-")
    return {"time": moment, "method": method, "path": target.split("?", 1)[0], "status": int(match.group("status"))}


def summarize(lines, start, end, excluded=DEFAULT_EXCLUDED):
    """The window [start, end) of the log: requests, server errors (5xx), their rate (None without requests),
    requests by status class, and the paths with the most server errors."""
    counts = {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}
    error_paths = {}
    requests = 0
    for entry in (parse_line(line) for line in lines):
        if entry is None or not start <= entry["time"] < end or entry["path"] in excluded:
            continue
        requests += 1
        status_class = "%dxx" % (entry["status"] // 100)
        counts[status_class] = counts.get(status_class, 0) + 1
        if entry["status"] >= 500:
            error_paths[entry["path"]] = error_paths.get(entry["path"], 0) + 1
    top = sorted(error_paths.items(), key=lambda item: (-item[1], item[0]))[:5]
    return {"start": start.isoformat(), "end": end.isoformat(), "requests": requests, "server_errors": counts["5xx"],
            "error_rate": round(float(counts["5xx"]) / requests, 4) if requests else None, "by_status": counts,
            "top_error_paths": [{"path": path, "count": count} for path, count in top]}


def judge(before, after, max_error_rate=0.05, min_requests=20):
    """Whether the window after a deploy fires the error-rate criterion: (fired, reason). Too few requests
    after it to judge is not a firing, but says so; the window before is the comparison the reason gives."""
    if after["requests"] < min_requests:
        return False, ("%d request(s) in the window, fewer than the %d needed to judge the error rate (%s before)"
                       % (after["requests"], min_requests, describe(before)))
    fired = after["error_rate"] > max_error_rate
    return fired, "error rate %s %s %.1f %% (%s before)" % (
        describe(after), "above" if fired else "within", 100 * max_error_rate, describe(before))


def describe(window):
    if not window["requests"]:
        return "no requests"
    return "%.1f %% of %d requests" % (100 * window["error_rate"], window["requests"])
