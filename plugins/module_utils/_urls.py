# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""Where a module may send a secret: over https://, or over plain http:// only to this host's
loopback address (the services' published ports), never across the network unencrypted."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
from urllib.parse import urlparse


def is_loopback(hostname):
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def plain_http_problem(url, carried):
    """Why url may not carry what `carried` names (the password, the keys...), or None."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return "must be an http:// or https:// URL (got %r)" % url
    if parsed.scheme == "http" and not is_loopback(parsed.hostname):
        return ("is plain http:// to %s: %s would cross the network unencrypted; use https:// or the loopback address "
                "the host reaches the service on" % (parsed.hostname, carried))
    return None
