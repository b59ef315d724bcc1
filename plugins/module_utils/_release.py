# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""A release of the nself project as production deploys it (nfamily-backend.md §6, "Deploys"): a git
tag checked out in the repository the project directory belongs to (`git fetch --tags; git checkout
<tag>`, then `nself build`). What runs now, whether the tree is clean, what a tag is and which
migrations it adds, and checking a tag out, confirmed by the commit HEAD ends on.

git runs with argv lists, without a terminal and without prompts (GIT_TERMINAL_PROMPT=0, ssh in batch
mode), and as the checkout's owner: the collection runs as root, the checkout usually belongs to the
deploy user, and git run as root there would run that user's hooks and config (core.fsmonitor, filters)
as root and leave root-owned files behind. (Naming it a safe directory would do exactly that.)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import re

from ansible_collections.nfamily.ops.plugins.module_utils import _migrations as mg

# A tag as the release workflow names them (v0.9, v1.2.3-rc.1): never an option, never a path.
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
REMOTE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Where each migration scheme keeps its files, relative to the project directory (db_migration's defaults).
MIGRATION_DIRS = {"schema_migrations": "hasura/migrations/default", "_migrations": "db/migrations"}
SHOWN = 20


class ReleaseError(Exception):
    """A repository, a tag or a git call the deployment cannot use; the message says what to do."""


def check_tag(tag):
    if not TAG_RE.match(tag or "") or tag.endswith(".lock") or ".." in tag:
        raise ReleaseError("tag %r is not a release tag: letters, digits, '.', '_', '+' and '-', starting with a letter or "
                           "digit (v0.9, v1.2.3-rc.1)" % tag)
    return tag


def find_root(project_dir):
    """The work tree whose .git holds project_dir (found by walking up, so that git's own discovery,
    which refuses a checkout of another owner, is not needed)."""
    path = os.path.realpath(project_dir)
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            raise ReleaseError("%s is not in a git checkout; production is deployed from a clone of the repository "
                               "(git clone ... /opt/nself-family)" % project_dir)
        path = parent


def git_environment(environ):
    """What every git call runs with: no prompt, and no ssh that could ask (unless the operator set their own)."""
    env = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    if not environ.get("GIT_SSH_COMMAND"):
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes -o ConnectTimeout=30"
    return env


def _error_lines(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("error:", "fatal:"))]
    return "; ".join(errors or lines[-1:]) or "no output"


