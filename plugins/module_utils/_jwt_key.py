# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""The JWT signing key of an nself project as the env cascade carries it (nfamily-backend.md §3,
nself-cli.md §2): which variables hold it, in which file of the cascade, how a new key is written
into them without touching anything else of the file, and the host-side record of rotations that
holds fingerprints only. Nothing here returns or logs a key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import errno
import hashlib
import hmac
import json
import os
import re
import secrets
import stat

from ansible_collections.nfamily.ops.plugins.module_utils import _files as files
from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.module_utils import _runbook as rb

# Variables holding the raw key. JWT_SECRET is what the nFamily services sign and verify with; the
# others are nself's own names, updated only where a file of the cascade defines them.
RAW_CARRIERS = ["JWT_SECRET", "AUTH_JWT_SECRET", "AUTH_JWT_KEY", "HASURA_JWT_KEY", "JWT_KEY"]
# Hasura's JSON config, whose "key" must equal JWT_SECRET or GraphQL rejects every token.
HASURA_CARRIER = "HASURA_GRAPHQL_JWT_SECRET"
PRIMARY = "JWT_SECRET"
# .env.dev is the shared base committed to git (nfamily-backend.md §5): outside dev, a key whose
# definition in effect is there is written as an override into the environment's own secret file.
SHARED_BASE = ".env.dev"
SECRET_FILES = {"prod": ".env.secrets", "staging": ".env.staging"}
MIN_KEY_BYTES = 64
REFERENCE_RE = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")
HISTORY_KEPT = 20
RECORD_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
FINGERPRINT_SECRET = "fingerprint.key"
SECRET_BYTES = 32
KEYED_PREFIX = "hmac-sha256:"
LEGACY_PREFIX = "sha256:"


class SigningKeyError(Exception):
    """A key configuration nfamily.ops cannot handle safely; the message says what to fix."""


class Fingerprints(object):
    """Short names of keys for records, results, diffs and reports: the first 16 hex digits of HMAC-SHA256
    under a random secret of this host (<state_dir>/jwt_signing_key/fingerprint.key, 0600). An unkeyed hash
    would let whoever reads a report test guesses of a weak key offline; a keyed one only tells keys apart
    on this host. Names written before (sha256:<16 hex>, unkeyed) are still recognised by matches().
    Without create (check mode, read-only modules), a host without the secret yet gets a throwaway one:
    its names are provisional and match nothing on record. With keyed_on_record (a record names keys
    with the secret), a missing secret is an error: a new one would make the record's names unknown."""

    def __init__(self, state_dir, create=True, keyed_on_record=False):
        self.path = os.path.join(state_dir, "jwt_signing_key", FINGERPRINT_SECRET)
        self._secret = _read_secret(self.path)
        if self._secret is None and keyed_on_record:
            raise SigningKeyError("the fingerprint secret %s is missing, but the rotation record names keys with it: restore "
                                  "it from the host's backup. Without it, move the record aside (after finishing or rolling "
                                  "back a pending rotation by hand): a new secret would not know the keys it names" % self.path)
        self.provisional = self._secret is None and not create
        if self._secret is None:
            self._secret = _create_secret(self.path) if create else secrets.token_bytes(SECRET_BYTES)

    def __call__(self, key):
        return KEYED_PREFIX + hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()[:16]

    def matches(self, key, name):
        """Whether name (keyed, or unkeyed as records written before keep them) names key."""
        if not name or key is None:
            return False
        expected = legacy_fingerprint(key) if name.startswith(LEGACY_PREFIX) else self(key)
        return hmac.compare_digest(expected.encode(), name.encode("utf-8"))

    def rekeyed(self, name, keys):
        """name, or the keyed name of the one of keys an unkeyed name names."""
        if name and name.startswith(LEGACY_PREFIX):
            for key in keys:
                if self.matches(key, name):
                    return self(key)
        return name

    def of(self, resolved):
        return dict((name, self(entry["key"])) for name, entry in resolved.items())


def _read_secret(path):
    """The fingerprint secret, or None when there is none yet; never through a link, never one another user
    could have written."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))  # a planted FIFO never blocks
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        if exc.errno == errno.ELOOP:
            rb.check_private(path)  # names the link
        raise SigningKeyError("cannot read %s: %s" % (path, exc))
    try:
        status = os.fstat(fd)
        rb.check_private(path, status)
        if not stat.S_ISREG(status.st_mode) or status.st_mode & 0o077:
            raise SigningKeyError("%s is not a 0600 file (mode %04o); check who changed it, then chmod 0600 it"
                                  % (path, stat.S_IMODE(status.st_mode)))
        secret = os.read(fd, SECRET_BYTES + 1)
    finally:
        os.close(fd)
    if len(secret) != SECRET_BYTES:
        raise SigningKeyError("%s is not a fingerprint secret (%d bytes, not %d); check who wrote it. Moved aside, a new "
                              "one is made, and fingerprints on record no longer match by name" % (path, len(secret), SECRET_BYTES))
    return secret


def _create_secret(path):
    """Write a new secret whole under a temporary name, then link it to its name: a reader never sees a
    part of one, and of two runs making it at once the second uses the first's."""
    rb.ensure_private_dir(os.path.dirname(os.path.dirname(path)))
    rb.ensure_private_dir(os.path.dirname(path))
    secret = secrets.token_bytes(SECRET_BYTES)
    partial = files.partial_path(path)
    try:
        if os.path.lexists(partial):  # an attempt killed before its link; runs that rotate hold the auth lock
            os.unlink(partial)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.write(fd, secret)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(partial, path)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
            return _read_secret(path)  # another run made it first: use that one
        finally:
            os.unlink(partial)
    except OSError as exc:
        raise SigningKeyError("cannot create %s: %s" % (path, exc))
    files.fsync_dir(os.path.dirname(path))
    return secret


