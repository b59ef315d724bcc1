# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""Who holds a service's published port on the host.

A service that is down publishes nothing, so any listener on one of its host ports is outside
the stack: a distribution nginx on 80/443, a stray container's docker-proxy, an old dev server.
The ports are those nself 0.9.9's generated compose publishes (nself-cli.md §2, §5), read from
the project's env; the listeners come from /proc/net/tcp{,6} and the owning process from
/proc/<pid>/fd, which needs root for processes of other users (the uid is always known).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd

LISTEN = "0A"
# Statuses of a container that runs no process, so whatever listens on its published ports is not its own
# (Docker never restarts a container it could not start, so a taken port leaves it exited).
NOT_RUNNING = ("exited", "created", "stopped", "dead")
# service: [(variable, default port)] of the host side of its compose `ports`.
PUBLISHED = {
    "nginx": [("NGINX_PORT", 80), ("NGINX_SSL_PORT", 443)],
    "hasura": [("HASURA_PORT", 8080)],
    "minio": [("MINIO_PORT", 9000), ("MINIO_CONSOLE_PORT", 9001)],
    "redis": [("REDIS_PORT", 6379)],
    "postgres": [("POSTGRES_PORT", 5432)],
}


def published_ports(env, service):
    """[(variable, port)] a service publishes on the host under env (the merged env cascade)."""
    if service == "postgres" and env.get("ENV", "dev") not in ("dev", "local", "development") \
            and env.get("POSTGRES_EXPOSE_PORT", "").lower() != "true":
        return []  # published only in dev or with POSTGRES_EXPOSE_PORT=true
    if service in PUBLISHED:
        return [(var, _port(env.get(var), default)) for var, default in PUBLISHED[service]]
    for index in range(1, 21):
        fields = (env.get("CS_%d" % index) or "").split(":")
        if fields[0] == service and len(fields) > 2 and fields[2] not in ("", "0"):
            return [("CS_%d" % index, _port(fields[2], 0))]
    return []


def _port(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def listening_sockets(proc="/proc"):
    """{port: [(inode, uid)]} of the TCP sockets listening on the host."""
    found = {}
    for table in ("tcp", "tcp6"):
        try:
            with open(os.path.join(proc, "net", table)) as handle:
                lines = handle.read().splitlines()[1:]
        except (IOError, OSError):
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != LISTEN:
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            found.setdefault(port, []).append((fields[9], int(fields[7])))
    return found


def socket_owners(inodes, proc="/proc"):
    """{inode: pid} for the sockets whose process this user may look into."""
    wanted = dict(("socket:[%s]" % inode, inode) for inode in inodes)
    owners = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        fd_dir = os.path.join(proc, entry, "fd")
        try:
            links = [os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)]
        except (IOError, OSError):
            continue
        for link in links:
            if link in wanted:
                owners.setdefault(wanted[link], int(entry))
    return owners


def command_line(pid, proc="/proc"):
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as handle:
            return " ".join(p.decode("utf-8", "replace") for p in handle.read().split(b"\0") if p)[:200]
    except (IOError, OSError):
        return ""


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def port_holders(env, services, proc="/proc"):
    """[{service, port, variable, pid, command, user}] for each listener on a port the services publish."""
    wanted = [(service, var, port) for service in services for var, port in published_ports(env, service)]
    if not wanted:
        return []
    sockets = listening_sockets(proc)
    owners = socket_owners([inode for _s, _v, port in wanted for inode, _uid in sockets.get(port, [])], proc)
    holders = []
    for service, variable, port in wanted:
        seen = set()
        for inode, uid in sockets.get(port, []):
            pid = owners.get(inode)
            if (pid, uid) in seen:
                continue  # the same process on IPv4 and IPv6
            seen.add((pid, uid))
            holders.append({"service": service, "port": port, "variable": variable, "pid": pid,
                            "command": command_line(pid, proc) if pid else "", "user": user_name(uid)})
    return holders


def describe(holders):
    """Evidence lines naming who holds which ports: one line per holding process."""
    lines, order = {}, []
    for holder in holders:
        key = (holder["service"], holder["pid"], holder["user"])
        if key not in lines:
            order.append(key)
            lines[key] = (holder, [])
        lines[key][1].append("%d (%s)" % (holder["port"], holder["variable"]))
    described = []
    for key in order:
        holder, ports = lines[key]
        who = ("pid %d (%s, user %s)" % (holder["pid"], holder["command"] or "?", holder["user"]) if holder["pid"]
               else "a process of user %s that this account cannot see (run with become to name it)" % holder["user"])
        plural = len(ports) > 1
        line = "%s %s of %s %s held by %s" % (
            "ports" if plural else "port", ", ".join(ports), holder["service"], "are" if plural else "is", who)
        if os.path.basename((holder["command"].split() or [""])[0]) == "docker-proxy":
            line += ": a container outside this project publishes it (docker ps --filter publish=%d)" % holder["port"]
        described.append(line)
    return described
