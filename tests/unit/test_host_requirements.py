"""What the modules import on the managed host, read from their source, against the one list of it
(plugins/module_utils/_host_requirements.py), the README's tables and the execution environment's
requirements: a module that starts importing a library nobody listed fails here."""
import ast
import os
import re
import sys

import pytest
import yaml

from ansible_collections.nfamily.ops.plugins.module_utils import _host_requirements as hostreq

COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE_UTILS_PREFIX = "ansible_collections.nfamily.ops.plugins.module_utils."


def imported_names(path):
    """Every module name an import statement in the file names (at any depth: lazy imports count)."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update("%s.%s" % (node.module, alias.name) for alias in node.names)
    return names


def third_party(path, seen=None):
    """The top-level names of the libraries beyond the standard library and ansible that the file
    imports, through the collection's module_utils too."""
    seen = set() if seen is None else seen
    found = set()
    for name in imported_names(path):
        if name.startswith(MODULE_UTILS_PREFIX):
            util = name[len(MODULE_UTILS_PREFIX):].split(".")[0]
            util_path = os.path.join(COLLECTION, "plugins", "module_utils", util + ".py")
            if util not in seen and os.path.exists(util_path):
                seen.add(util)
                found |= third_party(util_path, seen)
            continue
        top = name.split(".")[0]
        if top not in sys.stdlib_module_names and top not in ("ansible", "ansible_collections", "__future__"):
            found.add(top)
    return found


def plugin_files(kind):
    directory = os.path.join(COLLECTION, "plugins", kind)
    return sorted(os.path.join(directory, name) for name in os.listdir(directory)
                  if name.endswith(".py") and name != "__init__.py")


def module_libraries():
    """{module name: {library}} as the source says (a library that comes with another counts as that one)."""
    return dict((os.path.basename(path)[:-3], set(hostreq.COMES_WITH.get(lib, lib) for lib in third_party(path)))
                for path in plugin_files("modules"))


