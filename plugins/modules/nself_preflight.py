#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nself_preflight
short_description: Check an nFamily host before a runbook changes anything
version_added: 0.1.0
description:
  - Checks, in one task, what every runbook needs before its first change - nself is installed and recent enough and its
    C(db) command is 0.9.9's, the project
    directory is an nself project, the env cascade of the selected environment is readable, and enough disk space is free.
  - The C(db) command is recognised by C(nself db help), not by the version number - the v0.9.9 release tag reports itself as
    0.9.8, while 0.9.8's own C(db) command rolls back C(n) migrations and keeps its backups in C(_backups/).
  - The Python libraries of O(libraries) must be importable on the host (the modules run there, not on the controller);
    every missing one is named, with the command that installs it on the host's distribution.
  - The user the module runs as must be able to read every env file of the cascade (the secrets among them), write
    O(state_dir) and use the Docker daemon. The runbooks need root on the host for that; over SSH as a non-root user
    that means become. Missing rights are the first problem reported.
  - Every problem is collected and reported together, so one run tells the on-call person everything to fix.
  - Reads only; env values are never returned, only the names of the files and how many keys each defines.
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  min_version:
    description: Oldest nself version number the runbook accepts (0.9.8, which the v0.9.9 tag reports).
    type: str
    default: 0.9.8
  require_keys:
    description: Keys the merged env cascade must define (for example V(POSTGRES_DB)). Only presence is checked.
    type: list
    elements: str
    default: []
  state_dir:
    description:
      - The collection's state directory on the host (locks, checkpoints, run records). The user the module runs as
        must be able to create or write it.
    type: path
  libraries:
    description:
      - Python libraries (import names) the runbook's modules will import on the host - V(boto3) (S3 - MinIO and offsite
        copies), V(cryptography) (encrypting and signing offsite copies), V(yaml) (PyYAML - merging an existing compose
        override for PITR).
    type: list
    elements: str
    choices: [boto3, cryptography, yaml]
    default: []
  checks:
    description:
      - Which checks to run - V(rights) (what the user may read, write and use), V(libraries) (O(libraries)),
        V(nself) (version and C(db) command), V(cascade) (the env files and O(require_keys)), V(space) (O(free_space)).
        The runbooks check V(rights) and V(libraries) first, before their read-only checks of the request, and the rest
        at their start.
    type: list
    elements: str
    choices: [rights, libraries, nself, cascade, space]
    default: [rights, libraries, nself, cascade, space]
  free_space:
    description: Paths and the bytes that must be free on their filesystem.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: A path on the filesystem to check (the nearest existing parent is used).
        type: path
        required: true
      required_bytes:
        description: Bytes that must be free for the runbook's work.
        type: int
        required: true
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Check, before anything else, what the storage runbook needs of the user and of the host's Python
  nfamily.ops.nself_preflight:
    project_dir: /opt/nself-family/backend
    state_dir: /var/lib/nfamily-ops
    libraries: [boto3]
    checks: [rights, libraries]

- name: Preflight for a restore that needs room for a safety backup
  nfamily.ops.nself_preflight:
    project_dir: /opt/nself-family/backend
    require_keys: [POSTGRES_DB, POSTGRES_USER]
    state_dir: /var/lib/nfamily-ops
    free_space:
      - path: /opt/nself-family/backend/backups
        required_bytes: "{{ (backup_size | int) * 2 }}"
"""

RETURN = r"""
nself_version:
  description: Version of nself on the host.
  returned: when O(checks) has V(nself) and nself was found
  type: str
  sample: 0.9.9
nself_db_dialect:
  description: Whose C(db) command nself has, by C(nself db help) - V(0.9.9), V(0.9.8), or null when neither.
  returned: when O(checks) has V(nself) and nself was found
  type: str
  sample: 0.9.9
environment:
  description: The environment nself selects (V(NSELF_ENV), then C(ENV=) in C(.env), then E(ENV), then V(dev)).
  returned: always
  type: str
  sample: prod
declared_environment:
  description:
    - The environment the host names for itself, C(ENV=) of its C(.env) (environment variables a play or a session sets
      do not count), or null when it names none, names one nself does not know, or C(.env) cannot be read.
    - A run that destroys or replaces data treats the host as prod unless both this and RV(environment) say dev or staging.
  returned: always
  type: str
  sample: prod
cascade:
  description:
    - The env files of the environment in override order, whether each exists and how many keys it defines.
    - Empty when O(checks) has no V(cascade), or the user may not read the files.
  returned: always
  type: list
  elements: dict
  sample: [{"file": ".env.dev", "exists": true, "keys": 42}, {"file": ".env.secrets", "exists": true, "keys": 7}]
free_space:
  description: For each O(free_space) entry, the filesystem's free bytes and whether it is enough (empty without V(space) in O(checks)).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/opt/nself-family/backend/backups", "free_bytes": 5368709120, "required_bytes": 1073741824, "ok": true}]
rights:
  description: What the user the module runs as may not do of what the runbooks do, or null (also without V(rights) in O(checks)).
  returned: always
  type: str
  sample: alice cannot read /opt/nself-family/backend/.env.secrets (nfamily, 0600) ...
