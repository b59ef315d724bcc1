"""The one docker command the sandbox models: `docker volume inspect`, which tells where a named
volume lives on the host. There is no engine; everything else fails as a missing daemon would."""
import json
import sys

from . import paths

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


def main(argv):
    if argv[:2] == ["volume", "inspect"]:
        args, fmt, names = argv[2:], None, []
        while args:
            arg = args.pop(0)
            if arg in ("-f", "--format"):
                fmt = args.pop(0) if args else ""
            elif arg.startswith("--format="):
                fmt = arg.split("=", 1)[1]
            else:
                names.append(arg)
        return inspect(names, fmt)
    sys.stderr.write("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                     "(the sandbox models only `docker volume inspect`)\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
