# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""Free space of the filesystem a path is (or will be) on, and where a compose volume lives."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os


def existing_parent(path):
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def free_bytes(path):
    """Bytes an unprivileged writer may still use on the filesystem of path or its nearest existing parent."""
    stats = os.statvfs(existing_parent(path))
    return stats.f_bavail * stats.f_frsize


def mib(size):
    return "%d MiB" % (size // 1048576)


def usage(path):
    """{path, free_bytes, total_bytes, used_percent} of the filesystem holding path."""
    stats = os.statvfs(existing_parent(path))
    total, free = stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize
    return {"path": path, "free_bytes": free, "total_bytes": total,
            "used_percent": (total - free) * 100 // total if total else None}


class VolumeError(Exception):
    """A compose volume that cannot be located on the host."""


def volume_mountpoint(module, volume):
    """The host directory of a named volume (`docker volume inspect`), e.g. <PROJECT_NAME>_minio_data."""
    docker = module.get_bin_path("docker")
    if not docker:
        raise VolumeError("docker is not on PATH, so the volume %s cannot be located; give its host path" % volume)
    rc, out, err = module.run_command([docker, "volume", "inspect", volume])
    try:
        return json.loads(out)[0]["Mountpoint"]
    except (ValueError, IndexError, KeyError, TypeError):
        raise VolumeError("`docker volume inspect %s` failed (rc %d): %s; give the volume's host path"
                          % (volume, rc, (err or out).strip()[:300]))
