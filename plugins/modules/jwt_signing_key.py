#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: jwt_signing_key
short_description: Rotate the JWT signing key of an nself project in every variable that must carry it
version_added: 0.1.0
description:
  - Manages the HS256 key the nFamily services sign and verify tokens with, in the project's env files, the way
    community.crypto's C(openssl_privatekey) manages a key file, with an explicit regeneration policy.
  - The key lives in C(JWT_SECRET) (read by the auth and api services), in the C(key) of C(HASURA_GRAPHQL_JWT_SECRET)
    (which must equal C(JWT_SECRET) or GraphQL rejects every token), and in nself's C(AUTH_JWT_SECRET),
    C(AUTH_JWT_KEY), C(HASURA_JWT_KEY) and C(JWT_KEY) where a file defines them. Each variable is written in the file of
    the env cascade whose definition is in effect (the last one defining it). A value that is a C(${VARIABLE})
    reference to another of these is left alone. A missing C(HASURA_GRAPHQL_JWT_SECRET) is added next to C(JWT_SECRET).
  - Outside dev, nothing is written into C(.env.dev), the shared base committed to git; a variable whose definition in
    effect is there gets an overriding definition in C(.env.secrets) (prod) or C(.env.staging) (staging), created 0600
    when missing.
  - A rotation is two-phase. V(rotated) writes the new key and records it as pending; V(committed) confirms it once
    the services were restarted and verified; V(rolled_back) puts the previous key back from the backups. While a
    rotation is pending, V(rotated) completes that rotation (the key is read back from the files it already reached) and
    never generates a second key.
  - When no rotation is due but the variables disagree (as in nFamily's committed C(.env.dev)), V(rotated) makes them all
    carry the key of C(JWT_SECRET); that is a pending change too.
  - Every changed file gets a 0600 backup C(<file>.<UTC time>.bak) first and is then replaced atomically with mode 0600.
  - The rotation record (fingerprints, times, backup paths; never a key) is C(<state_dir>/jwt_signing_key/<PROJECT_NAME>.json).
  - Nothing is restarted here; the C(rotate_jwt) role rebuilds, restarts and verifies.
extends_documentation_fragment:
  - nfamily.ops.nself
  - nfamily.ops.attributes
  - nfamily.ops.attributes.nself_group
attributes:
  check_mode:
    support: full
    details: Reports whether a rotation is due and which variables and files would change; writes nothing.
  diff_mode:
    support: full
    details: Before and after are one line per variable with the key's fingerprint, never the key.
options:
  state:
    description:
      - V(rotated) applies O(policy) (and finishes a pending rotation). V(committed) confirms the pending rotation.
        V(rolled_back) restores the previous key of the pending rotation.
    type: str
    choices: [rotated, committed, rolled_back]
    default: rotated
  policy:
    description:
      - When V(rotated) generates a new key. V(always) rotates on every call that finds no rotation pending (for a
        suspected compromise). V(older_than) rotates when the last recorded rotation is at least O(max_age_days) old, or
        when none is on record. V(never) only aligns variables that disagree.
    type: str
    choices: [always, older_than, never]
    default: older_than
  max_age_days:
    description: Age in days at which V(older_than) rotates.
    type: int
    default: 90
  size:
    description: Random bytes in a new key (at least 64). The key is written base64url-encoded without padding.
    type: int
    default: 64
  reason:
    description: Why the key is rotated (kept in the record), for example V(scheduled) or V(compromise).
    type: str
    default: scheduled
  run_id:
    description: The runbook run that rotates, kept in the record.
    type: str
  state_dir:
    description: Directory of the host-side rotation record.
    type: path
    default: /var/lib/nfamily-ops
notes:
  - Only the env files change. The services keep the old key until their containers are recreated, for example by
    M(nfamily.ops.nself_service) with V(reconfigured); C(nself restart <service>) alone keeps a container's old environment.
  - Refresh tokens are opaque and survive a key change; revoke them with M(nfamily.ops.session_revocation) after a compromise.
seealso:
  - module: nfamily.ops.auth_check
  - module: nfamily.ops.nself_service
author:
  - nfamily.ops maintainers (@nfamily)
"""

EXAMPLES = r"""
- name: Rotate the key when it is older than 90 days (quarterly schedule)
  nfamily.ops.jwt_signing_key:
    project_dir: /opt/nself-family/backend
    policy: older_than
    max_age_days: 90
  register: jwt_key

- name: Rotate now after a suspected compromise
  nfamily.ops.jwt_signing_key:
    project_dir: /opt/nself-family/backend
    policy: always
    reason: compromise

- name: Confirm the rotation once the services verified it
  nfamily.ops.jwt_signing_key:
    project_dir: /opt/nself-family/backend
    state: committed
  when: jwt_key.pending

- name: Put the previous key back
  nfamily.ops.jwt_signing_key:
    project_dir: /opt/nself-family/backend
    state: rolled_back
"""

RETURN = r"""
fingerprint:
  description:
    - Fingerprint of the key in C(JWT_SECRET) after the call - C(hmac-sha256:) and the first 16 hex digits of the key's
      HMAC-SHA256 under this host's fingerprint secret (C(<state_dir>/jwt_signing_key/fingerprint.key), made on the first
      run), so that a fingerprint in a report cannot be used to test guesses of a weak key.
    - Rotation records written before this (version 0.1.0) hold unkeyed C(sha256:) fingerprints; they are still recognised.
  returned: always
  type: str
  sample: hmac-sha256:3f1c0d9e2b7a4c55
