# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""The outage runbooks' resolution tables as functions of the evidence the roles collect.

classify() takes one evidence dict and returns the root cause, the services concerned, the evidence
lines that support it, and the table's action. The order of the checks is the order of causality:
a database that is down makes auth and api fail their readiness, so it is named, not them; a
service that cannot start because another process holds its port is a port conflict, not a bad
config; a crash that left "out of memory" in its logs is an OOM, not a plain crash; an nginx that
exited on a config error is a misconfiguration; a service Docker keeps restarting is a crash loop.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.nfamily.ops.plugins.module_utils import _ports as ports

UP = ("healthy", "starting")
DOWN = ("exited", "stopped", "dead", "created", "removing", "restarting", "paused", "not_found")
OOM_RE = re.compile(r"out of memory|heap out of memory|oomkilled|cannot allocate memory|killed process .* oom", re.I)
NGINX_CONFIG_RE = re.compile(r"\[emerg\]|configuration file .* test failed|unknown directive|host not found in upstream", re.I)
EXHAUSTED_RE = re.compile(r"too many clients|remaining connection slots are reserved|too many connections", re.I)
EXHAUSTED_PERCENT = 90

ACTIONS = {
    "healthy": ("none", False, "nothing to do"),
    "database_down": ("restart", False, "nself restart postgres, then check that the database answers"),
    "connection_pool_exhausted": ("full_restart", True, "nself stop && nself start (full restart)"),
    "out_of_memory": ("manual", True, "raise the container memory limits in .env, then nself build && nself restart"),
    "port_conflict": ("manual", False, "stop the process holding the port, or move the service to a free port in "
                                       ".env (nself build), then nself restart <service>"),
    "crash_loop": ("restart", False, "nself restart <service>"),
    "service_crashed": ("restart", False, "nself restart <service>"),
    "service_unhealthy": ("restart", False, "nself restart <service>"),
    "nginx_misconfigured": ("rebuild_nginx", True, "nself build to regenerate the config, then nself restart nginx"),
    "dns_failure": ("manual", False, "check the server's DNS settings and the domain's records"),
    "unknown": ("manual", False, "read the evidence; nself doctor; review recent changes, consider a rollback"),
}


def _statuses(evidence):
    return dict((s.get("name"), s.get("status") or "unknown") for s in evidence.get("services") or [])


def _log_hits(evidence, service, pattern):
    return [entry.get("message", "") for entry in (evidence.get("logs") or {}).get(service, [])
            if pattern.search(entry.get("message", ""))]


def _last_log(evidence, service):
    entries = (evidence.get("logs") or {}).get(service) or []
    return "; its last log line: %s" % entries[-1].get("message", "")[:200] if entries else ""


def classify(evidence):
    """{cause, services, evidence, action, disruptive, description} for the evidence of one host."""
    statuses = _statuses(evidence)
    database = evidence.get("database") or {}
    cause, services, lines = _classify(evidence, statuses, database)
    lines = lines + list(evidence.get("parse_warnings") or [])
    kind, disruptive, description = ACTIONS[cause]
    if kind == "restart" and services:
        description = "nself restart %s" % " ".join(services) if cause != "database_down" else description
    description = description.replace("<service>", " ".join(services))
    return {"cause": cause, "services": services, "evidence": lines, "action": kind, "disruptive": disruptive,
            "description": description}


