#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nself_service
short_description: Start, stop, restart or rebuild nself services and wait until they really are so
version_added: 0.1.0
description:
  - Brings named services of an nself project, or all of them, to a state and waits until C(nself status --json) shows
    it. nself's exit codes are never trusted (nself 0.9.9 exits 0 when a per-service stop or restart fails, 127 after
    a successful full restart, and 0 when C(start) missed its health threshold); the observed status decides.
  - Waiting ends early, with the service's last log lines, when a service that was started exits again (it is exited
    or dead on two polls in a row after the command, or V(restarting), Docker's restart policy between the exits of a
    crash loop, for 30 s), rather than after O(timeout). A V(restarting) or V(paused) service is not up, so
    V(started) restarts it.
  - V(started) starts only what is not up. For named services that have a container it uses C(nself restart <svc>)
    (nself has no per-service start), and C(nself start) when nothing of the project runs or, after those restarts, for
    named services that have no container. C(nself start) takes the whole stack down first when any container has
    exited (so it is refused then, before anything changes), and C(nself restart) deletes C(.env.runtime) and creates a
    missing container from C(.env) alone, so with empty secrets on a prod host.
  - V(stopped) stops only what runs. Without O(services) it runs C(nself stop), which removes the containers.
  - V(restarted) always restarts. Without O(services) it runs C(nself stop) then C(nself start), as nself's own docs
    recommend instead of the broken C(nself restart --all).
  - V(rebuilt) runs C(nself build), checks that C(docker-compose.yml) was rewritten (nself 0.9.9 exits 0 when it was
    not), then restarts the services as V(restarted) does.
  - V(reconfigured) applies changed env files without taking the stack down. It runs C(nself build) (checked as for
    V(rebuilt)), then C(nself start --skip-port-check), which writes C(.env.runtime) from the whole cascade and has
    compose recreate every container whose configuration changed. C(nself restart <svc>) cannot do this, because it runs
    C(compose restart), which keeps the container's old environment, and it deletes C(.env.runtime). Whether a named
    service really runs with the new values is for the caller to verify (for a signing key, M(nfamily.ops.auth_check)).
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
    details: Reads the status and reports which services would be started, stopped or restarted; runs nothing else.
  diff_mode:
    support: none
options:
  services:
    description: Services to act on, as named in C(docker-compose.yml). Empty means every service of the project.
    type: list
    elements: str
    default: []
  state:
    description: The state to reach.
    type: str
    choices: [started, stopped, restarted, rebuilt, reconfigured]
    required: true
  timeout:
    description: Seconds to wait for the services to reach the state.
    type: int
    default: 300
  wait_healthy:
    description: With every state but V(stopped), wait until the services are C(healthy), not only running.
    type: bool
    default: true
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Stop the services that use the database
  nfamily.ops.nself_service:
    project_dir: /opt/nself-family/backend
    services: [hasura, auth, api, scheduler]
    state: stopped

- name: Start them again and wait until healthy
  nfamily.ops.nself_service:
    project_dir: /opt/nself-family/backend
    services: [hasura, auth, api, scheduler]
    state: started
    timeout: 300
"""

RETURN = r"""
services:
  description: The observed status of each targeted service after the action.
  returned: always
  type: dict
  sample: {"auth": "healthy", "api": "healthy"}
acted_on:
  description: The services the module started, stopped or restarted (or would, in check mode).
  returned: always
  type: list
  elements: str
waited_s:
  description: Seconds spent waiting for the state.
  returned: always
  type: int
commands:
  description: Every nself command the module ran, with its exit code.
  returned: always
  type: list
  elements: dict
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils._nself import NselfCLI, NselfError, log_message, nself_argument_spec

UP = ("healthy",)
RUNNING = ("healthy", "starting", "unhealthy")
DOWN = ("stopped", "exited", "created", "dead")
# A service started and then seen in these states on two polls in a row exits on start; `restarting`
# is Docker's restart policy bringing it back between exits (a crash loop).
FELL_BACK = ("exited", "dead", "restarting")
POLL_S = 2
# A dependent may exit a few times while what it needs comes up (hasura while postgres recovers):
# `restarting` is a crash loop once it has lasted this long.
LOOP_S = 30


def observe(cli, targets):
    """{service: status} for the targets (every service when targets is empty); unknown names fail."""
    _document, services = cli.status()
    statuses = dict((s.get("name"), s.get("status")) for s in services)
    unknown = [t for t in targets if t not in statuses]
    if unknown:
        raise NselfError("%s not services of this project (known: %s); check the names"
                         % (", ".join(unknown), ", ".join(sorted(statuses))))
    return dict((name, statuses[name]) for name in (targets or statuses))