previous_fingerprint:
  description: Fingerprint of the key before the pending (or just rolled back) rotation; null when none.
  returned: always
  type: str
pending:
  description: Whether a rotation is written to the env files but not committed yet (restart and verify, then commit).
  returned: always
  type: bool
action:
  description: What V(rotated) did. V(rotate) (new key), V(resume) (finished a pending rotation), V(align) (made the
    variables agree), V(none); V(commit) or V(rollback) for the other states.
  returned: always
  type: str
reason:
  description: Why V(rotated) did or did not rotate.
  returned: always
  type: str
age_days:
  description: Days since the last recorded rotation; null when none is on record.
  returned: always
  type: float
variables:
  description: Each key variable with the file it is in and its key's fingerprint (or the variable it refers to).
  returned: always
  type: dict
  sample: {"JWT_SECRET": {"file": ".env.secrets", "fingerprint": "hmac-sha256:3f1c0d9e2b7a4c55", "reference": null}}
files:
  description: The env files written (or that would be).
  returned: always
  type: list
  elements: str
backups:
  description: Backup copies made of the env files before they were written.
  returned: always
  type: list
  elements: str
record:
  description: Path of the rotation record.
  returned: always
  type: str
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nfamily.ops.plugins.module_utils import _jwt_key as jk
from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.module_utils import _runbook as rb
from ansible_collections.nfamily.ops.plugins.module_utils._nself import nself_argument_spec


