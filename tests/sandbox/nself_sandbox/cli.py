"""`nself` stand-in: the 0.9.9 command surface of nself-cli.md, including its exit-code bugs.

Every call is appended to CALLS_LOG so tests can assert on argv.
"""
import datetime
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

from . import build, db, faults, paths, runtime, stack, ui
from .project import Project, require_compose

CORE_HEALTH = ["postgres", "hasura", "auth", "nginx"]
OPTIONAL_HEALTH = [("redis", "REDIS_ENABLED"), ("minio", "MINIO_ENABLED"), ("mailpit", "MAILPIT_ENABLED"),
                   ("meilisearch", "MEILISEARCH_ENABLED")]


def log_call(argv):
    try:
        os.makedirs(os.path.dirname(paths.CALLS_LOG), exist_ok=True)
        with open(paths.CALLS_LOG, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": time.time(), "cwd": os.getcwd(), "argv": argv,
                                     "run_id": os.environ.get("NFAMILY_OPS_RUN_ID") or None,
                                     "stdin_tty": sys.stdin.isatty() if sys.stdin else False}) + "\n")
    except OSError:
        pass


def _unknown_option(command, option):
    ui.error("Unknown option: %s" % option)
    sys.stderr.write("Run 'nself %s --help' for usage.\n" % command)
    return 1


# ---------------------------------------------------------------- version

def cmd_version(args):
    version = faults.reported_version()
    if "--short" in args:
        ui.out(version)
    elif "--json" in args:
        ui.out(json.dumps({"version": version, "commit": "be69a67", "platform": "linux",
                           "installPath": "/usr/local/lib/nself"}))
    else:
        ui.out("nself version %s" % version)
    return 0


# ---------------------------------------------------------------- status

def cmd_status(args):
    opts = {"json": False, "detailed": False, "service": None, "watch": False, "all_envs": False, "verbose": False}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-d", "--detailed", "--full"):
            opts["detailed"] = True
        elif arg in ("-v", "--verbose"):
            opts["verbose"] = True
        elif arg in ("-w", "--watch"):
            opts["watch"] = True
        elif arg in ("-i", "--interval"):
            i += 1
        elif arg == "--json":
            opts["json"] = True
        elif arg == "--format":
            i += 1
            opts["json"] = i < len(args) and args[i] == "json"
        elif arg == "--all-envs":
            opts["all_envs"] = True
        elif arg in ("--fast", "--no-resources", "--no-health", "--show-ports"):
            pass
        elif arg in ("-h", "--help"):
            ui.out("Usage: nself status [options] [service]")
            return 0
        elif arg.startswith("-"):
            return _unknown_option("status", arg)
        else:
            opts["service"] = arg
        i += 1
    project = Project()
    if opts["all_envs"]:
        ui.out("Environments: dev, staging, prod (current: %s)" % project.env_name)
        return 0
    require_compose(project)
    if opts["detailed"]:
        return _status_detailed(project, opts["json"])
    if opts["service"]:
        return _status_service(project, opts["service"])
    if opts["watch"]:
        while True:  # like the real -w: loops until interrupted
            _status_overview(project)
            time.sleep(5)
    if opts["json"]:
        return _status_json(project)
    return _status_overview(project)


def _status_json(project):
    names = project.service_names()
    records = {s: project.record(s) for s in names}
    present = [r for r in records.values() if r is not None]
    health = runtime.health_many(present) if present else {}
    entries = []
    for service in names:
        record = records[service]
        state = runtime.docker_state(record)
        status = stack.status_word(state, health.get(record["name"]) if record else None)
        cpu, mem = runtime.stats(record) if state == "running" else ("0%\t0B", "0B / 0B")
        entries.append({"name": service, "status": status, "cpu": cpu, "memory": mem})
    text = json.dumps({"timestamp": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                       "environment": project.vars.get("ENV") or os.environ.get("ENV") or "local",  # ${ENV:-local}
                       "services": entries}, indent=2)
    # 0.9.9 builds this document with printf: a missing container's "0%\t0B" keeps its raw tab, and with
    # the malformed_json fault the stats error docker printed lands unescaped in "cpu".
    text = text.replace("\\t", "\t")
    if faults.active("malformed_json"):
        text = text.replace('"cpu": "', '"cpu": "Error: No such container: "%s_stats" ' % project.name, 1)
    ui.out(text)
    return 0


