# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test harness only: containers.podman's connection with pipelining, for the Molecule test suites.

A production host is reached over SSH with pipelining on (ansible.cfg), so a module arrives on
python3's stdin in one exec. containers.podman.podman never pipelines: every task costs a mkdir, a
copy, a chmod and a cleanup, four `podman exec` in all. Here a module with stdin runs in one
`podman exec -i`, the way it runs on a real host, and the suites spend their time on the runbooks.
"""
from __future__ import annotations

DOCUMENTATION = """
name: podman_pipelined
short_description: Run tasks in a podman container, with pipelining (test harness)
description:
  - containers.podman.podman with pipelining, for the Molecule test suites only.
author: nfamily.ops developers
options:
  remote_addr:
    description: The container to run in.
    default: inventory_hostname
    vars:
      - name: ansible_host
      - name: inventory_hostname
  remote_user:
    description: The user to run as in the container.
    vars:
      - name: ansible_user
  podman_extra_args:
    description: Extra arguments to podman.
    default: ''
    vars:
      - name: ansible_podman_extra_args
  podman_executable:
    description: The podman executable.
    default: podman
    vars:
      - name: ansible_podman_executable
  pipelining:
    description: Send modules on stdin instead of copying them in.
    type: boolean
    default: true
    vars:
      - name: ansible_pipelining
"""

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection


class Connection(PodmanConnection):
    transport = "podman_pipelined"
    has_pipelining = True

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        podman_args = ["exec", "-i"] if in_data is not None else ["exec"]
        if self.user:
            podman_args.extend(("--user", self.user))
        return self._podman(podman_args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)
