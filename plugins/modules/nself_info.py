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
  - Fails before running nself when the user it runs as cannot read every env file of the cascade or use the Docker
    daemon (as an operator over SSH without become); nself would then report every service stopped.
  - nself reads Docker's health before the container's state, and Docker marks a container's health V(unhealthy) when it
    stops, pauses or waits between restarts, so nself calls a crashed or crash-looping service with a healthcheck
    V(unhealthy). The module asks C(docker inspect) about the services nself calls V(unhealthy) and reports the
    state of those that do not run.
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.postgres
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
      - V(ports) names the processes that listen on the host ports a service publishes (its compose C(ports), from
        the env cascade) while that service is exited, created, stopped or dead, such as a distribution nginx on 80/443 or a
        stray container's C(docker-proxy). It implies V(status). The owning process of another user's socket is
        only known with root (become); its user always is.
      - V(database) runs C(SELECT 1) and reads connection use against C(max_connections) with C(psql) inside the postgres
        container; V(disk) reads the free space of the project directory's filesystem; V(endpoints) probes O(endpoints)
        from the host, all at once.
    type: list
    elements: str
    choices: [version, status, health, urls, doctor, database, disk, endpoints, ports]
    default: [version, status, health]
  endpoints:
    description:
      - HTTP endpoints probed with V(endpoints). An endpoint is ok when its status code is one of C(status) (default
        C([200])), its JSON body's C(status) equals C(json_status) when given (nFamily's C(/ready) answers 200 when not
        ready), and its body contains C(body) when given.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: A label for the report.
        type: str
        required: true
      url:
        description: The URL, as seen from the host.
        type: str
        required: true
      status:
        description: Accepted status codes.
        type: list
        elements: int
        default: [200]
      json_status:
        description: Required value of the C(status) key of a JSON body.
        type: str
      body:
        description: Text the body must contain.
        type: str
      host:
        description:
          - The virtual host to ask for (the C(Host) header), for a route nginx serves by name, such as
            C(api.<domain>) probed at C(https://127.0.0.1/healthz) from the host itself.
          - The certificate is checked against the URL's host, not this one, and no server name is sent for an IP
            address; probe such a route with C(validate_certs=false).
        type: str
      validate_certs:
        description: Check the TLS certificate.
        type: bool
        default: true
  timeout:
    description: Seconds each endpoint probe may take.
    type: int
    default: 5
  volumes:
    description:
      - With V(disk), also the disk usage of these compose volumes (short names such as V(minio_data)), located with
        C(docker volume inspect <PROJECT_NAME>_<volume>).
    type: list
    elements: str
    default: []
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
  returned: when O(gather) contains V(status) or V(ports)
  type: str
  sample: prod
services:
  description: One entry per compose service, in the order nself lists them.
  returned: when O(gather) contains V(status) or V(ports)
  type: list
  elements: dict
  contains:
    name:
      description: Compose service name.
      type: str
      sample: auth
    status:
      description:
        - V(healthy), V(starting), V(unhealthy), V(stopped) (no container), or Docker's state when the container does
          not run (V(exited), V(restarting), V(paused), V(dead), V(created)).
      type: str
      sample: healthy
    reported_status:
      description: What nself reported (V(unhealthy)) when Docker says the container does not run (or no longer exists).
      type: str
      returned: when nself's status was replaced by the container's state
      sample: unhealthy
    state:
      description: Docker's C(State.Status) of the container.
      type: str
      returned: when nself's status was replaced by the container's state
      sample: restarting
    restart_count:
      description: Docker's C(RestartCount) of the container.
      type: int
      returned: when nself's status was replaced by the container's state
      sample: 7
    exit_code:
      description: Docker's C(State.ExitCode) of the container.
      type: int
      returned: when nself's status was replaced by the container's state
      sample: 137
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
  returned: when O(gather) contains V(status) or V(ports)
  type: dict
  sample: {"auth": {"name": "auth", "status": "healthy", "cpu": "0.50%", "memory": "25MiB / 7.6GiB"}}
unhealthy_services:
  description: Names of services whose status is anything but V(healthy).
  returned: when O(gather) contains V(status) or V(ports)
  type: list
  elements: str
  sample: [minio]
missing_services:
  description: Names from O(services) that the project does not define.
  returned: when O(gather) contains V(status) or V(ports)
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
  description: Result of C(nself doctor), secret-shaped values (a URL's password, a JWT, C(NAME=value) of a secret) replaced.
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
database:
  description: Whether the database answers, and its connection use.
  returned: when O(gather) contains V(database)
  type: dict
  contains:
    reachable:
      description: True when C(SELECT 1) answered.
      type: bool
    error:
      description: Why it did not (the client's message, such as C(sorry, too many clients already)).
      type: str
    connections:
      description: Client connections open.
      type: int
    max_connections:
      description: The server's C(max_connections).
      type: int
    usage_percent:
      description: RV(database.connections) as a percentage of RV(database.max_connections).
      type: int
  sample: {"reachable": true, "error": "", "connections": 12, "max_connections": 50, "usage_percent": 24}
volumes_disk:
  description: Disk usage per volume of O(volumes) (or C(error) when it cannot be located).
  returned: when O(gather) contains V(disk) and O(volumes) is set
  type: dict
  sample: {"minio_data": {"path": "/var/lib/docker/volumes/nself-family_minio_data/_data", "used_percent": 98}}
endpoints:
  description: One result per probed endpoint.
  returned: when O(gather) contains V(endpoints)
  type: list
  elements: dict
  sample: [{"name": "auth /ready", "url": "http://127.0.0.1:4000/ready", "status": 200, "ok": false, "detail": "not_ready"}]
disk:
  description: Free space of the filesystem holding the project directory.
  returned: when O(gather) contains V(disk)
  type: dict
  sample: {"path": "/opt/nself-family/backend", "free_bytes": 1073741824, "total_bytes": 8589934592, "used_percent": 87}
port_holders:
  description: One entry per listener on a host port of a service that is exited, created, stopped or dead.
  returned: when O(gather) contains V(ports)
  type: list
  elements: dict
  contains:
    service:
      description: The service that publishes the port.
      type: str
    port:
      description: The host port.
      type: int
    variable:
      description: The env variable that sets the port (C(NGINX_SSL_PORT), C(CS_2)...).
      type: str
    pid:
      description: The listening process, or null when this account cannot see it.
      type: int
    command:
      description: Its command line (empty when unknown).
      type: str
    user:
      description: The user owning the socket.
      type: str
  sample: [{"service": "nginx", "port": 443, "variable": "NGINX_SSL_PORT", "pid": 812,
            "command": "nginx: master process /usr/sbin/nginx", "user": "root"}]
parse_warnings:
  description:
    - What was read around nself's malformed output (0.9.9 prints invalid JSON in C(status --json) and
      C(health --json) on some states); the facts then come from the name/status pairs.
  returned: always
  type: list
  elements: str
  sample: ["nself status --json printed invalid JSON (Expecting ',' delimiter: line 8 column 31 (char 160)); used its name/status pairs"]
commands:
  description: Every nself command the module ran, with its exit code.
  returned: always
  type: list
  elements: dict
  sample: [{"cmd": ["/usr/local/bin/nself", "status", "--json"], "rc": 0}]
"""

import json
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.error import HTTPError
from ansible.module_utils.urls import open_url

from ansible_collections.nfamily.ops.plugins.module_utils import _disk as disk
from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.module_utils import _ports as ports
from ansible_collections.nfamily.ops.plugins.module_utils._nself import (
    NselfCLI,
    NselfError,
    nself_argument_spec,
)
from ansible_collections.nfamily.ops.plugins.module_utils._pg import PostgresContainer, PostgresError, pg_argument_spec
from ansible_collections.nfamily.ops.plugins.module_utils._rights import missing_rights


def project_env(params):
    return nenv.load_cascade(params["project_dir"], nenv.selected_environment(params["project_dir"], params["environment"]))[0]


def database_facts(module):
    """SELECT 1 and connection use, through psql in the postgres container; a failure is a fact here."""
    params = module.params
    env = project_env(params)
    facts = {"reachable": False, "error": "", "connections": None, "max_connections": None, "usage_percent": None}
    try:
        pg = PostgresContainer(module, params["project_dir"], env, params["nself_bin"], params["via"], params["postgres_service"],
                               {"NSELF_ENV": params["environment"]} if params["environment"] else None)
        row = pg.query("SELECT 1, (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), "
                       "current_setting('max_connections')::int")[0]
    except PostgresError as exc:
        message = str(exc)
        facts["error"] = message[message.index("FATAL:"):].strip() if "FATAL:" in message else message
        return facts
    connections, maximum = int(row[1]), int(row[2])
    facts.update(reachable=row[0] == "1", connections=connections, max_connections=maximum,
                 usage_percent=connections * 100 // maximum if maximum else None)
    return facts


def probe(endpoint, timeout):
    """{name, url, status, ok, detail} of one endpoint; status -1 when nothing answered."""
    status, body, error = -1, "", ""
    try:
        response = open_url(endpoint["url"], timeout=timeout, validate_certs=endpoint["validate_certs"],
                            follow_redirects="none", headers={"Host": endpoint["host"]} if endpoint["host"] else None)
        status, body = response.getcode(), response.read(65536).decode("utf-8", "replace")
    except HTTPError as exc:
        status, body = exc.code, exc.read(65536).decode("utf-8", "replace") if exc.fp else ""
    except Exception as exc:  # refused, timed out, TLS, DNS: all mean "no answer" here
        error = str(getattr(exc, "reason", exc))
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        document = {}
    json_status = document.get("status") if isinstance(document, dict) else None
    ok = (status in endpoint["status"]
          and (endpoint["json_status"] is None or json_status == endpoint["json_status"])
          and (endpoint["body"] is None or endpoint["body"] in body))
    detail = error or (json_status if json_status is not None else " ".join(body.split())[:60])
    return {"name": endpoint["name"], "url": endpoint["url"], "status": status, "ok": ok, "detail": str(detail)[:120]}


def probe_all(endpoints, timeout):
    if not endpoints:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(endpoints))) as pool:
        return list(pool.map(lambda e: probe(e, timeout), endpoints))


def volume_disk_facts(module, volumes):
    """Disk usage of named compose volumes (<PROJECT_NAME>_<volume>), located with docker volume inspect."""
    params = module.params
    env = project_env(params)
    facts = {}
    for volume in volumes:
        try:
            facts[volume] = disk.usage(disk.volume_mountpoint(module, "%s_%s" % (env.get("PROJECT_NAME") or "", volume)))
        except disk.VolumeError as exc:
            facts[volume] = {"error": str(exc)}
    return facts


def gather_facts(cli, gather, wanted_services):
    result = {}
    warnings = []
    if "version" in gather:
        result["nself_version"] = cli.version()
    if "status" in gather or "ports" in gather:
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
    if "database" in gather:
        result["database"] = database_facts(cli.module)
    if "disk" in gather:
        result["disk"] = disk.usage(cli.project_dir)
        if cli.module.params["volumes"]:
            result["volumes_disk"] = volume_disk_facts(cli.module, cli.module.params["volumes"])
    if "endpoints" in gather:
        result["endpoints"] = probe_all(cli.module.params["endpoints"], cli.module.params["timeout"])
    if "ports" in gather:
        down = [s["name"] for s in services if s.get("status") in ports.NOT_RUNNING]
        result["port_holders"] = ports.port_holders(project_env(cli.module.params), down)
    warnings = cli.warnings + warnings
    result["parse_warnings"] = warnings
    return result, warnings


def require_rights(cli):
    """As ops without become, nself reads half the cascade and no container (the secrets file and the
    Docker socket are not the operator's): every service would read stopped. Say so instead."""
    rights = missing_rights(cli.project_dir, cli.env_name(), None)
    if rights:
        raise NselfError(rights)


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(pg_argument_spec())
    argument_spec.update(
        gather=dict(type="list", elements="str", default=["version", "status", "health"],
                    choices=["version", "status", "health", "urls", "doctor", "database", "disk", "endpoints", "ports"]),
        services=dict(type="list", elements="str", default=[]),
        endpoints=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            url=dict(type="str", required=True),
            status=dict(type="list", elements="int", default=[200]),
            json_status=dict(type="str"),
            body=dict(type="str"),
            host=dict(type="str"),
            validate_certs=dict(type="bool", default=True),
        )),
        timeout=dict(type="int", default=5),
        volumes=dict(type="list", elements="str", default=[]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    cli = None
    try:
        cli = NselfCLI(module, module.params["project_dir"], module.params["nself_bin"], module.params["environment"])
        require_rights(cli)
        facts, warnings = gather_facts(cli, module.params["gather"], module.params["services"])
    except NselfError as exc:
        module.fail_json(msg=str(exc), commands=cli.commands if cli else [])
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=False, commands=cli.commands, **facts)


if __name__ == "__main__":
    main()
