# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""Free space of the filesystem a path is (or will be) on."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

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
