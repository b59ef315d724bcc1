# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""Every file the collection writes on a host goes through here: whole files are replaced
atomically (temp file in the same directory, fsync, rename, directory fsync), streamed files are
written to a partial file that only becomes the real one when complete, and files about to be
replaced can be copied to a 0600 backup first. A reader never sees half a file, and a killed
writer leaves only a partial file, which `abandoned_partials` finds once no process holds it open.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import json
import os
import shutil
import tempfile
import time

PARTIAL_PREFIX = "."
PARTIAL_SUFFIX = ".partial"
LEGACY_PARTIAL_PREFIX = ".partial."  # base backups' partial files before 2026-11-29


def ensure_dir(path, mode=0o700):
    """Create path, and each missing parent, with mode (os.makedirs gives the parents the umask's mode,
    so /var/lib/nfamily-ops made on the way to its locks/ would be world-readable)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        ensure_dir(parent, mode)
    try:
        os.mkdir(path, mode)
    except OSError as exc:
        if exc.errno != errno.EEXIST or not os.path.isdir(path):
            raise


def fsync_dir(directory):
    fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path, content, mode=0o600, keep_owner=True):
    """Replace path with content (str or bytes): a temp file in the same directory with mode, fsync,
    rename, directory fsync. The owner of the file it replaces is kept when keep_owner."""
    directory = os.path.dirname(path) or "."
    ensure_dir(directory)
    owner = os.stat(path) if keep_owner and os.path.exists(path) else None
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content.encode("utf-8") if not isinstance(content, bytes) else content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, owner.st_uid, owner.st_gid)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def write_json(path, data, mode=0o600, keep_owner=True):
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n", mode, keep_owner)


def backup_copy(path, now):
    """Copy path to `<path>.<UTC time>.bak` (0600 and the owner of path, never overwriting an older backup)
    and return that path. Run as root through become, the copy of the project owner's file stays theirs."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    backup = "%s.%s.bak" % (path, stamp)
    while os.path.exists(backup):
        backup = "%s.%s-%d.bak" % (path, stamp, int(time.time() * 1000) % 1000)
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    owner = os.stat(path)
    if os.geteuid() == 0:
        os.fchown(fd, owner.st_uid, owner.st_gid)
    with open(path, "rb") as source, os.fdopen(fd, "wb") as target:
        shutil.copyfileobj(source, target)
        target.flush()
        os.fsync(target.fileno())
    return backup


def partial_path(path):
    directory, name = os.path.split(path)
    return os.path.join(directory, PARTIAL_PREFIX + name + PARTIAL_SUFFIX)


def commit(partial, dest):
    """Give a complete partial file its name (rename, directory fsync)."""
    os.rename(partial, dest)
    fsync_dir(os.path.dirname(dest))


class PartialFile(object):
    """A file written in full before it exists under its name:

        with PartialFile(dest) as part:
            stream into part.handle; part.sync(); check part.path
        # here dest exists, complete; after an exception only nothing is left
    """

    def __init__(self, path, mode=0o600):
        self.dest = path
        self.path = partial_path(path)
        self.mode = mode
        self.handle = None

    def __enter__(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode)
        self.handle = os.fdopen(fd, "wb")
        return self

    def sync(self):
        """Flush to disk, so that the partial file can be read back before it is kept."""
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def __exit__(self, exc_type, exc, traceback):
        try:
            if exc_type is None:
                self.sync()
            self.handle.close()
            if exc_type is None:
                commit(self.path, self.dest)
        finally:
            if os.path.exists(self.path):
                os.unlink(self.path)
        return False


def open_paths(proc="/proc"):
    """Every path some process on this host holds open (that this process may see), or None without /proc."""
    if not os.path.isdir(proc):
        return None
    paths = set()
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        fd_dir = os.path.join(proc, pid, "fd")
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in names:
            try:
                paths.add(os.readlink(os.path.join(fd_dir, fd)))
            except OSError:
                continue
    return paths


def abandoned_partials(directory, max_age_s=3600, proc="/proc"):
    """Partial files in directory that no process is writing any more: none holds them open (where
    /proc tells), or, where it cannot tell, untouched for max_age_s seconds."""
    if not os.path.isdir(directory):
        return []
    held = open_paths(proc)
    found = []
    for name in os.listdir(directory):
        if not (name.startswith(PARTIAL_PREFIX) and name.endswith(PARTIAL_SUFFIX) or name.startswith(LEGACY_PARTIAL_PREFIX)):
            continue
        path = os.path.join(directory, name)
        if held is not None:
            if os.path.realpath(path) not in held:
                found.append(path)
        elif time.time() - os.path.getmtime(path) > max_age_s:
            found.append(path)
    return sorted(found)


def sha256_file(path, handle=None):
    """(sha256, size) of the file at path, or of what handle (open, binary) reads."""
    digest, size = hashlib.sha256(), 0
    with handle or open(path, "rb") as source:
        for chunk in iter(lambda: source.read(1024 * 1024), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
