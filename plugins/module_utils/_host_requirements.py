# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""The Python libraries beyond the standard library that the collection's modules import on the
managed host, and how a host gets them. One list: `nself_preflight` checks it before a runbook's
first change, the README's host requirements table shows it, and a unit test fails when a module
starts importing a library this list does not name."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import os
import sys

# import name: (Debian/Ubuntu package, pip package). Which modules import each: the README's table,
# checked against the modules' source by tests/unit/test_host_requirements.py.
LIBRARIES = {
    "boto3": ("python3-boto3", "boto3"),
    "cryptography": ("python3-cryptography", "cryptography"),
    "yaml": ("python3-yaml", "PyYAML"),
}
# Imported by the modules but installed with a library above.
COMES_WITH = {"botocore": "boto3", "s3transfer": "boto3"}
SYSTEM_PYTHON_DIRS = ("/usr/bin", "/bin")


def missing_libraries(names):
    """The names of LIBRARIES (import names) this Python cannot import: each is imported, so a broken
    install (boto3 without botocore) counts as missing too."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # ImportError, or whatever a broken install raises
            missing.append(name)
    return missing


def _debian_like(os_release):
    try:
        with open(os_release) as handle:
            fields = dict(line.strip().split("=", 1) for line in handle if "=" in line)
    except (IOError, OSError):
        return False
    words = " ".join(fields.get(key, "").strip('"') for key in ("ID", "ID_LIKE")).split()
    return "debian" in words or "ubuntu" in words


def install_plan(names, executable=None, os_release="/etc/os-release"):
    """How the libraries get into this Python: {manager, packages, command}. The distribution's
    packages (apt) for the system Python of Debian or Ubuntu, pip into any other interpreter."""
    executable = executable or sys.executable
    if os.path.dirname(executable) in SYSTEM_PYTHON_DIRS and _debian_like(os_release):
        packages = [LIBRARIES[name][0] for name in names]
        command = "sudo apt-get install -y " + " ".join(packages)
        return dict(manager="apt", packages=packages, command=command if packages else "")
    packages = [LIBRARIES[name][1] for name in names]
    command = "%s -m pip install %s" % (executable, " ".join(packages))
    return dict(manager="pip", packages=packages, command=command if packages else "")


def describe_missing(missing, executable=None, os_release="/etc/os-release"):
    """One sentence naming the libraries this Python lacks (as missing_libraries found them) and how
    to install them."""
    executable = executable or sys.executable
    plan = install_plan(missing, executable, os_release)
    how = "`%s`" % plan["command"]
    if plan["manager"] == "apt":
        how += " (or run playbooks/host_prepare.yml)"
    return ("this host's Python (%s) lacks %s, which the runbook's modules import on the host: install %s with %s"
            % (executable, ", ".join("%s (%s)" % (name, LIBRARIES[name][0]) for name in missing),
               "it" if len(missing) == 1 else "them", how))
