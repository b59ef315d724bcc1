"""The docker commands the sandbox models: `docker volume inspect`, which tells where a named volume
lives on the host, `docker inspect` / `docker container inspect` of containers (JSON only), which
tell a stopped or restarting container from a running one when nself's status calls both unhealthy,
and `docker logs [--timestamps] [--since T] [--until T] [--tail N]` of a container (what its shim
time-stamped; stdout and stderr are one stream here). There is no engine; everything else fails as a
missing daemon would."""
import datetime
import hashlib
import json
import re
import sys

from . import paths, runtime

VOLUME_DIRS = {"postgres_data": paths.PG_DATA, "redis_data": paths.REDIS_DATA, "minio_data": paths.MINIO_DATA}


def inspect(names, fmt):
    found, code = [], 0
    for name in names:
        suffix = [key for key in VOLUME_DIRS if name.endswith("_" + key)]
        if not suffix:
            sys.stderr.write("Error response from daemon: get %s: no such volume\n" % name)
            code = 1
            continue
        found.append({"Name": name, "Driver": "local", "Mountpoint": VOLUME_DIRS[suffix[0]], "Scope": "local"})
    if fmt:
        for volume in found:
            sys.stdout.write(fmt.replace("{{ .Mountpoint }}", volume["Mountpoint"]).replace(
                "{{.Mountpoint}}", volume["Mountpoint"]) + "\n")
    else:
        sys.stdout.write(json.dumps(found, indent=4) + "\n")
    return code


def container_document(record):
    """The parts of `docker inspect <container>` a runbook reads, from a sandbox container record."""
    state = runtime.docker_state(record)
    health = runtime.health_status(record, state)
    document = {
        "Id": hashlib.sha256(record["name"].encode()).hexdigest(),
        "Created": record.get("created_at"),
        "Name": "/" + record["name"],
        "RestartCount": record.get("restart_count", 0),
        "State": {"Status": state, "Running": state in ("running", "paused", "restarting"),
                  "Paused": state == "paused", "Restarting": state == "restarting", "OOMKilled": False,
                  "Dead": False, "Pid": (record.get("child_pid") or 0) if state == "running" else 0,
                  "ExitCode": record.get("exit_code") or 0, "Error": record.get("start_error") or "",
                  "StartedAt": record.get("started_at") or "0001-01-01T00:00:00Z",
                  "FinishedAt": record.get("finished_at") or "0001-01-01T00:00:00Z"},
        "Config": {"Image": record.get("image"), "Labels": record.get("labels") or {}},
        "HostConfig": {"RestartPolicy": {"Name": record.get("restart") or "no", "MaximumRetryCount": 0}},
    }
    if health:
        document["State"]["Health"] = {"Status": health, "FailingStreak": 0 if health == "healthy" else 1, "Log": []}
    return document


def inspect_containers(names):
    found, code = [], 0
    for name in names:
        record = runtime.load(name)
        if record is None:
            sys.stderr.write("Error: No such object: %s\n" % name)
            code = 1
            continue
        found.append(container_document(record))
    sys.stdout.write(json.dumps(found, indent=4) + "\n")
    return code


def _names_and_format(args):
    fmt, names = None, []
    while args:
        arg = args.pop(0)
        if arg in ("-f", "--format"):
            fmt = args.pop(0) if args else ""
        elif arg.startswith("--format="):
            fmt = arg.split("=", 1)[1]
        elif arg in ("--type=container", "-s", "--size"):
            continue
        else:
            names.append(arg)
    return names, fmt


def _moment(text, now):
    """A time as `docker logs --since/--until` takes it: RFC 3339 (UTC) or a duration before now (10m, 1h30m)."""
    if re.match(r"^(\d+[smh])+$", text):
        seconds = sum(int(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"(\d+)([smh])", text))
        return now - datetime.timedelta(seconds=seconds)
    whole, _dot, fraction = text.rstrip("Z").partition(".")
    moment = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    return moment.replace(microsecond=int((fraction + "000000")[:6]), tzinfo=datetime.timezone.utc)


def logs(args):
    timestamps, since, until, tail, names = False, None, None, None, []
    now = datetime.datetime.now(datetime.timezone.utc)
    args = list(args)
    try:
        while args:
            arg = args.pop(0)
            if arg in ("-t", "--timestamps"):
                timestamps = True
            elif arg == "--since":
                since = _moment(args.pop(0), now)
            elif arg == "--until":
                until = _moment(args.pop(0), now)
            elif arg in ("-n", "--tail"):
                tail = args.pop(0)
            elif arg.startswith("-"):
                sys.stderr.write("unknown flag: %s\n" % arg)
                return 125
            else:
                names.append(arg)
    except (IndexError, ValueError) as exc:
        sys.stderr.write("invalid value: %s\n" % exc)
        return 125
    if len(names) != 1 or runtime.load(names[0]) is None:
        sys.stderr.write("Error response from daemon: No such container: %s\n" % " ".join(names))
        return 1
    try:
        with open(runtime.log_path(names[0]), encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        lines = []
    shown = []
    for line in lines:
        stamp, _sep, text = line.partition(" ")
        try:
            moment = _moment(stamp, now)
        except ValueError:
            continue
        if (since is None or moment >= since) and (until is None or moment < until):
            shown.append(line if timestamps else text)
    if tail not in (None, "all"):
        shown = shown[-int(tail):] if int(tail) else []
    sys.stdout.write("".join(entry + "\n" for entry in shown))
    return 0


def main(argv):
    if argv[:1] == ["logs"] or argv[:2] == ["container", "logs"]:
        return logs(argv[1:] if argv[0] == "logs" else argv[2:])
    if argv[:2] == ["volume", "inspect"]:
        return inspect(*_names_and_format(argv[2:]))
    if argv[:1] == ["inspect"] or argv[:2] == ["container", "inspect"]:
        names, fmt = _names_and_format(argv[1:] if argv[0] == "inspect" else argv[2:])
        if fmt is None:
            return inspect_containers(names)
    sys.stderr.write("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                     "(the sandbox models only `docker volume inspect`, `docker inspect` of containers, as JSON, and "
                     "`docker logs`)\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