class Repository(object):
    """The checkout of the project. run(argv) -> (rc, stdout, stderr) runs a command (AnsibleModule's
    run_command with the git environment, or a subprocess in tests)."""

    def __init__(self, project_dir, run, euid=None):
        self.root = find_root(project_dir)
        self.project_subdir = os.path.relpath(os.path.realpath(project_dir), self.root)
        self._run = run
        self.commands = []
        self.as_user = self._owner_to_run_as(os.geteuid() if euid is None else euid)

    def _owner_to_run_as(self, euid):
        """(name, home) of the checkout's owner when this process is root and the owner is not, else None."""
        owner = os.stat(self.root).st_uid
        if euid != 0 or owner == 0:
            return None
        try:
            entry = pwd.getpwuid(owner)
        except KeyError:
            raise ReleaseError("%s belongs to uid %d, which has no account; git is run as the checkout's owner: chown "
                               "it to the deploy user" % (self.root, owner))
        return entry.pw_name, entry.pw_dir

    def argv(self, args):
        argv = ["git", "--no-optional-locks", "-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=60",
                "-C", self.root] + list(args)
        if self.as_user:
            name, home = self.as_user
            argv = ["runuser", "-u", name, "--", "env", "HOME=" + home] + argv
        return argv

    def git(self, *args, **kwargs):
        argv = self.argv(args)
        self.commands.append(argv)
        rc, out, err = self._run(argv)
        if rc != 0 and kwargs.get("check", True):
            raise ReleaseError("`git %s` failed in %s (rc %d): %s" % (" ".join(args), self.root, rc, _error_lines(err or out)))
        return rc, out

    def head(self):
        return self.git("rev-parse", "--verify", "HEAD^{commit}")[1].strip()

    def running_tag(self):
        """The tag HEAD is exactly on (what `git describe --exact-match --tags` says), or None."""
        rc, out = self.git("describe", "--exact-match", "--tags", "HEAD", check=False)
        return out.strip() if rc == 0 and out.strip() else None

    def tags_at_head(self):
        return sorted(self.git("tag", "--points-at", "HEAD")[1].split())

    def tag_commit(self, tag):
        rc, out = self.git("rev-parse", "--verify", "--quiet", "refs/tags/%s^{commit}" % check_tag(tag), check=False)
        return out.strip() if rc == 0 and out.strip() else None

    def remote_tag_commit(self, remote, tag):
        """The commit the remote's tag names (peeled), without fetching; None when it has no such tag."""
        out = self.git("ls-remote", "--tags", check_remote(remote), "refs/tags/%s" % check_tag(tag), "refs/tags/%s^{}" % tag)[1]
        found = dict((ref, commit) for commit, ref in (line.split("\t", 1) for line in out.splitlines() if "\t" in line))
        return found.get("refs/tags/%s^{}" % tag) or found.get("refs/tags/%s" % tag)

    def status(self):
        """(tracked files changed, untracked files) of the work tree; ignored files are neither."""
        out = self.git("status", "--porcelain=v1", "-z", "--untracked-files=normal")[1]
        changed, untracked = [], []
        records = out.split("\0")
        while records:
            record = records.pop(0)
            if len(record) < 4:
                continue
            (untracked if record.startswith("??") else changed).append(record[3:])
            if record[0] in "RC":  # a rename or copy: its source follows
                records.pop(0)
        return changed, untracked

    def tag_refs(self):
        return self.git("for-each-ref", "--format=%(objectname) %(refname)", "refs/tags")[1]

    def fetch(self, remote):
        """Fetch the remote's tags; whether any tag came or moved."""
        before = self.tag_refs()
        self.git("fetch", "--tags", "--quiet", check_remote(remote))
        return self.tag_refs() != before

    def migrations(self, rev, scheme, directory=None):
        """The migrations of scheme as the tree of rev has them (directory relative to the project)."""
        relative = os.path.normpath(os.path.join(self.project_subdir, directory or MIGRATION_DIRS[scheme]))
        out = self.git("ls-tree", "-r", "-z", "--name-only", rev, "--", relative + "/")[1]
        prefix = relative + "/"
        paths = [name[len(prefix):] for name in out.split("\0") if name.startswith(prefix)]
        return mg.from_paths(scheme, paths, os.path.join(self.root, relative))

    def has_path(self, rev, relative):
        return bool(self.git("ls-tree", "-z", "--name-only", rev, "--", relative)[1].strip("\0"))

    def checkout(self, commit):
        """Check commit out (detached, as the release workflow leaves it; never over an ignored file the
        commit tracks, an env file for example) and confirm HEAD is on it."""
        self.git("-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", "--no-overwrite-ignore", commit)
        head = self.head()
        if head != commit:
            raise ReleaseError("after `git checkout` HEAD is %s, not %s; check %s by hand" % (head[:12], commit[:12], self.root))


def check_remote(remote):
    if not REMOTE_RE.match(remote or ""):
        raise ReleaseError("remote %r is not a remote's name (letters, digits, '.', '_' and '-'; origin)" % remote)
    return remote


def added_migrations(repo, head, target, scheme, directory=None):
    """[{version, name, down}] of the migrations the target revision has and head has not."""
    have = set(m.version for m in repo.migrations(head, scheme, directory))
    return [{"version": m.version, "name": m.name, "down": m.down is not None}
            for m in repo.migrations(target, scheme, directory) if m.version not in have]
