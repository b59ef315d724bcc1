# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""The nFamily services as a client on the managed host reaches them: JSON over HTTP, a Bearer token,
retries while a service does not answer or answers 5xx, and never a redirect followed (it would carry
the token or the password elsewhere). Login and logout as the auth service has them
(nfamily-backend.md §3)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

RETRY_S = 1


class Client(object):
    def __init__(self, timeout, validate_certs=True):
        self.validate_certs = validate_certs
        self.deadline = time.time() + timeout

    def request(self, method, url, body=None, token=None, data=None, headers=None, retry=True):
        """(status, parsed JSON or None). body is sent as JSON; data (bytes) as it is, with headers. Retried
        while the service does not answer or answers 5xx, unless retry is false (a write that must not repeat)."""
        sent = {"Accept": "application/json"}
        if body is not None:
            sent["Content-Type"] = "application/json"
            data = json.dumps(body)
        sent.update(headers or {})
        if token:
            sent["Authorization"] = "Bearer " + token
        while True:
            try:
                response = open_url(url, method=method, data=data, headers=sent, timeout=10,
                                    validate_certs=self.validate_certs, follow_redirects="none")
                status, raw = response.getcode(), response.read()
            except HTTPError as exc:
                status, raw = exc.code, exc.read()
            except (URLError, IOError, OSError) as exc:
                status, raw = None, str(exc).encode()
            if retry and (status is None or status >= 500) and time.time() < self.deadline:
                time.sleep(RETRY_S)
                continue
            try:
                return status, json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                return status, None


class Checks(object):
    """The named checks of a verification, each with its outcome, status and detail, in order."""

    def __init__(self):
        self.items = []

    def add(self, name, ok, status, detail):
        self.items.append({"name": name, "ok": bool(ok), "status": status, "detail": detail})
        return ok

    def failed(self):
        return [c for c in self.items if not c["ok"]]


def login(client, auth_url, email, password):
    """(status, access token or None, the error code auth answered or None)."""
    status, document = client.request("POST", auth_url.rstrip("/") + "/auth/login", body={"email": email, "password": password})
    token = ((((document or {}).get("data") or {}).get("tokens")) or {}).get("access_token")
    return status, token, ((document or {}).get("error") or {}).get("code")


def graphql_verdict(status, document):
    """(accepted, detail) of a hasura answer: data without errors is acceptance."""
    if status != 200 or not isinstance(document, dict):
        return False, "HTTP %s" % status
    if document.get("errors"):
        error = document["errors"][0]
        return False, "%s: %s" % ((error.get("extensions") or {}).get("code"), error.get("message"))
    return "data" in document, "data"


def logout(client, auth_url, token):
    """Revoke the session's refresh tokens, so that a check leaves no live credential behind."""
    client.request("POST", auth_url.rstrip("/") + "/auth/logout", body={}, token=token)
