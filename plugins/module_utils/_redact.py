# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""Keeping secrets out of what the collection writes or returns (run records, checkpoints, reports,
log lines and doctor findings in results): by key name, and by the shape of the value whatever its
key, since a log line or a URL does not say that it carries a password."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

SECRET_KEY_RE = re.compile(r"pass(word)?|secret|token|credential|private|(^|_)key($|_)|api_?key|dsn|auth", re.I)
REDACTED = "[redacted]"
# (pattern, replacement): a URL's password, a JWT, an Authorization header's value, an env line or
# JSON member whose name says secret.
SECRET_VALUE_RES = (
    (re.compile(r"\b([a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@", re.I), r"\1" + REDACTED + "@"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\b(Bearer|Basic)(\s+)[A-Za-z0-9._~+/-]{8,}=*", re.I), r"\1\2" + REDACTED),
    (re.compile(r"\b([A-Za-z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|_KEY)[A-Za-z0-9_]*=)(\"[^\"]*\"|'[^']*'|[^\s,;]+)", re.I),
     r"\1" + REDACTED),
    (re.compile(r"(\"[A-Za-z0-9_]*(?:password|passwd|secret|token|_key)[A-Za-z0-9_]*\"\s*:\s*)\"[^\"]*\"", re.I),
     r'\1"' + REDACTED + '"'),
)


def scrub(text):
    """text with every secret-shaped value replaced."""
    for pattern, replacement in SECRET_VALUE_RES:
        text = pattern.sub(replacement, text)
    return text


def redact(value, by_key=True):
    """A copy of value with every secret-shaped string scrubbed and, by_key, every secret-looking key's
    value replaced, at any depth. Without by_key for text keyed by titles ("Auth check": [lines])."""
    if isinstance(value, dict):
        return dict((k, REDACTED if by_key and SECRET_KEY_RE.search(str(k)) else redact(v, by_key)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [redact(v, by_key) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value
