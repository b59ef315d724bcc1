#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nself_traffic_info
short_description: Requests and server errors an nself project's nginx really served, in windows of time
version_added: 0.1.0
description:
  - Reads nginx's access log as nself's nginx container writes it (to its stdout, nginx's combined format) with
    C(docker logs --timestamps --since --until <PROJECT_NAME>_nginx), and counts, per window, the requests, the server
    errors (5xx), their rate, the requests by status class and the paths with the most server errors. The containers'
    own health checks (O(excluded_paths)) are not the family's traffic and are not counted.
  - With windows named V(before) and V(after) (a deploy's), C(verdict) says whether the after window fires the
    deployment checklist's criterion - an error rate above O(max_error_rate) - with the before window as the comparison;
    fewer than O(min_requests) requests after is too little traffic to judge, which the verdict says rather than firing.
  - Only reads.
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
  windows:
    description: The windows to count; C(start) and C(end) are UTC times (C(2026-12-01T03:00:00Z)); C(end) is excluded.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The window's name in the result (V(before) and V(after) give a verdict).
        type: str
        required: true
      start:
        description: The window's first moment.
        type: str
        required: true
      end:
        description: The moment after the window's last.
        type: str
        required: true
  service:
    description: The nginx service of the project (its container is C(<PROJECT_NAME>_<service>)).
    type: str
    default: nginx
  excluded_paths:
    description: Request paths that are not the family's traffic (health checks).
    type: list
    elements: str
    default: [/health]
  max_error_rate:
    description: The share of server errors above which the after window fires the criterion (the checklist's 5 %).
    type: float
    default: 0.05
  min_requests:
    description: Requests the after window needs before its error rate is judged.
    type: int
    default: 20
  before:
    description:
      - The before window as an earlier call returned it (its C(windows.before)), for a verdict on an after window read
        later. A deploy needs it, as C(nself stop) removes the nginx container and its log with it, so the traffic before
        the deploy is counted before the restart. A window named V(before) in O(windows) wins.
    type: dict
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Compare the 15 minutes after the deploy with the 15 before it
  nfamily.ops.nself_traffic_info:
    project_dir: /opt/nself-family/backend
    windows:
      - {name: before, start: "2026-12-01T02:45:00Z", end: "2026-12-01T03:00:00Z"}
      - {name: after, start: "2026-12-01T03:02:00Z", end: "2026-12-01T03:17:00Z"}
  register: traffic

- name: Roll back when the error rate fired
  ansible.builtin.debug:
    msg: "{{ traffic.verdict.reason }}"
  when: traffic.verdict.fired
"""

RETURN = r"""
windows:
  description: Per window name, its counts.
  returned: always
  type: dict
  sample: {"after": {"start": "2026-12-01T03:02:00+00:00", "end": "2026-12-01T03:17:00+00:00", "requests": 412,
           "server_errors": 3, "error_rate": 0.0073, "by_status": {"2xx": 380, "3xx": 20, "4xx": 9, "5xx": 3},
           "top_error_paths": [{"path": "/api/media/upload", "count": 3}]}}
verdict:
  description: With windows named V(before) (or O(before)) and V(after), whether the after window fires the error-rate criterion and why.
  returned: when both windows are given
  type: dict
  sample: {"fired": false, "reason": "error rate 0.7 % of 412 requests within 5.0 % (0.4 % of 390 requests before)"}
container:
  description: The container whose log was read.
  returned: always
  type: str
"""

import datetime

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _access_log as al
from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.module_utils._nself import nself_argument_spec


def utc(text, what):
    try:
        whole, _dot, fraction = text.strip().rstrip("Z").partition(".")
        moment = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise ValueError("%s %r is not a UTC time such as 2026-12-01T03:00:00Z" % (what, text))
    return moment.replace(microsecond=int((fraction + "000000")[:6]) if fraction.isdigit() else 0, tzinfo=datetime.timezone.utc)


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(
        windows=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True), start=dict(type="str", required=True), end=dict(type="str", required=True))),
        service=dict(type="str", default="nginx"),
        excluded_paths=dict(type="list", elements="str", default=["/health"]),
        max_error_rate=dict(type="float", default=0.05),
        min_requests=dict(type="int", default=20),
        before=dict(type="dict"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        windows = [(w["name"], utc(w["start"], "start of " + w["name"]), utc(w["end"], "end of " + w["name"])) for w in params["windows"]]
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    empty = [name for name, start, end in windows if end <= start]
    if empty or not windows:
        module.fail_json(msg="every window needs an end after its start (%s)" % ", ".join(empty or ["no window given"]))
    if not 0 <= params["max_error_rate"] < 1 or params["min_requests"] < 1:
        module.fail_json(msg="max_error_rate must be from 0 to below 1 and min_requests at least 1")
    env_name = params["environment"] or nenv.detect_environment(params["project_dir"])
    merged, _files = nenv.load_cascade(params["project_dir"], env_name)
    container = nenv.container_name(nenv.project_name(params["project_dir"], merged), params["service"])
    docker = module.get_bin_path("docker", required=True)
    since = min(start for _n, start, _e in windows).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = (max(end for _n, _s, end in windows) + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rc, out, err = module.run_command([docker, "logs", "--timestamps", "--since", since, "--until", until, container])
    if rc != 0:
        detail = (err or out).strip().splitlines()
        module.fail_json(msg="`docker logs %s` failed (rc %d): %s; is the project's nginx container %s?"
                         % (container, rc, detail[-1] if detail else "no output", container))
    lines = out.splitlines()
    result = dict(container=container, windows=dict(
        (name, al.summarize(lines, start, end, tuple(params["excluded_paths"]))) for name, start, end in windows))
    before = result["windows"].get("before") or params["before"]
    if before and "after" in result["windows"]:
        if not all(key in before for key in ("requests", "error_rate")):
            module.fail_json(msg="before needs the requests and error_rate of a window this module returned")
        fired, reason = al.judge(before, result["windows"]["after"], params["max_error_rate"], params["min_requests"])
        result["verdict"] = {"fired": fired, "reason": reason}
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
