# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""Offsite copies of the backups: a backup and its manifest under a prefix of a bucket, the copy
encrypted and the manifest signed with the operator's key (_offsite_key) unless plaintext was
allowed. The S3 calls are the caller's s3lib (_s3), so that they can be replaced in tests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ansible_collections.nfamily.ops.plugins.module_utils import _files as files
from ansible_collections.nfamily.ops.plugins.module_utils import _offsite_key as offsite_key
from ansible_collections.nfamily.ops.plugins.module_utils._backup import (
    MANIFEST_SUFFIX, PRODUCER, BackupError, check_name, manifest_path, newest, open_regular, read_manifest, stored)


def copy(s3lib, s3, manifest, bucket, prefix, sealer=None):
    """Upload the backup, then its manifest (the commit point there too), each checked after the upload.
    With sealer (the operator's _offsite_key.OffsiteKey) the copy is encrypted and the manifest signed.
    Returns the offsite location, which is also added to the local manifest."""
    key = prefix + manifest["file"]
    started = time.time()
    location = s3lib.upload(s3, manifest["path"], bucket, key, manifest["sha256"], sealer)
    location["duration_s"] = round(time.time() - started, 3)
    local = stored(manifest)
    local["offsite"] = dict((k, location[k]) for k in ("bucket", "key", "encryption") if k in location)
    files.write_json(manifest["manifest"], local)
    put_manifest(s3lib, s3, bucket, key + MANIFEST_SUFFIX, local, sealer)
    return location


def put_manifest(s3lib, s3, bucket, key, manifest, sealer=None):
    """Write a backup's manifest offsite: signed with sealer, else without any (a stale signature would
    only say it was changed). Without sealer, the manifest of a sealed copy is left alone (an unsigned one
    would make the key refuse the copy): returns False then, True when written."""
    if sealer is None and (manifest.get("offsite") or {}).get("encryption"):
        return False
    body = sealer.sign(stored(manifest)) if sealer else dict((k, v) for k, v in stored(manifest).items() if k != "authentication")
    s3lib.put_bytes(s3, bucket, key, json.dumps(body, indent=1, sort_keys=True).encode())
    return True


def _remote_manifest(s3lib, s3, bucket, key, sealer):
    """The manifest at key, when it is one of PRODUCER's for the file whose name it carries, signed by sealer
    when there is one. Raises BackupError saying why not."""
    where = "s3://%s/%s" % (bucket, key)
    try:
        remote = json.loads(s3lib.get_bytes(s3, bucket, key).decode())
    except ValueError:
        raise BackupError("%s is not a valid manifest" % where)
    if not isinstance(remote, dict) or remote.get("producer") != PRODUCER or not remote.get("sha256"):
        raise BackupError("%s is not a manifest written by %s" % (where, PRODUCER))
    if remote.get("file") != os.path.basename(key)[:-len(MANIFEST_SUFFIX)]:
        raise BackupError("%s names the file %r, not the one beside it: a manifest speaks only for that one" % (where, remote.get("file")))
    if sealer is not None:
        try:
            sealer.check(remote, where)
        except offsite_key.OffsiteKeyError as exc:
            raise BackupError(str(exc))
        # signed where it was written: a signed manifest copied under another prefix (another environment's,
        # sealed with the same key) does not count
        written_at = (remote.get("offsite") or {}).get("key")
        if written_at != key[:-len(MANIFEST_SUFFIX)]:
            raise BackupError("%s was signed for %s, not for this place: a copy from elsewhere does not count" % (where, written_at))
    return remote


def fetch(s3lib, s3, bucket, prefix, source, directory, warn=lambda message: None, sealer=None):
    """Bring an offsite backup (`latest`: the newest that did not fail a restore drill, or a file name under
    prefix) into directory, unless an identical copy is already there, and return its local manifest. With
    sealer, only manifests it signed count (for `latest`, the others are skipped with a warning) and the copy
    is decrypted. The checksum is checked by the caller."""
    if source == "latest":
        candidates, refused = [], []
        for key in [o["Key"] for o in s3lib.list_keys(s3, bucket, prefix) if o["Key"].endswith(MANIFEST_SUFFIX)]:
            try:
                candidates.append((_remote_manifest(s3lib, s3, bucket, key, sealer), key))
            except BackupError as exc:
                refused.append(str(exc))
        if refused:
            warn("latest skipped %d manifest(s) under s3://%s/%s: %s" % (len(refused), bucket, prefix, "; ".join(refused[:3])))
        candidates.sort(key=lambda c: (c[0].get("finished_at", ""), c[0].get("file", "")), reverse=True)
        chosen = newest([m for m, _k in candidates], warn)
        if chosen is None:
            raise BackupError("there is no backup manifest under s3://%s/%s that %spassed its drills"
                              % (bucket, prefix, "the offsite key signed and that " if sealer else ""))
        remote, key = [(m, k) for m, k in candidates if m is chosen][0]
    else:
        key = prefix + os.path.basename(source) + ("" if source.endswith(MANIFEST_SUFFIX) else MANIFEST_SUFFIX)
        remote = _remote_manifest(s3lib, s3, bucket, key, sealer)
    path = os.path.join(directory, check_name(remote["file"]))
    # A local manifest that survived its file is this host's word for what the backup is: the bucket's must agree.
    local = read_manifest(manifest_path(path)) if os.path.lexists(manifest_path(path)) else None
    if local and local["sha256"] != remote["sha256"]:
        raise BackupError("the local manifest %s names sha256 %s, s3://%s/%s names %s: nothing was downloaded or overwritten; "
                          "find out which is right before restoring either" % (local["manifest"], local["sha256"], bucket, key,
                                                                               remote["sha256"]))
    if not os.path.lexists(path):
        s3lib.download(s3, bucket, key[:-len(MANIFEST_SUFFIX)], path, expected=remote["sha256"], sealer=sealer)
    elif files.sha256_file(path, open_regular(path, "the local backup"))[0] != remote["sha256"]:
        raise BackupError("%s is a local backup of the same name with other contents than s3://%s/%s names: nothing was "
                          "overwritten. Restore it by name without offsite, or move it aside to bring the offsite copy"
                          % (path, bucket, key))
    if local:
        return local
    files.write_json(manifest_path(path), remote)
    return read_manifest(manifest_path(path))