def wait_for(cli, targets, wanted, timeout):
    """Poll until every target's status is in wanted. Returns (statuses, seconds waited).

    When services are to run, one that is exited or dead on two polls in a row after nself started it
    has started and exited again (compose returns once the container has started), and one that has
    been `restarting` for LOOP_S is in a crash loop (Docker's restart policy): that fails then, with
    its last log lines, instead of after the whole timeout. A loop runs for a moment between its
    restarts (`starting` on a real host): only a status in wanted ends it."""
    started = time.time()
    fell_before = set()
    looping_since = {}
    while True:
        statuses = observe(cli, targets)
        if all(status in wanted for status in statuses.values()):
            return statuses, int(time.time() - started)
        fell = set(n for n, s in statuses.items() if s in FELL_BACK) if wanted is not DOWN else set()
        looping_since = dict((n, looping_since.get(n, time.time())) for n, s in statuses.items()
                             if s == "restarting" or (n in looping_since and s not in wanted))
        fell = set(n for n in fell if n not in looping_since or time.time() - looping_since[n] >= LOOP_S)
        if fell & fell_before:
            names = sorted(fell & fell_before)
            looping = [n for n in names if statuses[n] == "restarting"]
            raise NselfError("%s exited again right after it was started%s; its log ends: %s. Look at `nself logs <service>`"
                             % (", ".join(names), " (Docker keeps restarting %s: a crash loop)" % ", ".join(looping) if looping else "",
                                log_tail(cli, names)))
        fell_before = fell
        if time.time() - started >= timeout:
            late = dict((n, s) for n, s in statuses.items() if s not in wanted)
            raise NselfError("after %d s these services are not %s: %s. Look at `nself logs <service>` and "
                             "`nself doctor`" % (timeout, "/".join(wanted), ", ".join("%s=%s" % i for i in sorted(late.items()))))
        time.sleep(POLL_S)


def log_tail(cli, services, lines=4):
    """The last lines services logged (nself's prefix dropped), for a failure message."""
    tails = []
    for service in services:
        result = cli.run(["logs", service, "--tail", str(lines)])
        said = [log_message(line) for line in result.stdout.splitlines() if line.strip()]
        tails.append("%s: %s" % (service, " | ".join(said[-lines:]) or "nothing"))
    return "; ".join(tails)


def plan(state, targets, statuses, wait_healthy):
    """(services to act on, nself argv lists) that bring statuses to state."""
    ready = UP if wait_healthy else RUNNING
    if state == "stopped":
        acting = [n for n, s in statuses.items() if s not in DOWN]
        if not acting:
            return [], []
        return acting, [["stop"] + (acting if targets else [])]
    if state == "started":
        acting = [n for n, s in statuses.items() if s not in ready and s != "starting"]
        if not acting:
            return [], []
        if all(s in DOWN for s in statuses.values()) and not targets:
            return acting, [["start"]]
        return acting, restart_or_create(acting, statuses)
    acting = list(statuses)
    if state == "reconfigured":
        return acting, [["build"], ["start", "--skip-port-check"]]
    build = [["build"]] if state == "rebuilt" else []
    if targets:
        return acting, build + restart_or_create(acting, statuses)
    return acting, build + [["stop"], ["start"]]


def restart_or_create(services, statuses):
    """`nself restart` for services that have a container; `nself start` for those that have none.

    `nself restart` deletes .env.runtime, and for a service without a container falls back to
    `compose up -d`, which then creates it from `.env` alone: on a prod host, with empty secrets.
    `nself start` writes .env.runtime from the whole cascade first (and, run after the restart, finds
    no exited container, so it takes nothing down)."""
    present = [n for n in services if statuses[n] != "stopped"]
    return ([["restart"] + present] if present else []) + ([["start"]] if len(present) < len(services) else [])


def refuse_a_start_that_takes_the_stack_down(cli, missing, targets):
    """`nself start` first takes the whole stack down when any container has exited or is only created."""
    _document, services = cli.status()
    exited = [s.get("name") for s in services if s.get("name") not in targets and s.get("status") in ("exited", "created")]
    if exited:
        raise NselfError("%s %s no container, and `nself start` (the only way to create one with the secrets of the env "
                         "cascade) would first take the whole stack down because %s %s exited; bring %s back first"
                         % (", ".join(missing), "have" if len(missing) > 1 else "has", ", ".join(exited),
                            "have" if len(exited) > 1 else "has", ", ".join(exited)))


def run_build(cli, project_dir):
    compose = os.path.join(project_dir, "docker-compose.yml")
    before = os.path.getmtime(compose) if os.path.exists(compose) else 0
    result = cli.run(["build"])
    after = os.path.getmtime(compose) if os.path.exists(compose) else 0
    if result.rc != 0 or after <= before:
        raise NselfError("`nself build` did not rewrite docker-compose.yml (rc %d): %s. Run `nself build` by hand "
                         "to see why" % (result.rc, (result.stderr or result.stdout)[-400:]))


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(
        services=dict(type="list", elements="str", default=[]),
        state=dict(type="str", required=True, choices=["started", "stopped", "restarted", "rebuilt", "reconfigured"]),
        timeout=dict(type="int", default=300),
        wait_healthy=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    cli = None
    try:
        cli = NselfCLI(module, params["project_dir"], params["nself_bin"], params["environment"])
        targets = list(dict.fromkeys(params["services"]))
        statuses = observe(cli, targets)
        acting, commands = plan(params["state"], targets, statuses, params["wait_healthy"])
        if targets and ["start"] in commands:
            refuse_a_start_that_takes_the_stack_down(cli, [n for n in acting if statuses[n] == "stopped"], targets)
        if module.check_mode or not commands:
            module.exit_json(changed=bool(acting), services=statuses, acted_on=acting, waited_s=0, commands=cli.commands)
        for argv in commands:
            if argv == ["build"]:
                run_build(cli, params["project_dir"])
            else:
                cli.run(argv)  # the exit code says nothing reliable; the status below does
        wanted = DOWN if params["state"] == "stopped" else (UP if params["wait_healthy"] else RUNNING)
        statuses, waited = wait_for(cli, targets, wanted, params["timeout"])
    except NselfError as exc:
        module.fail_json(msg=str(exc), commands=cli.commands if cli else [])
    module.exit_json(changed=True, services=statuses, acted_on=acting, waited_s=waited, commands=cli.commands)


if __name__ == "__main__":
    main()