def _classify(evidence, statuses, database):
    postgres = statuses.get("postgres")
    db_error = database.get("error") or ""
    if postgres is not None and postgres not in UP + ("unhealthy",):
        return "database_down", ["postgres"], ["postgres is %s" % postgres] + (["SELECT 1: %s" % db_error] if db_error else [])
    if database and not database.get("reachable") and not EXHAUSTED_RE.search(db_error):
        return "database_down", ["postgres"], ["postgres is %s but SELECT 1 fails: %s" % (postgres or "unknown", db_error)]
    if EXHAUSTED_RE.search(db_error):
        return "connection_pool_exhausted", ["postgres"], ["SELECT 1: %s" % db_error]
    if database.get("usage_percent") is not None and database["usage_percent"] >= EXHAUSTED_PERCENT:
        return "connection_pool_exhausted", ["postgres"], ["%s of %s connections in use" % (
            database.get("connections"), database.get("max_connections"))]

    down = [name for name, status in statuses.items() if status in DOWN]
    holders = [h for h in evidence.get("port_holders") or [] if statuses.get(h.get("service")) in ports.NOT_RUNNING]
    if holders:
        services = sorted(set(h["service"] for h in holders))
        return "port_conflict", services, ["%s is %s" % (name, statuses[name]) for name in services] + ports.describe(holders)
    oom = [name for name in down if _log_hits(evidence, name, OOM_RE)]
    if oom:
        return "out_of_memory", oom, ["%s: %s" % (name, _log_hits(evidence, name, OOM_RE)[-1]) for name in oom]
    nginx_config = _log_hits(evidence, "nginx", NGINX_CONFIG_RE)
    if statuses.get("nginx") in DOWN + ("unhealthy",) and nginx_config:
        return "nginx_misconfigured", ["nginx"], ["nginx is %s: %s" % (statuses["nginx"], nginx_config[-1])]
    looping = sorted(name for name in down if statuses[name] == "restarting")
    if looping:
        others = sorted(set(down) - set(looping))
        return "crash_loop", looping + others, [
            "%s is restarting: it exits on every start and Docker keeps restarting it%s" % (name, _last_log(evidence, name))
            for name in looping] + ["%s is %s%s" % (name, statuses[name], _last_log(evidence, name)) for name in others]
    if down:
        return "service_crashed", sorted(down), ["%s is %s%s" % (name, statuses[name], _last_log(evidence, name))
                                                 for name in sorted(down)]
    unhealthy = sorted(name for name, status in statuses.items() if status == "unhealthy")
    if unhealthy:
        return "service_unhealthy", unhealthy, ["%s is unhealthy" % name for name in unhealthy]

    routes = [r for r in evidence.get("routes") or [] if not r.get("ok")]
    if routes:
        return "nginx_misconfigured", ["nginx"], ["%s answered %s" % (r.get("name"), r.get("status")) for r in routes]
    dns = evidence.get("dns") or {}
    if dns and not dns.get("resolved"):
        return "dns_failure", [], ["%s does not resolve on the host: %s" % (dns.get("domain"), dns.get("error") or "no address")]
    endpoints = [e for e in evidence.get("endpoints") or [] if not e.get("ok")]
    if endpoints:
        return "unknown", [], ["%s: %s %s" % (e.get("name"), e.get("status"), e.get("detail", "")) for e in endpoints]
    return "healthy", [], ["every service healthy, the database answers, every endpoint and route answers"]


# ---------------------------------------------------------------- object storage

STORAGE_ACTIONS = {
    "healthy": ("none", "nothing to do"),
    "minio_down": ("restart", "nself restart minio"),
    "permission_error": ("manual", "make the access and secret keys in the env files match what MinIO accepts"),
    "bucket_missing": ("create_buckets", "recreate the bucket(s) with their policy"),
    "disk_full": ("prune", "delete old media under the prune policy, or expand the storage"),
}


def classify_storage(evidence, disk_max_used_percent=95):
    """{cause, buckets, evidence, action, description} of the object storage runbook's table."""
    status = evidence.get("status") or "unknown"
    info = evidence.get("minio") or {}
    disk = evidence.get("disk") or {}
    if status not in UP or not info.get("reachable"):
        cause, lines = "minio_down", ["minio is %s" % status] + ([] if info.get("reachable") else ["the S3 endpoint does not answer"])
    elif not info.get("credentials_accepted"):
        rejected = [s["name"] for s in info.get("credential_sets") or [] if not s.get("accepted")]
        cause = "permission_error"
        lines = ["the configured credentials are refused (%s)" % (info.get("credential_error") or "error")]
        lines += ["%s is refused by the server" % name for name in rejected]
        lines += ["%s is accepted" % s["name"] for s in info.get("credential_sets") or [] if s.get("accepted")]
    elif info.get("missing_buckets"):
        cause, lines = "bucket_missing", ["bucket %s does not exist" % name for name in info["missing_buckets"]]
    elif disk.get("used_percent") is not None and disk["used_percent"] >= disk_max_used_percent:
        cause, lines = "disk_full", ["the minio volume %s is %d%% used (%d MiB free)" % (
            disk.get("path"), disk["used_percent"], (disk.get("free_bytes") or 0) // 1048576)]
    else:
        cause, lines = "healthy", ["minio is healthy, the credentials are accepted, every bucket exists, the disk has room"]
    action, description = STORAGE_ACTIONS[cause]
    return {"cause": cause, "buckets": (info.get("missing_buckets") or []) if cause == "bucket_missing" else [],
            "evidence": lines, "action": action, "description": description}
