#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nself_release
short_description: Read or check out a release (a git tag) of an nself project's checkout
version_added: 0.1.0
description:
  - Production runs the nself project from a clone of its repository and is deployed by checking a release tag out
    (C(git fetch --tags; git checkout <tag>), then C(nself build) and C(nself restart); C(nfamily-backend.md) §6). This
    module reads that checkout - the commit and tag running, changed and untracked files, what O(tag) is and which
    migrations it adds (with whether each has its down file) - and checks O(tag) out. Without O(tag), or in check mode,
    it only reads; a deployment runs it in check mode first, as its gates.
  - The deployment's gates come from what it returns in C(problems) - a missing tag, the tag already running, tracked
    files changed on the host, an added migration without its down file; all are listed at once.
  - A checkout is refused while C(problems) names anything but the tag already running, and is confirmed by the commit
    HEAD ends on, not by git's exit code alone. Checking out the running tag changes nothing.
  - git runs without a terminal or prompts (C(GIT_TERMINAL_PROMPT=0), ssh in batch mode unless C(GIT_SSH_COMMAND) is
    set), and as the checkout's owner (with C(runuser)) when the module runs as root and the checkout belongs to the
    deploy user - never as root in another user's checkout, whose hooks and config would then run as root.
  - A checkout never overwrites an ignored file the tag tracks (an env file, for example); git refuses and the run
    stops, naming it.
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
    details:
      - Reports what a checkout would do; fetches nothing and checks nothing out. A tag only the remote has (with
        O(fetch)) is looked up there with C(git ls-remote); its migrations are listed by the real run.
  diff_mode:
    support: none
