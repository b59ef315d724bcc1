# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""The nself env cascade as nself 0.9.9 reads it (nself-cli.md §2): environment selection,
the files of each environment in override order, and safe_source_env's KEY=VALUE parsing
(one pair of surrounding quotes stripped, no ${...} expansion)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

CASCADES = {
    "dev": [".env.dev", ".env.local", ".env"],
    "staging": [".env.dev", ".env.staging", ".env"],
    "prod": [".env.dev", ".env.staging", ".env.prod", ".env.secrets", ".env"],
}
ALIASES = {"dev": "dev", "development": "dev", "local": "dev", "staging": "staging", "stage": "staging",
           "prod": "prod", "production": "prod"}
LINE_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_env_text(text):
    values = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = LINE_RE.match(line)
        if not match:
            continue
        value = match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[match.group(1)] = value
    return values


def read_env_file(path):
    """Values of one env file; None when it does not exist. IOError when it cannot be read."""
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return parse_env_text(handle.read())


def normalise(name):
    return ALIASES.get((name or "").strip().lower())


def detect_environment(project_dir, environ=None):
    """nself's order: TARGET_ENV, NSELF_ENV, ENV= in .env, $ENV, dev (also for a name nself does not know)."""
    environ = os.environ if environ is None else environ
    for key in ("TARGET_ENV", "NSELF_ENV"):
        if environ.get(key):
            return normalise(environ[key]) or "dev"
    dot_env = read_env_file(os.path.join(project_dir, ".env")) or {}
    if dot_env.get("ENV"):
        return normalise(dot_env["ENV"]) or "dev"
    return normalise(environ.get("ENV")) or "dev"


def declared_environment(project_dir):
    """The environment the host's .env names for it (ENV=), normalised; None when it names none, names one nself
    does not know, or cannot be read: then nothing says the host is not prod. Variables a play or a session
    sets (NSELF_ENV, ENV) are not the host's word."""
    try:
        dot_env = read_env_file(os.path.join(project_dir, ".env")) or {}
    except (IOError, OSError):
        return None
    return normalise(dot_env.get("ENV"))


def cascade_files(env_name):
    return CASCADES[env_name]


def load_cascade(project_dir, env_name):
    """(merged values, [(file, values or None)]) for an environment."""
    merged, files = {}, []
    for name in cascade_files(env_name):
        values = read_env_file(os.path.join(project_dir, name))
        files.append((name, values))
        merged.update(values or {})
    return merged, files


def selected_environment(project_dir, environment=None):
    """The environment given, else nself's choice; dev when .env itself cannot be read (the rights check
    of _rights names that file)."""
    if environment:
        return environment
    try:
        return detect_environment(project_dir)
    except (IOError, OSError):
        return "dev"


def project_name(project_dir, merged):
    """PROJECT_NAME as nself finds it: the env cascade (merged values), else the project directory's name."""
    return merged.get("PROJECT_NAME") or os.path.basename(os.path.normpath(project_dir))


def container_name(project, service):
    """The Docker container of a service as nself's compose file names it: <PROJECT_NAME>_<service>, - as _."""
    return "%s_%s" % (project, service.replace("-", "_"))