class Rotation(object):
    """The key variables of one project and its rotation record."""

    def __init__(self, params, check_mode):
        self.project_dir = params["project_dir"]
        self.env_name = params["environment"] or nenv.detect_environment(self.project_dir)
        self.record_path = jk.record_path(params["state_dir"], self.project_dir, self.env_name)
        self.record = jk.read_record(self.record_path)
        self.fp = jk.Fingerprints(params["state_dir"], create=not check_mode,
                                  keyed_on_record=jk.KEYED_PREFIX in json.dumps(self.record))
        self.read()
        self.rekey()

    def rekey(self):
        """Give the record's unkeyed names (version 0.1.0's) of the keys this run knows - those in the env
        files and a pending rotation's previous one - their keyed names; written with the record's next write."""
        known = [entry["key"] for entry in self.resolved.values()]
        pending = self.record.get("pending")
        if pending:
            try:
                known.append(jk.previous_key(pending))
            except jk.SigningKeyError:
                pass
        self.rekeyed_names = False
        for entry in [self.record.get("current"), pending] + self.record["history"]:
            for field in ("fingerprint", "previous_fingerprint"):
                if entry and entry.get(field):
                    name = self.fp.rekeyed(entry[field], known)
                    self.rekeyed_names = self.rekeyed_names or name != entry[field]
                    entry[field] = name

    def read(self):
        self.found = jk.locate(self.project_dir, self.env_name)
        self.resolved = jk.resolve(self.found)
        return self.resolved

    @property
    def fingerprint(self):
        return self.fp(self.resolved[jk.PRIMARY]["key"])

    def holder_of(self, fingerprint):
        """The key of the first variable holding the key with that fingerprint, or None."""
        for entry in self.resolved.values():
            if self.fp.matches(entry["key"], fingerprint):
                return entry["key"]
        return None

    def not_holding(self, fingerprint):
        """The variables whose key is not the one with that fingerprint."""
        return sorted(name for name, entry in self.resolved.items() if not self.fp.matches(entry["key"], fingerprint))

    def consistent(self):
        return jk.HASURA_CARRIER in self.found and len(set(self.fp.of(self.resolved).values())) == 1

    def diff_text(self, new_fingerprint=None, added=None):
        return jk.diff_text(self.fp, self.resolved, new_fingerprint, added)

    def write(self, updates, backups, now):
        """Write {file: {variable: raw}}; files without a backup in backups get one first."""
        for filename, values in sorted(updates.items()):
            path = os.path.join(self.project_dir, filename)
            if filename not in backups:
                backups[filename] = jk.backup_file(path, now)
            text = ""
            if os.path.exists(path):
                with open(path) as handle:
                    text = handle.read()
            jk.write_secret_file(path, jk.set_values(text, values))

    def result(self, **extra):
        variables = dict((name, {"file": entry["file"], "reference": entry["reference"],
                                 "fingerprint": None if entry["reference"] else self.fp(entry["key"])})
                         for name, entry in self.resolved.items())
        pending = self.record.get("pending")
        result = dict(fingerprint=self.fingerprint, pending=bool(pending), variables=variables, record=self.record_path,
                      previous_fingerprint=(pending or {}).get("previous_fingerprint"), files=[], backups=[],
                      age_days=None, reason="", action="none")
        result.update(extra)
        return result


def decide(rotation, params, now):
    """(action, key, reason) for state=rotated. The key is None when nothing is to be written."""
    pending = rotation.record.get("pending")
    if pending:
        key = rotation.holder_of(pending["fingerprint"])
        if key is not None:
            return "resume", key, "a rotation started %s is pending; finishing it with the same key" % pending["started_at"]
    age = jk.age_days(rotation.record, now)
    if params["policy"] == "always":
        return "rotate", jk.new_key(params["size"]), "policy always"
    if params["policy"] == "older_than":
        if age is None:
            return "rotate", jk.new_key(params["size"]), "no rotation on record, so the key's age is unknown"
        if age >= params["max_age_days"]:
            return "rotate", jk.new_key(params["size"]), "the key is %.1f days old (max %d)" % (age, params["max_age_days"])
    if not rotation.consistent():
        return "align", rotation.resolved[jk.PRIMARY]["key"], "the key variables disagree; aligning them to JWT_SECRET"
    if params["policy"] == "older_than":
        return "none", None, "the key is %.1f days old; rotation due at %d" % (age, params["max_age_days"])
    return "none", None, "policy never and every key variable agrees"


