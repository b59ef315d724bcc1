"""The nself project the CLI runs in: cwd, env cascade, PROJECT_NAME, compose services."""
import os
import re
import sys

import yaml

from . import envfiles, runtime, services, ui

PROJECT_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
PRIORITY = ["postgres", "redis", "minio", "hasura"]
# The --env-file nself's compose wrapper passes (lib/utils/docker.sh: compose(), nself-cli.md §2).
COMPOSE_ENV_FILES = [".env.runtime", ".env.local", ".env", ".env.dev"]


class Project:
    def __init__(self, directory=None, fallback_backend=False):
        directory = directory or os.getcwd()
        if fallback_backend and not _looks_like_project(directory) and _looks_like_project(os.path.join(directory, "backend")):
            directory = os.path.join(directory, "backend")
        self.dir = directory
        self.env_name = envfiles.detect_environment(directory)
        self.vars = envfiles.load_cascade(directory, self.env_name)
        self.name = self._project_name()

    def _project_name(self):
        name = os.environ.get("PROJECT_NAME") or self.vars.get("PROJECT_NAME")
        if not name:
            name = re.sub(r"[^a-z0-9_-]", "-", os.path.basename(self.dir).lower()).strip("-") or "nself"
            try:
                with open(os.path.join(self.dir, ".env"), "a", encoding="utf-8") as handle:
                    handle.write("PROJECT_NAME=%s\n" % name)  # nself's side effect (lib/utils/env.sh)
            except OSError:
                pass
        if not PROJECT_RE.match(name):
            ui.warn("Invalid PROJECT_NAME '%s', using 'my-project'" % name)
            name = "my-project"
        return name

    @property
    def compose_file(self):
        return os.path.join(self.dir, "docker-compose.yml")

    def has_compose(self):
        return os.path.isfile(self.compose_file)

    def compose(self):
        """docker-compose.yml merged with docker-compose.custom.yml and docker-compose.override.yml,
        as nself's compose wrapper passes them (nself-cli.md §2): service keys are merged, and
        volume lists are joined, a later mount replacing an earlier one at the same target."""
        with open(self.compose_file, encoding="utf-8") as handle:
            merged = yaml.safe_load(handle) or {}
        for extra in ("docker-compose.custom.yml", "docker-compose.override.yml"):
            path = os.path.join(self.dir, extra)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    _merge_compose(merged, yaml.safe_load(handle) or {})
        return merged

    def service_names(self):
        """`docker compose config --services`, in start order."""
        names = list((self.compose().get("services") or {}).keys())
        return sorted(names, key=lambda n: (PRIORITY.index(n) if n in PRIORITY else (9 if n == services.NGINX else 5), names.index(n)))

    def compose_env_file(self):
        chosen = os.environ.get("COMPOSE_ENV_FILE") or next(
            (n for n in COMPOSE_ENV_FILES if os.path.isfile(os.path.join(self.dir, n))), None)
        return os.path.join(self.dir, chosen) if chosen else None

    def compose_vars(self):
        """What compose interpolates docker-compose.yml with: the one env file nself passes it, under the
        process environment. Only `.env.runtime` (written by `nself start`, deleted by `nself restart`)
        carries the whole cascade; without it a prod host's secrets interpolate empty."""
        path = self.compose_env_file()
        values = envfiles.parse_file(path) if path else {}
        values.update(os.environ)
        return values

    def spec(self, service):
        raw = self.compose()["services"][service]
        known = self.compose_vars()
        env = {k: envfiles.interpolate(str(v), known) for k, v in (raw.get("environment") or {}).items()}
        health = raw.get("healthcheck")
        if health:
            health = dict(health, test=[envfiles.interpolate(str(t), known) for t in health.get("test", [])])
        spec = {"image": envfiles.interpolate(raw.get("image", ""), known), "env": env, "healthcheck": health,
                "restart": str(raw.get("restart") or "no"),
                "ports": [envfiles.interpolate(str(p), known) for p in raw.get("ports") or []]}
        binds = [envfiles.interpolate(str(v), known) for v in raw.get("volumes") or [] if _is_bind(str(v))]
        if binds:
            spec["volumes"] = binds
        return spec

    def container(self, service, builtin=True):
        # status/logs turn hyphens into underscores; health does not (nself-cli.md §1.1, §1.7).
        return "%s_%s" % (self.name, service.replace("-", "_") if builtin else service)

    def record(self, service):
        return runtime.load(self.container(service))

    def records(self):
        mine = [r for r in runtime.all_records() if r["name"].startswith(self.name + "_")]
        return mine

    def config_mtime(self):
        stamps = []
        for name in ("docker-compose.yml", "docker-compose.override.yml", ".env", ".env.dev", ".env.prod", ".env.secrets", ".env.staging", ".env.local"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                stamps.append(os.path.getmtime(path))
        return max(stamps or [0])


def _is_bind(volume):
    return volume.startswith(("./", "../", "/", "${"))


def _mount_target(volume):
    return str(volume).split(":")[1] if ":" in str(volume) else str(volume)


def _merge_compose(base, extra):
    for key, value in extra.items():
        if key != "services":
            base[key] = value if not isinstance(value, dict) else dict(base.get(key) or {}, **value)
            continue
        services = base.setdefault("services", {})
        for name, spec in (value or {}).items():
            target = services.setdefault(name, {})
            for field, setting in (spec or {}).items():
                if field == "volumes":
                    added = {_mount_target(v) for v in setting}
                    target["volumes"] = [v for v in target.get("volumes") or [] if _mount_target(v) not in added] + setting
                elif isinstance(setting, dict) and isinstance(target.get(field), dict):
                    target[field] = dict(target[field], **setting)
                else:
                    target[field] = setting


def _looks_like_project(directory):
    return os.path.isfile(os.path.join(directory, "docker-compose.yml")) or any(
        os.path.exists(os.path.join(directory, n)) for n in (".env", ".env.dev", ".env.local"))


def require_compose(project):
    if not project.has_compose():
        ui.error("docker-compose.yml not found. Run 'nself build' first.")
        sys.exit(1)