def legacy_fingerprint(key):
    """The unkeyed name records written by version 0.1.0 hold."""
    return LEGACY_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:16]


def new_key(nbytes):
    """A random key of nbytes bytes, base64url without padding (one line, safe in env files and JSON)."""
    if nbytes < MIN_KEY_BYTES:
        raise SigningKeyError("size must be at least %d bytes" % MIN_KEY_BYTES)
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).decode().rstrip("=")


def _hasura_config(raw, where):
    try:
        config = json.loads(raw)
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise SigningKeyError("%s in %s is not a JSON object; nself and hasura need {\"type\":\"HS256\",\"key\":\"...\"}"
                              % (HASURA_CARRIER, where))
    if config.get("type", "HS256") != "HS256" or not isinstance(config.get("key", ""), str):
        raise SigningKeyError("%s in %s is not an HS256 key; the nFamily services sign with HS256 only" % (HASURA_CARRIER, where))
    return config


def key_of(name, raw, where):
    """The key a variable's raw value holds (for hasura, the JSON's "key")."""
    if name == HASURA_CARRIER:
        return _hasura_config(raw, where).get("key", "")
    return raw


def with_key(name, raw, key):
    """The raw value of a variable once it carries key; for hasura the rest of the JSON is kept."""
    if name != HASURA_CARRIER:
        return key
    if raw is None:
        return json.dumps({"type": "HS256", "key": key}, separators=(",", ":"))
    config = _hasura_config(raw, name)
    config["key"] = key
    return json.dumps(config, separators=(",", ":"))


def locate(project_dir, env_name):
    """{variable: {"file", "raw"}} for each carrier, from the last file of the cascade defining it
    (the one whose value is in effect). JWT_SECRET must be defined."""
    found = {}
    _merged, files = nenv.load_cascade(project_dir, env_name)
    for filename, values in files:
        for name in RAW_CARRIERS + [HASURA_CARRIER]:
            if values and name in values:
                found[name] = {"file": filename, "raw": values[name]}
    if PRIMARY not in found:
        raise SigningKeyError("%s is not set in the %s cascade (%s); the nFamily auth and api services sign and verify with it"
                              % (PRIMARY, env_name, ", ".join(nenv.cascade_files(env_name))))
    return found


def resolve(found):
    """{variable: {"file", "reference" or None, "key"}}: each carrier's effective key, following
    ${NAME} references to another carrier (nself copies them verbatim for compose to expand)."""
    resolved = {}
    for name, entry in found.items():
        value = key_of(name, entry["raw"], entry["file"])
        reference = REFERENCE_RE.match(value or "")
        resolved[name] = {"file": entry["file"], "reference": reference.group(1) if reference else None, "key": value}
    for name in resolved:
        resolved[name]["key"] = _follow(resolved, name)
    if len(resolved[PRIMARY]["key"] or "") < 32:
        raise SigningKeyError("%s is shorter than 32 characters; hasura refuses such HS256 keys. Rotate with policy=always"
                              % PRIMARY)
    return resolved


def _follow(resolved, name):
    """The key a variable ends up with once its ${...} references are followed."""
    seen, entry = [name], resolved[name]
    while entry["reference"]:
        target = entry["reference"]
        if target in seen or target not in resolved:
            raise SigningKeyError("%s refers to ${%s}, which is not a key variable of the cascade; set it to a value or to "
                                  "${JWT_SECRET}" % (name, target))
        seen.append(target)
        entry = resolved[target]
    return entry["key"]


def target_file(filename, env_name):
    """The file a key variable defined in filename is written to in env_name."""
    if filename == SHARED_BASE and env_name in SECRET_FILES:
        return SECRET_FILES[env_name]
    return filename


