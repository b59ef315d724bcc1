# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""nfamily.ops.runbook_report: the run's JSON and Markdown reports, written on the controller by the
action itself. The file, stat and copy modules it replaces cost a module build and a Python start
each on the controller, for every run."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.action import ActionBase

ARGUMENT_SPEC = {
    "report_dir": {"type": "path", "required": True},
    "host": {"type": "str", "required": True},
    "record": {"type": "dict", "required": True},
    "details": {"type": "dict", "default": {}},
}


def markdown(host, record, details):
    """The report a person reads: the record's fields as a table, then each section of details as a list."""
    rows = [
        ("run", record.get("run_id")),
        ("who", " / ".join(str(value) for value in (record.get("who") or {}).values() if value)),
        ("started", record.get("started_at")),
        ("ended", "%s (%s s)" % (record.get("ended_at"), record.get("duration_s"))),
        ("changed steps", ", ".join(record.get("changed_steps") or []) or "none"),
        ("artifacts", ", ".join(record.get("artifacts") or []) or "none"),
    ]
    abandoned = record.get("abandoned") or {}
    if abandoned:
        rows.append(("abandoned", "run %s (steps done: %s)" % (abandoned.get("run_id"), ", ".join(abandoned.get("done") or []) or "none")))
    if record.get("summary"):
        rows.append(("summary", record["summary"]))
    lines = ["# %s on %s: %s" % (record.get("runbook"), host, record.get("result")), "", "| field | value |", "|---|---|"]
    lines += ["| %s | %s |" % row for row in rows]
    for title, items in details.items():
        lines += ["", "## %s" % title, ""] + ["- %s" % item for item in items]
    return "\n".join(lines) + "\n"


def write_private(path, text):
    """Write text to path atomically, readable by its owner only."""
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True  # reports are the run's artifacts on the controller: a preview writes them too
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        record, details = args["record"], args["details"]
        run_dir = os.path.join(args["report_dir"], str(record.get("run_id") or "unknown-run"))
        base = os.path.join(run_dir, args["host"])
        try:
            if not os.path.isdir(run_dir):
                os.makedirs(run_dir, mode=0o700, exist_ok=True)
            os.chmod(run_dir, 0o700)
            write_private(base + ".json", json.dumps(dict(record, details=details), indent=4, sort_keys=True) + "\n")
            write_private(base + ".md", markdown(args["host"], record, details))
        except (IOError, OSError) as error:
            result.update(failed=True, msg="cannot write the run's reports in %s: %s" % (run_dir, to_native(error)))
            return result
        result.update(changed=False, paths=[base + ".json", base + ".md"])  # run artifacts, not managed state
        return result