def _status_service(project, service):
    record = runtime.load(project.container(service))
    if record is None:
        ui.error("Service '%s' not found" % service)
        return 1
    ui.header("status %s" % service)
    state = runtime.docker_state(record)
    ui.out("Container:  %s" % record["name"])
    ui.out("State:      %s" % state)
    ui.out("Health:     %s" % (runtime.health_status(record, state) or "none"))
    ui.out("Started:    %s" % record.get("started_at"))
    cpu, mem = runtime.stats(record) if state == "running" else ("0%", "0B")
    ui.out("CPU / Mem:  %s / %s" % (cpu, mem))
    ui.out()
    ui.out("Recent logs:")
    for line in _log_lines(record["name"], 20):
        ui.out("  " + line[1])
    return 0


def _status_detailed(project, as_json):
    core = []
    for service in ["postgres", "hasura", "auth", "nginx"]:
        status = stack.status_of(project, service) if service in project.service_names() else "stopped"
        entry = '{"name": "%s", "healthy": %s' % (service, "true" if status == "healthy" else "false")
        if service in ("hasura", "auth"):
            port = {"hasura": 8080, "auth": 4000}[service]
            path = "/healthz" if service == "hasura" else "/health"
            code = _http_code("http://127.0.0.1:%d%s" % (port, path))
            entry += ', "url": "http://127.0.0.1:%d%s", "http_code": %s' % (port, path, code)  # unquoted, as 0.9.9
        core.append(entry + "}")
    if as_json:
        ui.out('{"project": "%s", "environment": "%s", "domain": "%s", "timestamp": "%s", "services": {"core": [%s]}}' % (
            project.name, project.env_name, project.vars.get("BASE_DOMAIN", "local.nself.org"),
            datetime.datetime.now().astimezone().isoformat(timespec="seconds"), ", ".join(core)))
    else:
        ui.header("status --detailed")
        for entry in core:
            ui.out(entry)
    return 0