def updates_for(found, resolved, key, env_name):
    """{file: {variable: new raw value}} that makes every carrier hold key. References are left alone
    (they follow their target); a missing hasura config is added next to JWT_SECRET; nothing is
    written into the committed .env.dev outside dev (see target_file)."""
    updates = {}
    for name, entry in resolved.items():
        if entry["reference"] or entry["key"] == key:
            continue
        updates.setdefault(target_file(entry["file"], env_name), {})[name] = with_key(name, found[name]["raw"], key)
    if HASURA_CARRIER not in found:
        updates.setdefault(target_file(found[PRIMARY]["file"], env_name), {})[HASURA_CARRIER] = with_key(HASURA_CARRIER, None, key)
    return updates


def set_values(text, values):
    """text of an env file with each variable's last definition given a new value, keeping its
    `export` prefix and quotes; variables the file lacks are appended (JSON in single quotes), and
    a value of None removes the variable's last definition."""
    lines = text.splitlines()
    for name, value in values.items():
        index = None
        for number, line in enumerate(lines):
            match = nenv.LINE_RE.match(line)
            if match and match.group(1) == name:
                index = number
        if value is None:
            if index is not None:
                del lines[index]
            continue
        if index is None:
            lines.append("%s=%s" % (name, "'%s'" % value if value.startswith("{") else value))
            continue
        match = nenv.LINE_RE.match(lines[index])
        old = match.group(2).strip()
        quote = old[0] if len(old) >= 2 and old[0] == old[-1] and old[0] in "\"'" else ""
        prefix = lines[index][:match.start(2)]
        lines[index] = "%s%s%s%s" % (prefix, quote, value, quote)
    return "\n".join(lines) + "\n"


def backup_file(path, now):
    """Copy path to <path>.<UTC time>.bak with mode 0600; returns the backup's path, or None when
    path does not exist yet (a secret file the rotation creates)."""
    return files.backup_copy(path, now) if os.path.exists(path) else None


def write_secret_file(path, text):
    """Replace path atomically with text, mode 0600, keeping the owner of the old file."""
    files.write_atomic(path, text, 0o600)


def diff_text(fingerprint, resolved, new_fingerprint=None, added=None):
    """Diff body: one `VARIABLE (file) = fingerprint` line per key variable, never a key; with
    new_fingerprint, as it will be once they carry that key (added: {variable: file} to be created)."""
    lines = []
    for name, entry in sorted(resolved.items()):
        shown = "${%s}" % entry["reference"] if entry["reference"] else new_fingerprint or fingerprint(entry["key"])
        lines.append("%s (%s) = %s\n" % (name, entry["file"], shown))
    for name, filename in sorted((added or {}).items()):
        lines.append("%s (%s) = %s\n" % (name, filename, new_fingerprint))
    return "".join(sorted(lines))


# ---------------------------------------------------------------- record

def record_path(state_dir, project_dir, env_name):
    """<state_dir>/jwt_signing_key/<PROJECT_NAME>.json."""
    merged, _files = nenv.load_cascade(project_dir, env_name)
    name = nenv.project_name(project_dir, merged)
    if not RECORD_NAME_RE.fullmatch(name):
        raise SigningKeyError("PROJECT_NAME %r cannot name the rotation record (letters, digits, '.', '_' and '-', not "
                              "starting with '.'; Docker Compose needs no more): correct it in the env files" % name)
    return os.path.join(state_dir, "jwt_signing_key", "%s.json" % name)


def read_record(path):
    record = rb.read_json(path) or {}
    record.setdefault("current", None)
    record.setdefault("pending", None)
    record.setdefault("history", [])
    return record


def write_record(path, record):
    record["history"] = record["history"][-HISTORY_KEPT:]
    rb.write_state(path, record)


def age_days(record, now):
    """Days since the key in effect was put there by a rotation; None when no rotation is on record."""
    current = record.get("current") or {}
    if not current.get("since"):
        return None
    return (now - rb.parse_time(current["since"])).total_seconds() / 86400.0


def previous_key(rotation):
    """The key the carriers held before a rotation (pending or on record), read from its backup of
    JWT_SECRET's file."""
    backups = rotation.get("backups") or {}
    source = rotation.get("primary_file")
    if not backups.get(source):
        raise SigningKeyError("the rotation record has no backup of %s; the previous key cannot be read" % source)
    values = nenv.read_env_file(backups[source])
    if values is None or PRIMARY not in values:
        raise SigningKeyError("the backup %s is missing or holds no %s" % (backups[source], PRIMARY))
    return values[PRIMARY]


# ---------------------------------------------------------------- tokens

def _b64(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_hs256(claims, key):
    """An HS256 JWT, as jsonwebtoken makes it."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key.encode(), ("%s.%s" % (header, body)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (header, body, _b64(signature))


def signed_with(token, key):
    """Whether an HS256 token's signature is made with key."""
    try:
        header, body, signature = token.split(".")
        expected = hmac.new(key.encode(), ("%s.%s" % (header, body)).encode(), hashlib.sha256).digest()
        return hmac.compare_digest(expected, _unb64(signature))
    except (ValueError, TypeError):
        return False


def claims_of(token):
    try:
        return json.loads(_unb64(token.split(".")[1]).decode())
    except (ValueError, IndexError, TypeError):
        return {}
