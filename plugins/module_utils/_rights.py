# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""What the runbooks need of the user they run as on the host: to read every env file of the cascade
(the secrets belong to the project's owner, mode 0600), to write the collection's state directory, and
to use the Docker daemon. Over SSH as an operator that is root through become; without it a runbook
must stop before its first change and say which right is missing, not read a half cascade."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import stat

from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.module_utils._disk import existing_parent

DOCKER_SOCKET = "/var/run/docker.sock"


def _owner_and_mode(path):
    info = os.stat(path)
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    return "%s, %04o" % (owner, stat.S_IMODE(info.st_mode))


def missing_rights(project_dir, env_name, state_dir, docker_socket=DOCKER_SOCKET):
    """What the user this runs as cannot do of what the runbooks do: read every env file, write the state
    directory, use the Docker daemon. None when it can do all of it."""
    missing = []
    if os.path.isdir(project_dir) and not os.access(project_dir, os.R_OK | os.X_OK):
        missing.append("enter %s (%s)" % (project_dir, _owner_and_mode(project_dir)))
    for name in nenv.cascade_files(env_name):
        path = os.path.join(project_dir, name)
        if os.path.exists(path) and not os.access(path, os.R_OK):
            missing.append("read %s (%s)" % (path, _owner_and_mode(path)))
    if state_dir:
        existing = existing_parent(state_dir)
        if not os.access(existing, os.W_OK | os.X_OK):
            missing.append("write %s (%s is %s)" % (state_dir, existing, _owner_and_mode(existing)))
    if os.path.exists(docker_socket) and not os.access(docker_socket, os.R_OK | os.W_OK):
        missing.append("use the Docker daemon (%s is %s)" % (docker_socket, _owner_and_mode(docker_socket)))
    if not missing:
        return None
    user = pwd.getpwuid(os.geteuid()).pw_name
    return ("%s cannot %s: the runbooks need root on the host. Run them with become (ansible_become: true, and sudo "
            "rights for %s; see docs/on-call.md)" % (user, ", ".join(missing), user))
