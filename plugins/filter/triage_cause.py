# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: triage_cause
short_description: Name the root cause of an API outage from the evidence triage collected
version_added: 0.1.0
description:
  - Applies the API outage runbook's resolution table to one host's evidence and returns the cause, the services it
    concerns, the evidence lines that support it and the table's action.
  - "Causes, in the order they are checked: V(database_down), V(connection_pool_exhausted), V(port_conflict) (a
    service is down and a process outside the stack holds one of its published ports), V(out_of_memory),
    V(nginx_misconfigured) (nginx down with a config error in its log), V(crash_loop) (Docker keeps restarting a
    service that exits on every start), V(service_crashed), V(service_unhealthy),
    V(nginx_misconfigured) (a route through nginx fails while the services are healthy), V(dns_failure), V(unknown)
    (an endpoint fails for no reason above), V(healthy)."
options:
  _input:
    description:
      - The evidence - C(services) (nself_info's list), C(database) (nself_info's database facts), C(logs) (service name
        to nself_logs entries), C(routes) and C(endpoints) (lists of C({name, status, ok})), C(dns) (C({domain, resolved, error})),
        C(port_holders) (nself_info's), C(parse_warnings) (nself_info's; added to the evidence lines whatever the cause).
    type: dict
    required: true
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Name the cause
  ansible.builtin.set_fact:
    triage_result: "{{ {'services': [{'name': 'auth', 'status': 'exited'}]} | nfamily.ops.triage_cause }}"
  # => cause service_crashed, services [auth], action restart, description "nself restart auth"
"""

RETURN = r"""
_value:
  description: C(cause), C(services), C(evidence) (list of lines), C(action) (none, restart, full_restart, rebuild_nginx,
    manual), C(disruptive) and C(description).
  type: dict
"""

from ansible_collections.nfamily.ops.plugins.module_utils._triage import classify


class FilterModule(object):
    def filters(self):
        return {"triage_cause": classify}