def readme_table(header):
    """The rows of the README's Markdown table whose header row starts with header, as cell lists."""
    with open(os.path.join(COLLECTION, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    start = text.index(header)
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[1:]  # without the rule under the header


def importers():
    """{library: {module}} as the modules' source says."""
    found = {}
    for module, libraries in module_libraries().items():
        for library in libraries:
            found.setdefault(library, set()).add(module)
    return found


def test_every_library_a_module_imports_is_listed():
    assert set(importers()) == set(hostreq.LIBRARIES), \
        "plugins/module_utils/_host_requirements.py LIBRARIES does not match the modules' imports"


def test_the_scan_sees_a_lazy_import_through_a_module_util():
    """db_wal_archive imports yaml only inside _pitr.override_text: the scan still finds it."""
    assert module_libraries()["db_wal_archive"] == {"yaml"}
    assert module_libraries()["runbook_lock"] == set()


def test_the_readme_library_table_is_the_list():
    rows = readme_table("| library | Debian/Ubuntu package | pip | imported by |")
    table = dict((row[0].strip("`"), (row[1].strip("`"), row[2].strip("`"), set(re.findall(r"`([a-z0-9_]+)`", row[3]))))
                 for row in rows)
    found = importers()
    assert table == dict((lib, (apt, pip, found[lib])) for lib, (apt, pip) in hostreq.LIBRARIES.items())


def test_each_playbook_row_names_the_libraries_its_roles_modules_import():
    rows = readme_table("| playbook | Python libraries on the host |")
    playbooks = sorted(name for name in os.listdir(os.path.join(COLLECTION, "playbooks")) if name.endswith(".yml"))
    described = {}
    for row in rows:
        for name in re.findall(r"`([a-z_]+\.yml)`", row[0]):
            described[name] = row[1]
    assert sorted(described) == playbooks, "every playbook has a row in the README's host requirements table"
    libraries = module_libraries()
    for playbook in playbooks:
        with open(os.path.join(COLLECTION, "playbooks", playbook), encoding="utf-8") as handle:
            roles = set(re.findall(r"nfamily\.ops\.([a-z_]+)", handle.read()))
        needed = set()
        for role in roles:
            tasks = os.path.join(COLLECTION, "roles", role, "tasks")
            for name in os.listdir(tasks) if os.path.isdir(tasks) else []:
                with open(os.path.join(tasks, name), encoding="utf-8") as handle:
                    for module in re.findall(r"nfamily\.ops\.([a-z_]+):", handle.read()):
                        needed |= libraries.get(module, set())
        missing = [lib for lib in needed if "`%s`" % lib not in described[playbook]]
        assert not missing, "the README's row for %s does not say when it needs %s" % (playbook, ", ".join(missing))


def test_the_controller_side_code_imports_nothing_beyond_ansible_core_and_the_ee_lists_nothing():
    controller = set()
    for kind in ("action", "filter"):
        for path in plugin_files(kind):
            controller |= third_party(path)
    assert controller == set()
    for name in ("ee-requirements.txt", "ee-bindep.txt"):
        with open(os.path.join(COLLECTION, "meta", name), encoding="utf-8") as handle:
            assert [line for line in handle if line.strip() and not line.startswith("#")] == [], name


def test_every_list_of_library_choices_is_the_list():
    """The roles' argument specs are static YAML: they must name the libraries LIBRARIES names."""
    listed = sorted(hostreq.LIBRARIES)
    specs = {}
    for role, option in (("runbook", "runbook_require_libraries"), ("host_prepare", "host_prepare_libraries")):
        with open(os.path.join(COLLECTION, "roles", role, "meta", "argument_specs.yml"), encoding="utf-8") as handle:
            for entry in yaml.safe_load(handle)["argument_specs"].values():
                if option in entry["options"]:
                    specs["%s %s" % (role, option)] = sorted(entry["options"][option]["choices"])
    assert specs == {"runbook runbook_require_libraries": listed, "host_prepare host_prepare_libraries": listed}
    with open(os.path.join(COLLECTION, "roles", "host_prepare", "defaults", "main.yml"), encoding="utf-8") as handle:
        assert sorted(yaml.safe_load(handle)["host_prepare_libraries"]) == listed  # a prepared host has them all


@pytest.mark.parametrize("executable,os_release,expected", [
    ("/usr/bin/python3", "ID=debian\n", "sudo apt-get install -y python3-boto3 python3-yaml"),
    ("/usr/bin/python3", 'ID=ubuntu\nID_LIKE="debian"\n', "sudo apt-get install -y python3-boto3 python3-yaml"),
    ("/usr/bin/python3", "ID=alpine\n", "/usr/bin/python3 -m pip install boto3 PyYAML"),
    ("/opt/venv/bin/python", "ID=debian\n", "/opt/venv/bin/python -m pip install boto3 PyYAML"),
])
def test_the_install_command_fits_the_interpreter_and_distribution(tmp_path, executable, os_release, expected):
    release = tmp_path / "os-release"
    release.write_text(os_release)
    assert hostreq.install_plan(["boto3", "yaml"], executable, str(release))["command"] == expected


def test_a_missing_library_is_named_with_its_package_and_command(tmp_path, monkeypatch):
    monkeypatch.setitem(hostreq.LIBRARIES, "nfamily_no_such_lib", ("python3-nfamily-no-such-lib", "nfamily-no-such-lib"))
    release = tmp_path / "os-release"
    release.write_text("ID=debian\n")
    assert hostreq.missing_libraries(["boto3", "yaml", "nfamily_no_such_lib"]) == ["nfamily_no_such_lib"]
    assert hostreq.describe_missing(["nfamily_no_such_lib"], "/usr/bin/python3", str(release)) == (
        "this host's Python (/usr/bin/python3) lacks nfamily_no_such_lib (python3-nfamily-no-such-lib), which the "
        "runbook's modules import on the host: install it with `sudo apt-get install -y python3-nfamily-no-such-lib` "
        "(or run playbooks/host_prepare.yml)")
    assert hostreq.describe_missing(["boto3", "nfamily_no_such_lib"], "/opt/venv/bin/python", str(release)) == (
        "this host's Python (/opt/venv/bin/python) lacks boto3 (python3-boto3), nfamily_no_such_lib "
        "(python3-nfamily-no-such-lib), which the runbook's modules import on the host: install them with "
        "`/opt/venv/bin/python -m pip install boto3 nfamily-no-such-lib`")


def test_nothing_missing_is_nothing_to_install():
    assert hostreq.install_plan([], "/usr/bin/python3")["packages"] == []
    assert hostreq.install_plan([], "/usr/bin/python3")["command"] == ""
