# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: awx_survey
short_description: An AWX job template survey built from a role's argument spec
version_added: 0.1.0
description:
  - Builds the C(survey_spec) of an AWX job template from the options of a role's C(meta/argument_specs.yml) entry point,
    so that the web form an operator fills in at 3 a.m. asks for what the role takes, with its types, choices and
    literal defaults. A question's type follows the option's - C(str) is C(text) (C(multiplechoice) with choices),
    C(int) C(integer), C(float) C(float), C(bool) a C(multiplechoice) of C(true)/C(false) (the answer is a string, so
    the role must read it with C(| bool)), and a C(list) with choices C(multiselect).
  - Refuses what a survey must not carry - an option the role does not have, a secret (C(no_log)) option (secrets come
    from AWX credentials), an option of a type a survey cannot give (C(dict), C(raw), a C(list) without choices, an
    C(int) with choices), and a question override whose default is not an answer of the question's type or not one of
    the option's choices.
positional: _input, variables
options:
  _input:
    description: The C(options) of the role's argument spec entry point.
    type: dict
    required: true
  variables:
    description:
      - The variables to ask for, in order; each a name, or a dict with C(variable) and question fields to override
        (C(question_name), C(default), C(required)).
    type: list
    elements: raw
    required: true
  name:
    description: The survey's name.
    type: str
    default: ""
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: The backup job template's survey
  ansible.builtin.set_fact:
    survey: >-
      {{ (lookup('ansible.builtin.file', 'roles/backup/meta/argument_specs.yml') | from_yaml).argument_specs.main.options
         | nfamily.ops.awx_survey(['backup_keep_count', 'backup_verify'], name='Backup') }}
"""

RETURN = r"""
_value:
  description: The survey spec, as AWX's C(survey_spec) takes it (name, description, spec).
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six import string_types

QUESTION_TYPES = {"str": "text", "path": "text", "int": "integer", "float": "float"}
# The Python type of each question type's answer (AWX sends a multiple choice as a string, a multiselect as a list).
ANSWER_TYPES = {"text": string_types, "integer": int, "float": (int, float), "multiplechoice": string_types}


def _description(option):
    text = option.get("description") or ""
    return " ".join(text if isinstance(text, list) else [text]).strip()


def _literal(value):
    """A default a survey can show: a value, never a template (its value is the inventory's, resolved at run time)."""
    return value is not None and not (isinstance(value, string_types) and "{{" in value)


def question(variable, option, override=None):
    """One survey question for variable (its argument spec option), with the override's fields."""
    kind = option.get("type", "str")
    choices = option.get("choices")
    if option.get("no_log"):
        raise AnsibleFilterError("%s is a secret (no_log): it comes from an AWX credential, never from a survey" % variable)
    if kind == "bool":
        qtype, choices = "multiplechoice", ["true", "false"]
    elif choices and kind == "str":
        qtype = "multiplechoice"
    elif choices and kind == "list":
        qtype = "multiselect"
    elif kind in QUESTION_TYPES:
        qtype = QUESTION_TYPES[kind]
    else:  # an int with choices would arrive as a string; a dict, a raw or a list without choices has no question
        raise AnsibleFilterError("%s is of type %s%s, which a survey cannot give" % (
            variable, kind, " without choices" if kind == "list" else " with choices" if choices else ""))
    spec = {"variable": variable, "question_name": _description(option).split(". ", 1)[0][:200] or variable,
            "question_description": _description(option), "type": qtype, "required": bool(option.get("required", False))}
    if choices:
        spec["choices"] = [str(c).lower() if isinstance(c, bool) else str(c) for c in choices]
    default = option.get("default")
    if _literal(default):
        spec["default"] = (str(default).lower() if isinstance(default, bool) else
                           "\n".join(str(d) for d in default) if isinstance(default, list) else default)
    for field, value in (override or {}).items():
        if field not in ("question_name", "question_description", "default", "required"):
            raise AnsibleFilterError("%s: a survey question override may set question_name, question_description, default or "
                                     "required, not %s" % (variable, field))
        spec[field] = value
    answer, wanted_type = spec.get("default"), ANSWER_TYPES.get(qtype)
    if "default" in spec and (isinstance(answer, bool) or (wanted_type and not isinstance(answer, wanted_type))):
        raise AnsibleFilterError("%s: default %r is not a %s answer" % (variable, answer, qtype))
    if "choices" in spec and "default" in spec and spec["default"] != "":
        wanted = spec["default"].split("\n") if qtype == "multiselect" else [str(spec["default"])]
        stray = [d for d in wanted if d not in spec["choices"]]
        if stray:
            raise AnsibleFilterError("%s: default %s is not one of the role's choices (%s)" % (variable, ", ".join(stray), ", ".join(spec["choices"])))
    return spec


def awx_survey(options, variables, name=""):
    if not isinstance(options, dict):
        raise AnsibleFilterError("awx_survey takes the options of a role's argument spec entry point, not %s" % type(options).__name__)
    questions = []
    for entry in variables:
        override = dict(entry) if isinstance(entry, dict) else {}
        variable = override.pop("variable", None) if override else entry
        if variable not in options:
            raise AnsibleFilterError("%s is not an option of the role's argument spec: the survey asks for something the role "
                                     "does not take (renamed or removed?)" % variable)
        questions.append(question(variable, options[variable], override))
    return {"name": name, "description": "", "spec": questions}


class FilterModule(object):
    def filters(self):
        return {"awx_survey": awx_survey}
