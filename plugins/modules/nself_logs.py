#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nself_logs
short_description: The last lines of nself services' logs as structured entries
version_added: 0.1.0
description:
  - Runs C(nself logs <service> --tail N) for each service and turns its output into entries C({time, service, message}).
    nself has no JSON mode and always colours its output; the module strips the ANSI codes and the header box and
    parses each C(YYYY-MM-DD HH:MM:SS [service] message) line.
  - With O(errors_only), keeps the lines that report a problem (error, fatal, panic, exception, refused, timeout,
    out of memory, killed, a JSON C(level) of error or fatal, or an HTTP 5xx in an access log line).
  - Values shaped like secrets in a message (the password of a URL, a JWT, a C(Bearer) value, C(NAME=value) where the
    name says password, secret, token or key) are replaced by C([redacted]) before the entry is returned.
  - Read-only. A service unknown to the project fails the module, naming it.
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: none
options:
  services:
    description: Services whose logs to read, as named in C(docker-compose.yml).
    type: list
    elements: str
    required: true
  lines:
    description: How many of the last lines of each service to read (nself's C(--tail)).
    type: int
    default: 100
  errors_only:
    description: Keep only the lines that report a problem.
    type: bool
    default: false
  pattern:
    description: Keep only the lines whose message matches this regular expression (Python syntax).
    type: str
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Errors in the last 100 lines of api and auth
  nfamily.ops.nself_logs:
    project_dir: /opt/nself-family/backend
    services: [api, auth]
    errors_only: true
  register: api_errors
"""

RETURN = r"""
entries:
  description: The kept log lines, oldest first per service.
  returned: always
  type: list
  elements: dict
  sample: [{"time": "2026-11-27 03:30:00", "service": "api", "message": "Error: connect ECONNREFUSED 127.0.0.1:5432"}]
counts:
  description: Per service, the number of lines read and the number kept.
  returned: always
  type: dict
  sample: {"api": {"read": 100, "kept": 3}}
commands:
  description: Every nself command the module ran, with its exit code.
  returned: always
  type: list
  elements: dict
"""

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils._nself import NselfCLI, NselfError, nself_argument_spec
from ansible_collections.nfamily.ops.plugins.module_utils._redact import scrub

LINE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})\S*\s+\[[^\]]*\]\s?(.*)$")
PROBLEM_RE = re.compile(
    r"\b(error|errors|fatal|panic|exception|critical|traceback|refused|timed? ?out|timeout|out of memory|oom|killed)\b"
    r"|\"level\"\s*:\s*\"?(error|fatal|50|60)\b|\blevel=(error|fatal)\b|\"\s[5]\d\d\s", re.I)


def parse(text):
    """(time, message) of each log line in nself's logs output; the header box and blanks are skipped."""
    entries = []
    for line in text.splitlines():
        match = LINE_RE.match(line.strip())
        if match:
            entries.append((match.group(1), match.group(2)))
    return entries


def is_problem(message):
    return bool(PROBLEM_RE.search(message))


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(
        services=dict(type="list", elements="str", required=True),
        lines=dict(type="int", default=100),
        errors_only=dict(type="bool", default=False),
        pattern=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if params["lines"] < 1:
        module.fail_json(msg="lines must be 1 or more")
    try:
        pattern = re.compile(params["pattern"]) if params["pattern"] else None
    except re.error as exc:
        module.fail_json(msg="pattern is not a valid regular expression: %s" % exc)
    cli = None
    entries, counts = [], {}
    try:
        cli = NselfCLI(module, params["project_dir"], params["nself_bin"], params["environment"])
        for service in dict.fromkeys(params["services"]):
            result = cli.run(["logs", service, "--tail", str(params["lines"])])
            if result.rc != 0:
                first = ((result.stderr or result.stdout).strip().splitlines() or ["no output"])[0]
                raise NselfError("`nself logs %s` failed (rc %d): %s. Check the service name (`nself status` lists them)"
                                 % (service, result.rc, first))
            lines = parse(result.stdout + "\n" + result.stderr)
            kept = [(t, m) for t, m in lines
                    if (not params["errors_only"] or is_problem(m)) and (not pattern or pattern.search(m))]
            counts[service] = {"read": len(lines), "kept": len(kept)}
            entries.extend({"time": t, "service": service, "message": scrub(m)} for t, m in kept)
    except NselfError as exc:
        module.fail_json(msg=str(exc), commands=cli.commands if cli else [])
    module.exit_json(changed=False, entries=entries, counts=counts, commands=cli.commands)


if __name__ == "__main__":
    main()
