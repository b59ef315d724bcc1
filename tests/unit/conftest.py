"""Helpers for unit tests of nfamily.ops modules: run a module's main() with arguments and a
scripted nself, and capture what it exits with; serve a local HTTP stand-in of a service."""
import http.server
import json
import threading

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


class FakeNself:
    """Stands in for AnsibleModule.run_command: answers by argv, records every call. An answer is
    (rc, stdout, stderr), a list of them given out in turn (the last one repeats), or a callable
    returning one (for side effects)."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, cmd, **kwargs):
        self.calls.append({"cmd": list(cmd), "kwargs": kwargs})
        key = " ".join(cmd[1:])
        if key not in self.answers:
            raise AssertionError("unexpected nself call: %s" % key)
        answer = self.answers[key]
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        return answer() if callable(answer) else answer


@pytest.fixture
def run_module(monkeypatch):
    def run(main, args, answers=None, binary="/usr/local/bin/nself"):
        fake = FakeNself(answers or {})
        monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, cmd, **kwargs: fake(cmd, **kwargs))
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: binary)

        def exit_json(self, **kwargs):
            kwargs.setdefault("failed", False)
            raise ModuleExit(kwargs)

        def fail_json(self, msg, **kwargs):
            kwargs.update(failed=True, msg=msg)
            raise ModuleExit(kwargs)

        monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
        monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
        with patch_module_args(args):
            with pytest.raises(ModuleExit) as caught:
                main()
        return caught.value.result, fake.calls

    return run


def status_json(*services):
    return json.dumps({"timestamp": "2026-03-15T10:00:00+00:00", "environment": "prod",
                       "services": [{"name": n, "status": s, "cpu": "0.50%", "memory": "25MiB / 7.6GiB"} for n, s in services]})


class JsonHandler(http.server.BaseHTTPRequestHandler):
    """The base of a local HTTP stand-in's handler: quiet, and send() answers with a JSON body."""

    def log_message(self, *args):
        pass

    def send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(handler):
    """Serve handler on a free local port in a daemon thread; returns (server, url). Call server.shutdown() when done."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]
