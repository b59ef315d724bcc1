#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nself_info
short_description: Read the state of an nself project (version, services, health, URLs, doctor)
version_added: 0.1.0
description:
  - Runs the read-only nself commands of a project and returns their results as structured facts.
  - The service list comes from C(nself status --json), whose exit code is always 0; health comes from
    C(nself health --json), whose exit code only says whether something is unhealthy. Both are parsed, not trusted by rc.
  - C(nself status --json) with a service name is not JSON in nself 0.9.9, so this module always asks for all services
    and filters.
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
  gather:
    description:
      - Which facts to collect. V(doctor) runs the full C(nself doctor) diagnosis and can take several seconds.
    type: list
    elements: str
    choices: [version, status, health, urls, doctor]
    default: [version, status, health]
  services:
    description:
      - Only report these services from the status list. An empty list reports every service.
      - A name that the project does not define is reported in RV(missing_services).
    type: list
    elements: str
    default: []
notes:
  - C(nself health) appends a line to C(.nself/health/history.jsonl) in the project, and nself may append
    C(PROJECT_NAME) to C(.env) when it is missing. These are nself's own side effects; the module reports C(changed=false).
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Read service status and health of the nFamily backend
  nfamily.ops.nself_info:
    project_dir: /opt/nself-family/backend
  register: backend

- name: Show the services that are not healthy
  ansible.builtin.debug:
    msg: "{{ backend.unhealthy_services }}"

- name: Include the doctor diagnosis
  nfamily.ops.nself_info:
    project_dir: /opt/nself-family/backend
    gather: [version, status, health, doctor]
"""

RETURN = r"""
nself_version:
  description: Version printed by C(nself -v).
  returned: when O(gather) contains V(version)
  type: str
  sample: 0.9.9
environment:
  description: The environment C(nself status --json) reports (C(ENV) of the cascade, or C(local)).
  returned: when O(gather) contains V(status)
  type: str
  sample: prod
services:
  description: One entry per compose service, in the order nself lists them.
  returned: when O(gather) contains V(status)
  type: list
  elements: dict
  contains:
    name:
      description: Compose service name.
      type: str
      sample: auth
    status:
      description: V(healthy), V(starting), V(unhealthy), V(stopped), or a raw Docker state such as V(exited).
      type: str
      sample: healthy
    cpu:
      description: CPU usage as docker stats prints it.
      type: str
      sample: 0.50%
    memory:
      description: Memory usage as docker stats prints it.
      type: str
      sample: 25MiB / 7.6GiB
services_by_name:
  description: RV(services) keyed by service name.
  returned: when O(gather) contains V(status)
  type: dict
  sample: {"auth": {"name": "auth", "status": "healthy", "cpu": "0.50%", "memory": "25MiB / 7.6GiB"}}
unhealthy_services:
  description: Names of services whose status is anything but V(healthy).
  returned: when O(gather) contains V(status)
  type: list
  elements: str
  sample: [minio]
missing_services:
  description: Names from O(services) that the project does not define.
  returned: when O(gather) contains V(status)
  type: list
  elements: str
  sample: [scheduler]
health:
  description: The C(nself health --json) document (postgres, hasura, auth, nginx, plus enabled optional services).
  returned: when O(gather) contains V(health)
  type: dict
  sample: {"healthy": 6, "unhealthy": 0, "total": 6, "services": [{"service": "postgres", "status": "healthy"}]}
healthy:
  description: True when C(nself health) counted no unhealthy, stopped or missing service.
  returned: when O(gather) contains V(health)
  type: bool
  sample: true
urls:
  description: The C(nself urls --json) document (a stub in nself 0.9.9 with the base domain only).
  returned: when O(gather) contains V(urls)
  type: dict
  sample: {"base_domain": "family.nself.org", "protocol": "https"}
doctor:
  description: Result of C(nself doctor).
  returned: when O(gather) contains V(doctor)
  type: dict
  contains:
    ok:
      description: True when doctor found no issue (rc 0).
      type: bool
    rc:
      description: Exit code of C(nself doctor).
      type: int
    findings:
      description: Lines doctor marked as an issue or a warning.
      type: list
      elements: str
    output:
      description: Doctor's standard output, cleaned of ANSI codes.
      type: str
commands:
  description: Every nself command the module ran, with its exit code.
  returned: always
  type: list
  elements: dict
  sample: [{"cmd": ["/usr/local/bin/nself", "status", "--json"], "rc": 0}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils._nself import (
    NselfCLI,
    NselfError,
    nself_argument_spec,
)


def gather_facts(cli, gather, wanted_services):
    result = {}
    warnings = []
    if "version" in gather:
        result["nself_version"] = cli.version()
    if "status" in gather:
        document, services = cli.status()
        names = [s.get("name") for s in services]
        if wanted_services:
            services = [s for s in services if s.get("name") in wanted_services]
        result["environment"] = document.get("environment")
        result["services"] = services
        result["services_by_name"] = dict((s["name"], s) for s in services)
        result["unhealthy_services"] = [s["name"] for s in services if s.get("status") != "healthy"]
        result["missing_services"] = [n for n in wanted_services if n not in names]
    if "health" in gather:
        health, warning = cli.health()
        if warning:
            warnings.append(warning)
        result["health"] = health
        result["healthy"] = int(health.get("unhealthy", 1)) == 0
    if "urls" in gather:
        result["urls"] = cli.urls()
    if "doctor" in gather:
        result["doctor"] = cli.doctor()
    return result, warnings


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(
        gather=dict(type="list", elements="str", default=["version", "status", "health"],
                    choices=["version", "status", "health", "urls", "doctor"]),
        services=dict(type="list", elements="str", default=[]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    cli = None
    try:
        cli = NselfCLI(module, module.params["project_dir"], module.params["nself_bin"], module.params["environment"])
        facts, warnings = gather_facts(cli, module.params["gather"], module.params["services"])
    except NselfError as exc:
        module.fail_json(msg=str(exc), commands=cli.commands if cli else [])
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=False, commands=cli.commands, **facts)


if __name__ == "__main__":
    main()