def _http_code(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return "%03d" % response.status
    except urllib.error.HTTPError as exc:
        return "%03d" % exc.code
    except Exception:
        return "000"


def _status_overview(project):
    names = project.service_names()
    statuses = {s: stack.status_of(project, s) for s in names}
    up = [s for s in names if statuses[s] in ("healthy", "unhealthy", "starting")]
    ui.header("status", "Project: %s (%s)" % (project.name, project.env_name))
    ui.spinner("Checking services")
    ui.out("%s→%s Services (%d/%d running)" % (ui.CYAN, ui.RESET, len(up), len(names)))
    icons = {"healthy": ui.GREEN + "✓", "unhealthy": ui.RED + "✗", "starting": ui.YELLOW + "⟳"}
    for service in names:
        ui.out("  %s%s %s" % (icons.get(statuses[service], ui.GREY + "○"), ui.RESET, service))
    records = stack.running(project)
    oldest = min([r.get("started_ts", 0) for r in records] or [0])
    drift = bool(records) and (project.config_mtime() > oldest or len(records) != len(names))
    if drift:
        ui.out()
        ui.out(ui.YELLOW + "⚠ Configuration Drift Detected" + ui.RESET)
        ui.out("  Run 'nself restart' to apply configuration changes")
        if faults.bug("status_drift_exit_1"):
            return 1
    return 0


# ---------------------------------------------------------------- health

def cmd_health(args):
    sub, as_json, rest = "check", False, []
    for arg in args:
        if arg == "--json":
            as_json = True
        elif arg in ("--quiet", "-q"):
            pass
        elif arg.startswith("--"):
            continue
        else:
            rest.append(arg)
    if rest and rest[0] in ("check", "service", "endpoint", "watch", "history", "config"):
        sub, rest = rest[0], rest[1:]
    project = Project()
    if sub == "service":
        if not rest:
            ui.error("Service name required")
            return 1
        entry = _health_entry(project, rest[0])
        if as_json:
            ui.out(json.dumps(entry))
        else:
            ui.out("%s: %s (%s)" % (entry["service"], entry["status"], entry["details"]))
        return 0 if entry["status"] in ("healthy", "running") else 1
    if sub == "endpoint":
        url = rest[0] if rest else ""
        started = time.time()
        code = _http_code(url)
        entry = {"endpoint": url, "url": url, "status": "healthy" if code.startswith(("2", "3")) else "unhealthy",
                 "http_code": int(code), "response_time_ms": int((time.time() - started) * 1000)}
        ui.out(json.dumps(entry) if as_json else "%s: %s (HTTP %s)" % (url, entry["status"], code))
        return 0
    if sub == "history":
        path = os.path.join(project.dir, ".nself", "health", "history.jsonl")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                sys.stdout.write(handle.read())
        return 0
    if sub == "watch":
        while True:
            _health_check(project, as_json)
            time.sleep(5)
    if sub == "config":
        ui.out("timeout=%s interval=%s" % (os.environ.get("NSELF_HEALTH_CHECK_TIMEOUT", "120"),
                                           os.environ.get("NSELF_HEALTH_CHECK_INTERVAL", "2")))
        return 0
    return _health_check(project, as_json)


def _health_entry(project, service):
    started = time.time()
    record = runtime.load(project.container(service, builtin=False))
    state = runtime.docker_state(record)
    # 0.9.9's check: a container `docker ps` does not list (exited, created) is not_found; a listed one
    # (running, paused, restarting) reads its health, and without a healthcheck, State.Running (true).
    if state in (None, "exited", "created"):
        status, details = "not_found", "Container does not exist"
    else:
        status = runtime.health_status(record, state) or "running"
        output = runtime.probe(record)[1][:120] if state == "running" else "container is %s" % state
        details = {"healthy": "Container healthy", "starting": "Health check pending",
                   "unhealthy": output}.get(status, "No health check defined")
    return {"service": service, "status": status, "details": details,
            "response_time_ms": int((time.time() - started) * 1000)}


def _unescaped_details(text, entries):
    """0.9.9 copies Docker's healthcheck output into `details` without escaping it (nself-cli.md §1.7)."""
    for entry in entries:
        if entry["status"] == "unhealthy" or faults.active("malformed_json"):
            detail = entry["details"] + (' (probe said "%s")' % entry["status"] if faults.active("malformed_json") else "")
            text = text.replace(json.dumps(entry["details"]), '"%s"' % detail, 1)
    return text


def _health_check(project, as_json):
    names = list(CORE_HEALTH)
    names += [s for s, key in OPTIONAL_HEALTH if (project.vars.get(key) or "").lower() == "true"]
    entries = [_health_entry(project, s) for s in names]
    healthy = sum(1 for e in entries if e["status"] in ("healthy", "running"))
    unhealthy = sum(1 for e in entries if e["status"] in ("unhealthy", "stopped", "not_found"))
    result = {"timestamp": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "healthy": healthy, "unhealthy": unhealthy, "total": len(entries), "services": entries}
    history = os.path.join(project.dir, ".nself", "health")
    os.makedirs(history, exist_ok=True)
    with open(os.path.join(history, "history.jsonl"), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(result) + "\n")
    if as_json:
        ui.out(_unescaped_details(json.dumps(result, indent=2), entries))
    else:
        ui.header("health")
        for entry in entries:
            mark = ui.GREEN + "✓" if entry["status"] in ("healthy", "running") else ui.RED + "✗"
            ui.out("  %s%s %-12s %s" % (mark, ui.RESET, entry["service"], entry["status"]))
        ui.out()
        ui.out("Healthy: %d/%d" % (healthy, len(entries)))
    return 0 if unhealthy == 0 else 1


# ---------------------------------------------------------------- logs

def _log_lines(container, tail):
    try:
        with open(runtime.log_path(container), encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines[-tail:] if tail else lines:
        stamp, dummy, message = line.partition(" ")
        if not message.strip():
            continue
        out.append((stamp[:19].replace("T", " "), message))
    return out


def cmd_logs(args):
    tail, service, errors_only, follow, compact = 10, None, False, False, False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-n", "--tail", "--lines"):
            i += 1
            value = args[i] if i < len(args) else ""
            if not value.isdigit():
                ui.error("Invalid line count: %s" % value)
                return 1
            tail = int(value)
        elif arg == "--more":
            tail = 50
        elif arg == "--all":
            tail = 100
        elif arg in ("-f", "--follow"):
            follow = True
        elif arg in ("-e", "--errors"):
            errors_only = True
        elif arg in ("-c", "--compact"):
            compact = True
        elif arg in ("-q", "--quiet"):
            pass
        elif arg in ("-s", "--search", "-l", "--level"):
            i += 1
        elif arg.startswith("-"):
            return _unknown_option("logs", arg)
        else:
            service = arg
        i += 1
    project = Project()
    require_compose(project)
    names = project.service_names()
    if service:
        if service not in names:
            ui.error("Service '%s' not found" % service)
            sys.stderr.write("Available services: %s\n" % " ".join(names))
            return 1
        targets = [service]
        if runtime.docker_state(project.record(service)) != "running":
            ui.warn("Service '%s' is not running" % service)
    else:
        targets = [r["service"] for r in stack.running(project)]
        if not targets:
            ui.error("No services are currently running")
            return 1
    ui.header("logs", "Service: %s" % (service or "all"))
    pattern = re.compile(r"error|fatal|panic|exception", re.I)
    for target in targets:
        for stamp, message in _log_lines(project.container(target), tail):
            if errors_only and not pattern.search(message):
                continue
            if compact:
                ui.out("%s[%s]%s %s" % (ui.CYAN, target, ui.RESET, message))
            else:
                ui.out("%s%s%s %s[%-12s]%s %s" % (ui.GREY, stamp, ui.RESET, ui.CYAN, target[:12], ui.RESET, message))
    while follow:
        time.sleep(1)
    return 0


# ---------------------------------------------------------------- start / stop / restart

def cmd_start(args):
    fresh, timeout, skip_health = False, int(os.environ.get("NSELF_HEALTH_CHECK_TIMEOUT", "120")), False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("--fresh", "--force-recreate", "--clean-start"):
            fresh = True
        elif arg == "--timeout":
            i += 1
            value = args[i] if i < len(args) else ""
            if not value.isdigit():
                ui.error("--timeout requires a number")
                return 1
            timeout = int(value)
        elif arg == "--quick":
            timeout = 30
        elif arg == "--skip-health-checks":
            skip_health = True
        elif arg in ("-v", "--verbose", "-d", "--debug", "--skip-port-check"):
            pass
        elif arg.startswith("-"):
            return _unknown_option("start", arg)
        # positional service names are silently ignored (0.9.9)
        i += 1
    project = Project(fallback_backend=True)
    if not project.has_compose():
        ui.error("docker-compose.yml not found. Run 'nself build' first.")
        return 1
    ui.header("start", "Project: %s (%s)" % (project.name, project.env_name))
    if any(runtime.docker_state(r) in ("exited", "created") for r in project.records()):
        ui.step("Cleaning up stopped containers")
        stack.down(project)
    stack.write_runtime_env(project)
    ui.spinner("Starting services")
    try:
        stack.up(project, force_recreate=fresh)
    except stack.ComposeError as exc:
        ui.error("Failed to start services: %s" % exc)
        sys.stderr.write("[nself start] unexpected exit (code 1) at line 412\n")
        return 1
    healthy, total = (0, 0) if skip_health else stack.post_start(project, timeout)
    names = project.service_names()
    ui.ok("All services started successfully")
    ui.ok("Project: %s (%s) / BD: %s" % (project.name, project.env_name, project.vars.get("BASE_DOMAIN", "local.nself.org")))
    ui.ok("Services (%d): 4 core, %d optional, 0 monitoring, %d custom" % (
        len(names), len([n for n in names if n in ("redis", "minio")]),
        len([n for n in names if n not in ("postgres", "hasura", "auth", "nginx", "redis", "minio")])))
    ui.ok("Health: %d/%d checks passing" % (healthy, total))
    return 0


def cmd_stop(args):
    volumes, rmi, timeout, targets = False, False, int(os.environ.get("NSELF_STOP_TIMEOUT", "30")), []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-v", "--volumes"):
            volumes = True
        elif arg == "--rmi":
            rmi = True
        elif arg in ("--remove-orphans", "--verbose"):
            pass
        elif arg == "--graceful":
            if i + 1 < len(args) and args[i + 1].isdigit():
                i += 1
                timeout = int(args[i])
        elif arg in ("-h", "--help"):
            ui.out("Usage: nself stop [options] [service...]")
            return 0
        elif arg.startswith("-"):
            return _unknown_option("stop", arg)
        else:
            targets.append(arg)
        i += 1
    project = Project()
    require_compose(project)
    ui.header("stop")
    if not targets:
        if not stack.running(project) and not project.records():
            ui.ok("No services are currently running")
            return 0
        stack.down(project, min(timeout, 10), volumes)
        ui.ok("All services stopped")
        return 0
    names = project.service_names()
    for service in targets:
        if service not in names or faults.active("stop_fail", service):
            ui.error("Failed to stop %s" % service)
            continue
        stack.stop_service(project, service, min(timeout, 10))
        if volumes or rmi:
            runtime.remove(project.container(service))
        ui.ok("Stopped %s" % service)
    return 0  # per-service failures still give rc 0 (0.9.9)


def cmd_restart(args):
    all_mode, targets = False, []
    for arg in args:
        if arg in ("-a", "--all"):
            all_mode = True
        elif arg in ("-s", "--smart", "-v", "--verbose", "--skip-build", "--no-build"):
            pass
        elif arg in ("-h", "--help"):
            ui.out("Usage: nself restart [options] [service...]")
            return 0
        else:
            targets.append(arg)  # unknown --flags too: 0.9.9 treats them as service names
    project = Project()
    try:
        os.unlink(os.path.join(project.dir, ".env.runtime"))
    except FileNotFoundError:
        pass
    require_compose(project)
    ui.header("restart")
    if targets:
        names = project.service_names()
        for service in targets:
            if service not in names:
                ui.error("Failed to restart %s" % service)
                continue
            try:
                stack.restart_service(project, service)
            except stack.ComposeError:
                ui.error("Failed to restart %s" % service)
                continue
            ui.ok("Restarted %s" % service)
        return 0
    nothing_running = not stack.running(project)
    if all_mode or nothing_running:
        if all_mode:
            stack.down(project)
        elif not project.records():
            build.run(project, force=True)
        stack.write_runtime_env(project)
        try:
            stack.up(project)
        except stack.ComposeError as exc:
            ui.error(str(exc))
            return 1
        stack.post_start(project, 60)
        if faults.bug("restart_exit_127"):
            sys.stderr.write("/usr/local/lib/nself/src/cli/restart.sh: line 214: cmd_start: command not found\n")
            return 127
        return 0
    oldest = min(r.get("started_ts", 0) for r in stack.running(project))
    if project.config_mtime() > oldest:
        ui.step("Configuration changed, rebuilding")
        build.run(project, force=True)
        project = Project()
        try:
            stack.up(project)
        except stack.ComposeError as exc:
            ui.error(str(exc))
            return 1
        ui.ok("Services recreated with new configuration")
        return 0
    for service in project.service_names():
        stack.restart_service(project, service)
    ui.ok("All services restarted")
    return 0


# ---------------------------------------------------------------- build / doctor / urls

def cmd_build(args):
    force, check = False, False
    for arg in args:
        if arg in ("-f", "--force", "--no-cache"):
            force = True
        elif arg == "--check":
            check = True
        elif arg in ("-v", "--verbose", "--debug", "--allow-insecure", "--security-report"):
            pass
        elif arg in ("-h", "--help"):
            ui.out("Usage: nself build [options]")
            return 0
        else:
            return _unknown_option("build", arg)
    project = Project()
    if check:
        return build.check(project)
    return build.run(project, force=force, verbose=True)


def cmd_doctor(args):
    first = args[0] if args else ""
    if first in ("-h", "--help"):
        ui.out("Usage: nself doctor [--fix | containers]")
        return 0
    project = Project()
    ui.header("doctor")
    issues, warnings = [], []
    records = stack.running(project)
    if first == "containers":
        for service in project.service_names():
            ui.out("  %-12s %s" % (service, stack.status_of(project, service)))
        return 0
    if records:
        ui.step("Checking container health")
        for service in project.service_names():
            status = stack.status_of(project, service)
            if status in ("unhealthy", "exited", "dead", "stopped", "restarting"):
                issues.append("Container %s is %s" % (project.container(service), status))
        ui.step("Checking database")
        result = stack.psql(project, "SELECT count(*) || '/' || current_setting('max_connections') FROM pg_stat_activity")
        if result.returncode != 0:
            issues.append("Database is not accepting connections: %s" % (result.stderr.strip().splitlines() or ["unknown error"])[-1])
        else:
            used, limit = (int(x) for x in result.stdout.strip().split("/"))
            ui.info("Connections: %d/%d" % (used, limit))
            if used * 100 >= 90 * limit:
                issues.append("Database connections nearly exhausted (%d/%d)" % (used, limit))
        usage = os.statvfs(paths.MINIO_DATA) if os.path.isdir(paths.MINIO_DATA) else None
        if usage and usage.f_blocks and usage.f_bavail * 100 < 5 * usage.f_blocks:
            issues.append("Low disk space on %s" % paths.MINIO_DATA)
    else:
        ui.step("No containers running: checking system requirements")
        if not project.has_compose():
            warnings.append("docker-compose.yml missing: run 'nself build'")
    if faults.active("doctor_fail"):
        issues.append("Injected issue (fault: doctor_fail)")
    if first == "--fix":
        for service in project.service_names():
            if stack.status_of(project, service) == "unhealthy":
                stack.restart_service(project, service)
                ui.ok("Restarted unhealthy %s" % service)
    for warning in warnings:
        ui.warn(warning)
    for issue in issues:
        ui.out("%s✗%s %s" % (ui.RED, ui.RESET, issue))
    ui.out()
    if issues:
        ui.out("Found %d issue(s), %d warning(s)" % (len(issues), len(warnings)))
        return 1
    ui.ok("No issues found (%d warning(s))" % len(warnings))
    return 0


def cmd_urls(args):
    as_json = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--json":
            as_json = True
        elif arg in ("--env", "--diff"):
            i += 1
        elif arg in ("--all", "--check-conflicts"):
            pass
        else:
            return _unknown_option("urls", arg)
        i += 1
    project = Project()
    domain = project.vars.get("BASE_DOMAIN", "local.nself.org")
    scheme = "http" if project.vars.get("SSL_ENABLED", "true").lower() == "false" else "https"
    if as_json:  # a stub in 0.9.9 (nself-cli.md §1.9)
        ui.out(json.dumps({"base_domain": domain, "protocol": scheme, "routes": {"application": "%s://%s" % (scheme, domain)}}))
        return 0
    ui.header("urls")
    rows = [("GraphQL API", "%s://%s.%s" % (scheme, project.vars.get("HASURA_ROUTE", "api"), domain)),
            ("Hasura Console", "%s://%s.%s/console" % (scheme, project.vars.get("HASURA_ROUTE", "api"), domain)),
            ("Auth", "%s://%s.%s" % (scheme, project.vars.get("AUTH_ROUTE", "auth"), domain)),
            ("MinIO Console", "%s://%s.%s" % (scheme, project.vars.get("STORAGE_CONSOLE_ROUTE", "storage-console"), domain)),
            ("Storage", "%s://%s.%s" % (scheme, project.vars.get("STORAGE_ROUTE", "storage"), domain))]
    for label, url in rows:
        ui.out("  %-16s %s" % (label + ":", url))
    return 0


# ---------------------------------------------------------------- exec

def cmd_exec(args):
    interactive, user, workdir, extra_env = False, None, "/", {}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg in ("-i", "-it", "-ti"):
            interactive = True
        elif arg in ("-t", "-T"):
            pass
        elif arg == "-u":
            i += 1
            user = args[i]
        elif arg == "-w":
            i += 1
            workdir = args[i]
        elif arg == "-e":
            i += 1
            key, dummy, value = args[i].partition("=")
            extra_env[key] = value
        else:
            return _unknown_option("exec", arg)
        i += 1
    if i >= len(args):
        ui.error("Service name required")
        return 1
    service, command = args[i], args[i + 1:]
    project = Project()
    require_compose(project)
    if service not in project.service_names():
        ui.error("Service '%s' not found in docker-compose.yml" % service)
        return 1
    record = project.record(service)
    if runtime.docker_state(record) != "running":
        ui.error("Service '%s' is not running" % service)
        return 1
    if not command:
        if not sys.stdin.isatty():
            sys.stderr.write("the input device is not a TTY\n")
            return 1
        command = ["/bin/sh"]
    env = {"PATH": paths.PG_BIN + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8", "HOME": "/root", "PGHOST": paths.PG_SOCKET_DIR}
    env.update(record["env"])
    env.update(extra_env)
    try:
        proc = subprocess.run(command, env=env, cwd=workdir, user=user, check=False,
                              stdin=None if interactive else subprocess.DEVNULL)
    except FileNotFoundError:
        sys.stderr.write('OCI runtime exec failed: exec: "%s": executable file not found in $PATH\n' % command[0])
        return 127
    return proc.returncode


# ---------------------------------------------------------------- dispatch

COMMANDS = {
    "version": cmd_version, "status": cmd_status, "health": cmd_health, "logs": cmd_logs,
    "start": cmd_start, "up": cmd_start, "stop": cmd_stop, "down": cmd_stop, "restart": cmd_restart,
    "build": cmd_build, "doctor": cmd_doctor, "urls": cmd_urls, "exec": cmd_exec,
    "db": db.cmd_db, "backup": db.cmd_backup,
}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    log_call(argv)
    while argv and faults.active("gate", argv[0]):  # a test's breakpoint: held until it clears the gate
        time.sleep(0.2)
    if os.path.isdir("src/cli") and os.path.isfile("bin/nself") and os.environ.get("NSELF_TEST_MODE") != "1":
        ui.error("Refusing to run inside the nself source tree")
        return 1
    if not argv or argv[0] in ("help", "-h", "--help"):
        ui.out("Usage: nself <command> [options]\nCommands: " + " ".join(sorted(COMMANDS)))
        return 0
    if argv[0] in ("-v", "--version"):
        ui.out(faults.reported_version())
        return 0
    handler = COMMANDS.get(argv[0])
    if handler is None:
        ui.error("Unknown command: %s" % argv[0])
        return 1
    try:
        return handler(argv[1:])
    except EOFError:
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
