"""The nself env cascade, parsed the way nself 0.9.9's safe_source_env does it.

KEY=VALUE lines, one pair of surrounding quotes stripped, no ${...} expansion,
later files override earlier ones, and file values beat the process environment.
"""
import os
import re

CASCADES = {
    "dev": [".env.dev", ".env.local", ".env"],
    "staging": [".env.dev", ".env.staging", ".env"],
    "prod": [".env.dev", ".env.staging", ".env.prod", ".env.secrets", ".env"],
}
# .env.runtime is the prod/staging cascade without .env.local (lib/utils/env-merger.sh).
RUNTIME_CASCADE = [".env.dev", ".env.staging", ".env.prod", ".env.secrets", ".env"]
ALIASES = {
    "dev": "dev", "development": "dev", "local": "dev", "test": "dev",
    "staging": "staging", "stage": "staging",
    "prod": "prod", "production": "prod",
}
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_file(path):
    values = {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return values
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        key, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def normalise_env(name):
    return ALIASES.get((name or "").strip().lower(), "dev")


def detect_environment(project_dir, environ=None):
    environ = os.environ if environ is None else environ
    for key in ("TARGET_ENV", "NSELF_ENV"):
        if environ.get(key):
            return normalise_env(environ[key])
    dot_env = parse_file(os.path.join(project_dir, ".env"))
    if dot_env.get("ENV"):
        return normalise_env(dot_env["ENV"])
    if environ.get("ENV"):
        return normalise_env(environ["ENV"])
    return "dev"


def load_cascade(project_dir, env_name, files=None):
    merged = {}
    for name in files or CASCADES[env_name]:
        merged.update(parse_file(os.path.join(project_dir, name)))
    return merged


def write_env_file(path, values, mode=0o600):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for key, value in values.items():
            handle.write("%s=%s\n" % (key, value))
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def interpolate(value, variables):
    """Docker Compose style ${VAR}, ${VAR:-default} and $VAR interpolation."""
    def repl(match):
        name = match.group(1) or match.group(4)
        default = match.group(3)
        current = variables.get(name)
        if match.group(2) == ":-" and not current:
            return default or ""
        if match.group(2) == "-" and current is None:
            return default or ""
        return current or ""
    pattern = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
    return pattern.sub(repl, value)