def rotate(module, rotation, now):
    params = module.params
    action, key, reason = decide(rotation, params, now)
    age = jk.age_days(rotation.record, now)
    before = rotation.diff_text()
    if key is None:
        module.exit_json(changed=False, **rotation.result(action=action, reason=reason, age_days=age))
    updates = jk.updates_for(rotation.found, rotation.resolved, key, rotation.env_name)
    pending = rotation.record.get("pending") if action == "resume" else None
    new_fp = rotation.fp(key)
    added = {} if jk.HASURA_CARRIER in rotation.found else {
        jk.HASURA_CARRIER: jk.target_file(rotation.found[jk.PRIMARY]["file"], rotation.env_name)}
    # in check mode a new key is only a prediction: its fingerprint would not be the one written later
    after = rotation.diff_text("(new key)" if module.check_mode and action == "rotate" else new_fp, added)
    changed = bool(updates) or action != "resume"
    diff = dict(before=before, after=after, before_header="key variables", after_header="key variables")
    if module.check_mode:
        module.exit_json(changed=changed, diff=diff, **rotation.result(
            action=action, reason=reason, age_days=age, files=sorted(updates), pending=True,
            fingerprint=new_fp if action != "rotate" else "(new key)",
            previous_fingerprint=pending["previous_fingerprint"] if pending else rotation.fingerprint))
    abandoned = rotation.record.get("pending")
    if abandoned and pending is None:  # killed before its key reached any file: that key was never in effect
        rotation.record["history"].append(dict(abandoned, outcome="abandoned", finished_at=rb.isoformat(now)))
    if pending is None:
        pending = {"fingerprint": new_fp, "previous_fingerprint": rotation.fingerprint, "started_at": rb.isoformat(now),
                   "reason": reason if action == "align" else params["reason"], "action": action,
                   "primary_file": rotation.found[jk.PRIMARY]["file"], "run_id": params["run_id"], "backups": {}}
        # Back up before anything is written, and record the backups with the pending rotation, so a
        # kill at any point leaves the previous key recoverable and the new one findable.
        for filename in sorted(set(updates) | {pending["primary_file"]}):
            pending["backups"][filename] = jk.backup_file(os.path.join(rotation.project_dir, filename), now)
        rotation.record["pending"] = pending
        jk.write_record(rotation.record_path, rotation.record)
    backed_up = len(pending["backups"])
    rotation.write(updates, pending["backups"], now)
    # a resumed rotation backed up files the first attempt had not reached, or its record had unkeyed names
    if len(pending["backups"]) != backed_up or rotation.rekeyed_names:
        jk.write_record(rotation.record_path, rotation.record)
    rotation.read()
    stray = rotation.not_holding(new_fp)
    if stray:
        module.fail_json(msg="after writing, %s still do not carry the new key; check the env files by hand, then re-run "
                         "(the rotation stays pending)" % ", ".join(sorted(stray)))
    module.exit_json(changed=changed, diff=diff, **rotation.result(
        action=action, reason=reason, age_days=age, files=sorted(updates),
        backups=sorted(pending["backups"][f] for f in updates if pending["backups"].get(f))))


def commit(module, rotation, now):
    pending = rotation.record.get("pending")
    if not pending:
        module.exit_json(changed=False, **rotation.result(
            action="none", reason="no rotation is pending", age_days=jk.age_days(rotation.record, now)))
    stray = rotation.not_holding(pending["fingerprint"])
    if stray:
        module.fail_json(msg="the pending key is not in %s; re-run with state=rotated to finish writing it, or roll back"
                         % ", ".join(sorted(stray)))
    if not module.check_mode:
        current = rotation.record.get("current") or {}
        key = rotation.resolved[jk.PRIMARY]["key"]
        since = current.get("since") if rotation.fp.matches(key, current.get("fingerprint")) else rb.isoformat(now)
        # keyed, also when the pending rotation was written (unkeyed) by an older version
        rotation.record["current"] = {"fingerprint": rotation.fingerprint, "since": since}
        rotation.record["history"].append(dict(pending, outcome="committed", finished_at=rb.isoformat(now)))
        rotation.record["pending"] = None
        jk.write_record(rotation.record_path, rotation.record)
    module.exit_json(changed=True, **rotation.result(action="commit", reason=pending["reason"], age_days=0.0,
                                                     previous_fingerprint=pending["previous_fingerprint"]))