options:
  tag:
    description: The release tag to check out (C(v0.9)). Without it the module only reads the checkout.
    type: str
  fetch:
    description: Fetch the remote's tags first (C(git fetch --tags <remote>)); not in check mode.
    type: bool
    default: false
  remote:
    description: The remote to fetch from.
    type: str
    default: origin
  tracking:
    description:
      - The migration scheme whose files are compared - V(schema_migrations) (nself's C(hasura/migrations/default)),
        V(_migrations) (the repository runner's C(db/migrations)), or V(auto), both.
    type: str
    choices: [auto, schema_migrations, _migrations]
    default: auto
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Read the release running and what v0.10 would add (the deployment's gates)
  nfamily.ops.nself_release:
    project_dir: /opt/nself-family/backend
    tag: v0.10
    fetch: true
  check_mode: true
  register: release

- name: Check v0.10 out
  nfamily.ops.nself_release:
    project_dir: /opt/nself-family/backend
    tag: v0.10
"""

RETURN = r"""
repository:
  description: The checkout's work tree.
  returned: always
  type: str
  sample: /opt/nself-family
head:
  description: The commit checked out after the call.
  returned: always
  type: str
running_tag:
  description: The tag HEAD was exactly on before the call (C(git describe --exact-match --tags)), or null.
  returned: always
  type: str
  sample: v0.9
running_tags:
  description: Every tag on that commit (a release may carry several names).
  returned: always
  type: list
  elements: str
fetched_new_tags:
  description: Whether O(fetch) brought a tag that was not there, or moved one.
  returned: always
  type: bool
notes:
  description: What the call could not tell (in check mode, the migrations of a tag only the remote has).
  returned: always
  type: list
  elements: str
tag_commit:
  description: The commit O(tag) names, or null when there is no such tag.
  returned: always
  type: str
changed_files:
  description: Tracked files changed in the work tree (at most 20 shown).
  returned: always
  type: list
  elements: str
untracked_files:
  description: Untracked files that are not ignored (at most 20 shown); they do not block a checkout.
  returned: always
  type: list
  elements: str
migrations_added:
  description: Migrations O(tag) has and HEAD has not, with their scheme and whether their down file exists.
  returned: always
  type: list
  elements: dict
  sample: [{"scheme": "_migrations", "version": 14, "name": "014_release_notes", "down": true}]
migrations_removed:
  description:
    - Migrations HEAD has and O(tag) has not (O(tag) is older), with their scheme; a downgrade's database must be rolled
      back to what O(tag) knows first. Not a problem for the checkout itself, which a rollback does after the
      migrations went down.
  returned: always
  type: list
  elements: dict
  sample: [{"scheme": "schema_migrations", "version": 1770000000014, "name": "1770000000014_notes", "down": true}]
problems:
  description: What stands in the way of deploying O(tag), every one at once; empty when nothing does.
  returned: always
  type: list
  elements: str
commands:
  description: The git commands run (argv lists).
  returned: always
  type: list
  elements: list
"""

import os
import subprocess

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _migrations as mg
from ansible_collections.nfamily.ops.plugins.module_utils import _release as rel
from ansible_collections.nfamily.ops.plugins.module_utils._nself import nself_argument_spec

ALREADY_RUNNING = "is already checked out"


def schemes(repo, head, commit, tracking):
    if tracking != "auto":
        return [tracking]
    return [scheme for scheme, directory in sorted(rel.MIGRATION_DIRS.items())
            if any(repo.has_path(rev, os.path.normpath(os.path.join(repo.project_subdir, directory))) for rev in (head, commit))]


def survey(repo, params, remote_only=False):
    """What the checkout runs and what params["tag"] is; problems lists what stands in the way. With
    remote_only (check mode, where nothing is fetched), a tag only the remote has is looked up there."""
    head = repo.head()
    changed, untracked = repo.status()
    result = dict(repository=repo.root, head=head, running_tag=repo.running_tag(), running_tags=repo.tags_at_head(),
                  tag_commit=None, changed_files=changed[:rel.SHOWN], untracked_files=untracked[:rel.SHOWN],
                  migrations_added=[], migrations_removed=[], problems=[], notes=[])
    if changed:
        result["problems"].append("%d tracked file(s) changed in %s (%s): commit, stash or discard them on the host first; "
                                  "a release is what its tag holds" % (len(changed), repo.root, ", ".join(changed[:5])))
    if not params["tag"]:
        return result
    commit = repo.tag_commit(params["tag"])
    if commit is None and remote_only:
        commit = repo.remote_tag_commit(params["remote"], params["tag"])
        if commit:
            result["notes"].append("%s is only on %s: its migrations are listed once it is fetched" % (params["tag"], params["remote"]))
            result["tag_commit"] = commit
            return result
    result["tag_commit"] = commit
    if commit is None:
        result["problems"].append("tag %s does not exist in %s%s; push it, or name an existing one"
                                  % (params["tag"], repo.root, "" if params["fetch"] else " (fetch: true fetches the remote's tags)"))
    elif commit == head:
        result["problems"].append("%s %s (commit %s)" % (params["tag"], ALREADY_RUNNING, head[:12]))
    else:
        for scheme in schemes(repo, head, commit, params["tracking"]):
            for migration in rel.added_migrations(repo, head, commit, scheme):
                result["migrations_added"].append(dict(migration, scheme=scheme))
            for migration in rel.added_migrations(repo, commit, head, scheme):
                result["migrations_removed"].append(dict(migration, scheme=scheme))
        missing = [m["name"] for m in result["migrations_added"] if not m["down"]]
        if missing:
            result["problems"].append("%s adds migration(s) without a down file (%s): a failed deploy could not roll them "
                                      "back; add the down files and tag again" % (params["tag"], ", ".join(missing)))
    return result


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(
        tag=dict(type="str"),
        fetch=dict(type="bool", default=False),
        remote=dict(type="str", default="origin"),
        tracking=dict(type="str", choices=["auto", "schema_migrations", "_migrations"], default="auto"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if not os.path.isdir(params["project_dir"]):
        module.fail_json(msg="project_dir %s does not exist; set nfamily_project_dir to the nself project" % params["project_dir"])
    environ = rel.git_environment(os.environ)

    def run(argv):  # stdin is /dev/null, which run_command cannot give: nothing git starts may wait on input
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(os.environ, **environ), check=False)
        return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")

    repo = None
    try:
        if params["tag"]:
            rel.check_tag(params["tag"])
        repo = rel.Repository(params["project_dir"], run)
        fetched = bool(params["fetch"] and not module.check_mode and repo.fetch(params["remote"]))
        result = survey(repo, params, remote_only=params["fetch"] and module.check_mode)
        blocking = [p for p in result["problems"] if ALREADY_RUNNING not in p]
        moves = result["tag_commit"] not in (None, result["head"])
        if params["tag"] and blocking:
            module.fail_json(msg="cannot check %s out: %s. Nothing was checked out" % (params["tag"], "; ".join(blocking)),
                             commands=repo.commands, **result)
        if moves and not module.check_mode:
            repo.checkout(result["tag_commit"])
            result["head"] = repo.head()
    except (rel.ReleaseError, mg.MigrationError) as exc:
        module.fail_json(msg=str(exc), commands=repo.commands if repo else [])
    module.exit_json(changed=moves or fetched, fetched_new_tags=fetched, commands=repo.commands, **result)


if __name__ == "__main__":
    main()