missing_libraries:
  description: The O(libraries) this host's Python cannot import (empty without V(libraries) in O(checks)).
  returned: always
  type: list
  elements: str
  sample: [boto3]
problems:
  description: Every problem found (empty when the host passed).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _disk as disk
from ansible_collections.nfamily.ops.plugins.module_utils import _host_requirements as hostreq
from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.module_utils._nself import NselfCLI, NselfError, nself_argument_spec, version_tuple
from ansible_collections.nfamily.ops.plugins.module_utils._rights import missing_rights

CHECKS = ("rights", "libraries", "nself", "cascade", "space")


def check_nself(module, params, result, problems):
    try:
        cli = NselfCLI(module, params["project_dir"], params["nself_bin"], params["environment"])
        result["nself_version"] = cli.version()
        if version_tuple(result["nself_version"]) < version_tuple(params["min_version"]):
            problems.append("nself %s is older than %s, which this runbook needs; upgrade nself"
                            % (result["nself_version"], params["min_version"]))
        check_db_dialect(module, cli, result, problems)
    except NselfError as exc:
        problems.append(str(exc))


def check_db_dialect(module, cli, result, problems):
    """The runbooks drive 0.9.9's `db` command. The v0.9.9 tag reports 0.9.8, and 0.9.8's own `db` differs
    (`migrate down [n]`, backups in `_backups/`): the help text decides, not the number."""
    dialect, answer = cli.db_dialect()
    result["nself_db_dialect"] = dialect
    version = result["nself_version"]
    if dialect == "0.9.8":
        problems.append("nself %s has 0.9.8's `db` command (`nself db help` lists `migrate down [n]`), which the runbooks "
                        "do not drive; install nself 0.9.9" % version)
    elif dialect is None and version_tuple(version) <= (0, 9, 9):
        said = " ".join((answer.stderr or answer.stdout).split())[:200] or "nothing"
        problems.append("`nself db help` (rc %d) is neither 0.9.9's nor 0.9.8's, so which `db` command nself %s has is "
                        "unknown (it said: %s); install nself 0.9.9" % (answer.rc, version, said))
    elif dialect is None:
        module.warn("nself %s: `nself db help` is not 0.9.9's; the runbooks were tested with 0.9.9's `db` command" % version)


def check_cascade(project_dir, env_name, require_keys, problems):
    report = []
    try:
        merged, files = nenv.load_cascade(project_dir, env_name)
    except (IOError, OSError) as exc:
        problems.append("cannot read the %s env cascade in %s: %s" % (env_name, project_dir, exc))
        return report
    for name, values in files:
        report.append({"file": name, "exists": values is not None, "keys": len(values or {})})
    if not any(entry["exists"] for entry in report):
        problems.append("none of the %s env files (%s) exists in %s" % (env_name, ", ".join(nenv.cascade_files(env_name)), project_dir))
    missing = [key for key in require_keys if not merged.get(key)]
    if missing:
        problems.append("the %s env cascade does not define %s" % (env_name, ", ".join(missing)))
    return report


def check_space(entries, problems):
    report = []
    for entry in entries:
        free = disk.free_bytes(entry["path"])
        ok = free >= entry["required_bytes"]
        report.append({"path": entry["path"], "free_bytes": free, "required_bytes": entry["required_bytes"], "ok": ok})
        if not ok:
            problems.append("%s has %s free, the runbook needs %s; free space first" % (
                entry["path"], disk.mib(free), disk.mib(entry["required_bytes"])))
    return report


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(
        min_version=dict(type="str", default="0.9.8"),
        require_keys=dict(type="list", elements="str", default=[], no_log=False),
        state_dir=dict(type="path"),
        free_space=dict(type="list", elements="dict", default=[], options=dict(
            path=dict(type="path", required=True), required_bytes=dict(type="int", required=True))),
        libraries=dict(type="list", elements="str", default=[], choices=sorted(hostreq.LIBRARIES)),
        checks=dict(type="list", elements="str", default=list(CHECKS), choices=list(CHECKS)),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    problems, result = [], {}
    project_found = os.path.isdir(params["project_dir"])
    env_name = nenv.selected_environment(params["project_dir"], params["environment"])
    checks = params["checks"]
    rights = missing_rights(params["project_dir"], env_name, params["state_dir"]) if project_found and "rights" in checks else None
    result["rights"] = rights
    if rights:
        problems.append(rights)
    wanted = params["libraries"] if "libraries" in checks else []
    result["missing_libraries"] = hostreq.missing_libraries(wanted)
    if result["missing_libraries"]:
        problems.append(hostreq.describe_missing(result["missing_libraries"]))
    if "nself" in checks:
        check_nself(module, params, result, problems)
    result["environment"] = env_name
    result["declared_environment"] = nenv.declared_environment(params["project_dir"])
    read_cascade = "cascade" in checks and project_found and not rights
    result["cascade"] = check_cascade(params["project_dir"], env_name, params["require_keys"], problems) if read_cascade else []
    result["free_space"] = check_space(params["free_space"], problems) if "space" in checks else []
    result["problems"] = problems
    if problems:
        module.fail_json(msg="Preflight failed: " + "; ".join(problems), **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