def roll_back(module, rotation, now):
    pending = rotation.record.get("pending")
    if not pending:
        module.exit_json(changed=False, **rotation.result(action="none", reason="no rotation is pending"))
    updates = {}
    for filename, backup in pending["backups"].items():
        old = nenv.read_env_file(backup) if backup else {}  # no backup: the rotation created the file
        if old is None:
            module.fail_json(msg="the backup %s of the pending rotation is missing; restore %s by hand" % (backup, filename))
        current = nenv.read_env_file(os.path.join(rotation.project_dir, filename)) or {}
        for name in jk.RAW_CARRIERS + [jk.HASURA_CARRIER]:
            if name in current and old.get(name) != current[name]:
                updates.setdefault(filename, {})[name] = old.get(name)
    before = rotation.diff_text()
    if module.check_mode:
        module.exit_json(changed=True, diff=dict(before=before, after=rotation.diff_text(pending["previous_fingerprint"])),
                         **rotation.result(
            action="rollback", files=sorted(updates), fingerprint=pending["previous_fingerprint"]))
    backups = {}
    rotation.write(updates, backups, now)
    rotation.read()
    if not rotation.fp.matches(rotation.resolved[jk.PRIMARY]["key"], pending["previous_fingerprint"]):
        module.fail_json(msg="after restoring the backups JWT_SECRET is %s, not the previous key %s; restore the env files "
                         "from %s by hand" % (rotation.fingerprint, pending["previous_fingerprint"],
                                              ", ".join(sorted(pending["backups"].values()))))
    rotation.record["history"].append(dict(pending, outcome="rolled_back", finished_at=rb.isoformat(now)))
    rotation.record["pending"] = None
    jk.write_record(rotation.record_path, rotation.record)
    module.exit_json(changed=True, diff=dict(before=before, after=rotation.diff_text()), **rotation.result(
        action="rollback", reason="restored the key of %s" % pending["previous_fingerprint"], files=sorted(updates),
        backups=sorted(b for b in backups.values() if b), previous_fingerprint=pending["fingerprint"]))


def main():
    argument_spec = nself_argument_spec()
    argument_spec.update(
        state=dict(type="str", default="rotated", choices=["rotated", "committed", "rolled_back"]),
        policy=dict(type="str", default="older_than", choices=["always", "older_than", "never"]),
        max_age_days=dict(type="int", default=90),
        size=dict(type="int", default=64),
        reason=dict(type="str", default="scheduled"),
        run_id=dict(type="str"),
        state_dir=dict(type="path", default=rb.DEFAULT_STATE_DIR),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if params["size"] < jk.MIN_KEY_BYTES:
        module.fail_json(msg="size must be at least %d bytes (got %d)" % (jk.MIN_KEY_BYTES, params["size"]))
    if params["max_age_days"] < 1:
        module.fail_json(msg="max_age_days must be at least 1 (got %d)" % params["max_age_days"])
    if not os.path.isdir(params["project_dir"]):
        module.fail_json(msg="project_dir %s does not exist; set nfamily_project_dir to the nself project" % params["project_dir"])
    now = rb.utcnow()
    try:
        rotation = Rotation(params, module.check_mode)
        if rotation.fp.provisional:
            module.warn("this host has no fingerprint secret yet (%s; the first run without check mode makes it): the "
                        "fingerprints shown are provisional" % rotation.fp.path)
        {"rotated": rotate, "committed": commit, "rolled_back": roll_back}[params["state"]](module, rotation, now)
    except (jk.SigningKeyError, rb.RunbookStateError, IOError, OSError) as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
