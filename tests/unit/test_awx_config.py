"""AWX's configuration as code (roles/awx_config, inventories/prod/awx.example.yml) checked against the collection
itself, without an AWX: every job template runs a playbook that exists, every survey asks for what its role's argument
spec takes (type and choices), no secret is in a survey or an extra variable, and every schedule's first runs are the
ones docs/awx.md states."""
import copy
import os
import re

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.parsing.yaml.loader import AnsibleLoader
from dateutil import rrule, tz

from ansible_collections.nfamily.ops.plugins.filter.awx_survey import awx_survey

COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = re.compile(r"password|secret|_token$|^token$|_key$|^key$", re.I)
# A survey answer arrives as a string, a number or a list; the role's type must take it.
COMPATIBLE = {"text": {"str", "path"}, "integer": {"int"}, "float": {"float"}, "multiplechoice": {"str", "bool"},
              "multiselect": {"list"}}
# The runbooks that replace data or stop services, each launched against production only through its approval workflow.
APPROVED = {"db_restore.yml", "db_pitr.yml", "db_pitr_enable.yml", "migration_rollback.yml", "rotate_jwt.yml",
            "revoke_devices.yml", "service_recovery.yml", "deploy.yml"}


def load(*path):
    with open(os.path.join(COLLECTION, *path), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def role_options(role):
    return load("roles", role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]


@pytest.fixture(scope="module")
def config():
    return load("inventories", "prod", "awx.example.yml")


def surveys(config, options_of=role_options):
    return dict((r["name"], awx_survey(options_of(r["role"]), r.get("survey", []), name=r["name"])) for r in config["awx_runbooks"])


def test_every_playbook_has_a_job_template_and_every_job_template_a_playbook(config):
    playbooks = sorted(p for p in os.listdir(os.path.join(COLLECTION, "playbooks")) if p.endswith(".yml") and p != "awx_configure.yml")
    assert sorted(r["playbook"] for r in config["awx_runbooks"]) == playbooks
    for runbook in config["awx_runbooks"]:
        with open(os.path.join(COLLECTION, "playbooks", runbook["playbook"]), encoding="utf-8") as handle:
            assert "nfamily.ops.%s" % runbook["role"] in handle.read(), "%s does not run role %s" % (runbook["playbook"], runbook["role"])


def test_every_survey_question_is_an_option_of_its_role_with_a_compatible_type_and_the_same_choices(config):
    for name, survey in surveys(config).items():
        runbook = [r for r in config["awx_runbooks"] if r["name"] == name][0]
        options = role_options(runbook["role"])
        for question in survey["spec"]:
            option = options[question["variable"]]
            kind = option.get("type", "str")
            assert kind in COMPATIBLE[question["type"]], (name, question["variable"], kind, question["type"])
            if option.get("choices"):
                assert question["choices"] == [str(c) for c in option["choices"]], (name, question["variable"])
            if kind == "bool":
                assert question["choices"] == ["true", "false"]
            if "default" in question and question.get("choices"):
                assert set(str(question["default"]).split("\n")) <= set(question["choices"])


def test_a_survey_that_does_not_follow_its_roles_argument_spec_fails(config):
    """What the suite does when a role's argument spec changes under a survey: renamed, retyped, choices changed."""
    def changed(edit):
        def options_of(role):
            options = copy.deepcopy(role_options(role))
            edit(role, options)
            return options
        return options_of

    def rename(role, options):
        if role == "restore":
            options["restore_from"] = options.pop("restore_source")

    def retype(role, options):
        if role == "backup":
            options["backup_keep_count"] = {"type": "dict", "description": "now a dict"}

    def narrow(role, options):
        if role == "rotate_jwt":
            options["rotate_jwt_mode"]["choices"] = ["forced", "compromise"]  # the default "scheduled" is no choice now

    with pytest.raises(AnsibleFilterError, match="restore_source is not an option of the role's argument spec"):
        surveys(config, changed(rename))
    with pytest.raises(AnsibleFilterError, match="backup_keep_count is of type dict, which a survey cannot give"):
        surveys(config, changed(retype))
    with pytest.raises(AnsibleFilterError, match="rotate_jwt_mode: default scheduled is not one of the role's choices"):
        surveys(config, changed(narrow))


def test_no_secret_in_a_survey_or_an_extra_variable(config):
    for name, survey in surveys(config).items():
        for question in survey["spec"]:
            assert not SECRET.search(question["variable"]), (name, question["variable"])
    with pytest.raises(AnsibleFilterError, match="a secret"):
        awx_survey(role_options("deploy"), ["deploy_smoke_password"])

    def keys(value):
        if isinstance(value, dict):
            for key, item in value.items():
                yield key
                yield from keys(item)
        elif isinstance(value, list):
            for item in value:
                yield from keys(item)
    assert [k for k in keys(config) if SECRET.search(str(k))] == []
    with open(os.path.join(COLLECTION, "roles", "awx_config", "tasks", "main.yml"), encoding="utf-8") as handle:
        tasks = yaml.load(handle, Loader=AnsibleLoader)  # noqa: S506 - Ansible's loader, for its !unsafe
    extra_vars = [t[m].get("extra_vars", {}) for t in tasks for m in t if m.startswith("awx.awx.") and isinstance(t[m], dict)]
    assert [list(v) for v in extra_vars if v] == [["runbook_confirm"]]  # the workflow's confirmation, and nothing else


def first_runs():
    """docs/awx.md's schedule table: name -> its first three runs as written."""
    with open(os.path.join(COLLECTION, "docs", "awx.md"), encoding="utf-8") as handle:
        text = handle.read()
    table = text[text.index("| schedule | runbook |"):].split("\n\n")[0].splitlines()[2:]
    return dict((cells[0], [run.strip() for run in cells[3].split(",")])
                for cells in ([c.strip() for c in row.strip("|").split("|")] for row in table))


def occurrences(rule):
    return rrule.rrulestr(rule.replace(" RRULE:", "\nRRULE:"))


def test_every_schedule_parses_in_its_time_zone_and_its_first_runs_are_the_ones_the_docs_state(config):
    documented = first_runs()
    assert sorted(documented) == sorted(s["name"] for s in config["awx_schedules"])
    for schedule in config["awx_schedules"]:
        assert schedule["rrule"].startswith("DTSTART;TZID=%s:" % config["awx_time_zone"]), schedule["name"]
        assert schedule["runbook"] in [r["name"] for r in config["awx_runbooks"]]
        runs = [r.strftime("%Y-%m-%d %H:%M %Z") for r in occurrences(schedule["rrule"])[:3]]
        assert runs == documented[schedule["name"]], schedule["name"]


def test_no_daily_or_weekly_run_falls_in_the_hour_daylight_saving_time_skips_or_repeats(config):
    for schedule in config["awx_schedules"]:
        if "FREQ=HOURLY" in schedule["rrule"]:
            continue
        rule = occurrences(schedule["rrule"])
        for run in rule.between(rule[0], rule[0].replace(year=rule[0].year + 1), inc=True):
            assert tz.datetime_exists(run) and not tz.datetime_ambiguous(run), (schedule["name"], run)


def role_text(role):
    text = []
    for root, _dirs, files in os.walk(os.path.join(COLLECTION, "roles", role)):
        for name in files:
            if name.endswith(".yml"):
                with open(os.path.join(root, name), encoding="utf-8") as handle:
                    text.append(handle.read())
    return "\n".join(text)


def test_a_true_or_false_answer_is_read_as_a_bool_by_its_role(config):
    """AWX sends a multiple choice as a string, and "false" is a true string: every bool a survey asks for must be read
    with | bool, or given whole to a module option of type bool."""
    for runbook in config["awx_runbooks"]:
        options = role_options(runbook["role"])
        text = role_text(runbook["role"])
        for entry in runbook.get("survey", []):
            variable = entry["variable"] if isinstance(entry, dict) else entry
            if options[variable].get("type") != "bool":
                continue
            uses = re.findall(r"[^\n]*\b%s\b(?!=)[^\n]*" % variable, text)  # not its name in a message (name=value)
            loose = [u for u in uses if not re.search(r"\b%s\s*\|\s*bool\b" % variable, u)
                     and not re.match(r"\s*[a-z_]+:\s*\"\{\{\s*%s\s*\}\}\"\s*$" % variable, u) and not u.strip().startswith(variable + ":")]
            assert not loose, "%s reads %s without | bool: %s" % (runbook["role"], variable, loose)


def test_a_workflows_confirmation_names_the_runbook_its_playbook_runs(config):
    for runbook in [r for r in config["awx_runbooks"] if r.get("approval")]:
        stem = runbook["playbook"][:-len(".yml")]
        assert re.search(r"runbook_name: %s\s*$" % stem, role_text(runbook["role"]), re.M), runbook["name"]


def test_a_preview_schedule_runs_the_preview_of_an_approved_runbook(config):
    approved = [r["name"] for r in config["awx_runbooks"] if r.get("approval")]
    for schedule in config["awx_schedules"]:
        if schedule.get("preview"):
            assert schedule["runbook"] in approved, schedule["name"]


def test_runbooks_that_replace_data_or_stop_services_have_an_approval_workflow(config):
    assert set(r["playbook"] for r in config["awx_runbooks"] if r.get("approval")) == APPROVED
    destructive = set()
    for role in os.listdir(os.path.join(COLLECTION, "roles")):
        tasks = os.path.join(COLLECTION, "roles", role, "tasks")
        for name in os.listdir(tasks) if os.path.isdir(tasks) else []:
            with open(os.path.join(tasks, name), encoding="utf-8") as handle:
                if re.search(r"runbook_destructive: (true|\"\{\{)", handle.read()):
                    destructive.add(role)
    destructive.discard("runbook")
    approved = set(r["role"] for r in config["awx_runbooks"] if r.get("approval"))
    # triage and storage_recovery replace nothing unless asked to (disruptive triage, a confirmed prune), which their
    # surveys do not offer
    assert destructive - approved == {"triage", "storage_recovery"}
    for runbook in config["awx_runbooks"]:
        if runbook["role"] in ("triage", "storage_recovery"):
            assert not set(runbook.get("survey", [])) & {"triage_allow_disruptive", "storage_recovery_prune_confirm"}


def test_the_execution_environment_holds_the_collections_galaxy_yml_depends_on():
    ee = load("meta", "execution-environment.yml")
    assert ee["version"] == 3 and ee["dependencies"]["galaxy"] == "ee-galaxy-requirements.yml"
    collections = dict((c["name"], c["version"]) for c in load("meta", "ee-galaxy-requirements.yml")["collections"])
    assert collections == load("galaxy.yml")["dependencies"]
    used = set()
    for root, _dirs, files in os.walk(os.path.join(COLLECTION, "roles")):
        for name in files:
            if name.endswith(".yml"):
                with open(os.path.join(root, name), encoding="utf-8") as handle:
                    used.update(re.findall(r"^\s*-?\s*([a-z_]+\.[a-z_]+)\.[a-z_]+:\s*$", handle.read(), re.M))
    assert used - {"ansible.builtin", "nfamily.ops"} <= set(collections), "a role uses a collection the EE does not hold"
    with open(os.path.join(COLLECTION, "requirements-dev.txt"), encoding="utf-8") as handle:
        pins = dict(line.strip().split("==") for line in handle if "==" in line)
    for package in ("ansible_core", "ansible_runner"):
        name, version = ee["dependencies"][package]["package_pip"].split("==")
        assert pins[name] == version, "the EE's %s is not the one the suite tests with" % name


def test_the_credentials_inject_exactly_the_secrets_the_runbooks_read_from_the_controllers_environment():
    """Each NFAMILY_* variable a role or the prod inventory reads from the controller's environment is injected by one
    of awx_config's credential types, and each injected variable is read somewhere: a renamed variable on either side
    fails here, not in a 3 a.m. job."""
    read = set()
    for base in ("roles", os.path.join("inventories", "prod")):
        for directory, _dirs, names in os.walk(os.path.join(COLLECTION, base)):
            if os.sep + "awx_config" in directory:
                continue
            for name in names:
                if name.endswith(".yml"):
                    with open(os.path.join(directory, name), encoding="utf-8") as handle:
                        read.update(re.findall(r"lookup\('ansible\.builtin\.env', '(NFAMILY_[A-Z_]+)'", handle.read()))
    with open(os.path.join(COLLECTION, "roles", "awx_config", "tasks", "main.yml"), encoding="utf-8") as handle:
        tasks = list(AnsibleLoader(handle).get_single_data())
    injected = set()
    for task in tasks:
        if "awx.awx.credential_type" in task:
            injected.update(task["awx.awx.credential_type"]["injectors"]["env"])
    assert read == injected == {"NFAMILY_VERIFY_PASSWORD", "NFAMILY_OFFSITE_KEY", "NFAMILY_OFFSITE_ACCESS_KEY",
                                "NFAMILY_OFFSITE_SECRET_KEY"}
