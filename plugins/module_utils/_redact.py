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
# An env or compose variable named like a secret (not a duration, time or count named after one).
_SECRET_NAME = r"[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|_KEY)(?:_[A-Z0-9]+)*(?<!_IN)(?<!_AT)(?<!_TTL)(?<!_AGE)(?<!_DAYS)"
# (pattern, replacement), in this order.
SECRET_VALUE_RES = (
    # a variable whose value is a JSON document (HASURA_GRAPHQL_JWT_SECRET={"type":"HS256","key":"..."}): all of it
    (re.compile(r"\b(%s\s*[=:]\s*)'?\{.*" % _SECRET_NAME), r"\1" + REDACTED),
    # NAME=value or NAME: value
    (re.compile(r"\b(%s(?:=|:[ \t]*))(?!\[redacted\])(\"(?:\\.|[^\"\\])*\"|'[^']*'|[^\s,;)\]}\"']+)" % _SECRET_NAME),
     r"\1" + REDACTED),
    # an HTTP header that carries a secret (X-Hasura-Admin-Secret: ..., Authorization: ...)
    (re.compile(r"(?i)\b((?:x-[a-z-]*(?:secret|token|key)|authorization|cookie)\s*:\s*)\S+(?:[ \t]+[A-Za-z0-9._~+/=-]{8,})?"),
     r"\1" + REDACTED),
    # a URL's password (user:password@host)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s@]+@"), r"\1" + REDACTED + "@"),
    # a JWT
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # a Bearer or Basic credential: token-shaped (it has a digit or punctuation), so prose stays
    (re.compile(r"\b(Bearer|Basic)(\s+)(?=[A-Za-z0-9._~+/-]*[0-9._~+/=-])[A-Za-z0-9._~+/-]{12,}=*"), r"\1\2" + REDACTED),
    # a JSON member or command-line option named like a secret
    (re.compile(r"(?i)(\"(?:[a-z0-9_]*_)?(?:password|passwd|secret|token|key)\"\s*:\s*)\"(?:\\.|[^\"\\])*\""), r'\1"' + REDACTED + '"'),
    (re.compile(r"(?i)(--?(?:password|passwd|secret|token)[= ])\S+"), r"\1" + REDACTED),
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
