"""host_libraries_info: what the host's Python lacks, and how it gets it, for the host_prepare role."""
import importlib
import sys

from ansible_collections.nfamily.ops.plugins.module_utils import _host_requirements as hostreq
from ansible_collections.nfamily.ops.plugins.modules import host_libraries_info


def test_a_python_with_every_library_lacks_nothing(run_module):
    result, calls = run_module(host_libraries_info.main, {})
    assert result["missing"] == [] and result["install"]["packages"] == [] and calls == []
    assert result["python"] == sys.executable and result["changed"] is False


def test_a_library_that_does_not_import_is_named_with_its_packages(run_module, monkeypatch):
    real = importlib.import_module

    def broken(name, *args):
        if name == "boto3":
            raise ImportError("No module named 'botocore'")  # installed, but not whole
        return real(name, *args)
    monkeypatch.setattr(importlib, "import_module", broken)
    result, _calls = run_module(host_libraries_info.main, {"libraries": ["boto3", "yaml"]})
    assert result["missing"] == ["boto3"]
    assert result["install"] == hostreq.install_plan(["boto3"])
    assert result["install"]["packages"] in (["python3-boto3"], ["boto3"])
