# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""The operator's offsite key: 32 random bytes (base64) that only the operator and the hosts hold.
From it, HKDF-SHA256 derives one key that encrypts the offsite copies (AES-256-GCM, streamed: the
tag authenticates the whole object, and a plaintext is only kept after the tag checked), one that
authenticates their manifests (HMAC-SHA256), and a public key id that names which key was used.
Whoever can write the bucket can then neither read a backup nor make `latest` restore one the
operator's key did not seal. All primitives are the `cryptography` library's.

An encrypted object is MAGIC, a 12-byte nonce, the ciphertext, and the 16-byte GCM tag; the
associated data binds the object's key (prefix and file name), so an object copied under another
name or prefix (another environment's, with the same key) fails. The bucket is not bound, so a
replica of the bucket restores.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import hmac
import json
import os

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.backends import default_backend
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc

    class InvalidTag(Exception):
        """Stands in for cryptography's, so that except clauses still parse without it."""

ALGORITHM = "AES-256-GCM"
MAC_ALGORITHM = "HMAC-SHA256"
MAGIC = b"NFOPS-OFFSITE-1\n"
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = len(MAGIC) + NONCE_BYTES + TAG_BYTES
MAX_SIZE = (1 << 36) - 32  # what one AES-GCM message may hold (NIST SP 800-38D: 2^39 - 256 bits)
AUTHENTICATION = "authentication"
NEW_KEY_HINT = "generate one with `openssl rand -base64 32` and keep it where the operator keeps the database password"


class OffsiteKeyError(Exception):
    """A key that is not one, a manifest it did not sign, or an object it did not seal."""


def from_offsite(offsite):
    """The OffsiteKey of an offsite option dict, or None when the operator allowed plaintext copies;
    neither is refused, since an unencrypted copy is a backup whoever reads the bucket can read."""
    if offsite.get("encryption_key"):
        return OffsiteKey(offsite["encryption_key"])
    if offsite.get("allow_plaintext"):
        return None
    raise OffsiteKeyError("offsite copies need the operator's key: set offsite.encryption_key (the roles read "
                          "NFAMILY_OFFSITE_KEY or nfamily_offsite_key); %s. Only for a store no one else can read or "
                          "write, allow_plaintext=true sends them unencrypted" % NEW_KEY_HINT)


def _derive(master, label, length=32):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=b"nfamily.ops offsite " + label,
                backend=default_backend()).derive(master)


class OffsiteKey(object):
    algorithm = ALGORITHM
    overhead = OVERHEAD
    max_size = MAX_SIZE
    error = OffsiteKeyError

    def __init__(self, text):
        if not HAS_CRYPTOGRAPHY:
            raise OffsiteKeyError("the cryptography library is required on the managed host to encrypt offsite copies "
                                  "(python3-cryptography on Debian): %s" % CRYPTOGRAPHY_IMPORT_ERROR)
        try:
            master = base64.b64decode((text or "").strip(), validate=True)
        except (binascii.Error, ValueError):
            master = b""
        if len(master) != 32:
            raise OffsiteKeyError("the offsite encryption_key must be 32 random bytes in base64 (44 characters); " + NEW_KEY_HINT)
        self._cipher_key = _derive(master, b"encryption v1")
        self._mac_key = _derive(master, b"manifest v1")
        self.key_id = binascii.hexlify(_derive(master, b"key id v1", 8)).decode()

    # ------------------------------------------------------------------ manifests

    def _mac(self, manifest):
        body = dict((k, v) for k, v in manifest.items() if k != AUTHENTICATION)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
        return hmac.new(self._mac_key, canonical, hashlib.sha256).hexdigest()

    def sign(self, manifest):
        """A copy of manifest with its authentication (key id and HMAC over everything else)."""
        signed = dict((k, v) for k, v in manifest.items() if k != AUTHENTICATION)
        signed[AUTHENTICATION] = {"algorithm": MAC_ALGORITHM, "key_id": self.key_id, "mac": self._mac(signed)}
        return signed

    def check(self, manifest, where):
        """Raise OffsiteKeyError unless this key signed manifest as it is now."""
        auth = manifest.get(AUTHENTICATION) if isinstance(manifest, dict) else None
        if not isinstance(auth, dict) or not auth.get("mac"):
            raise OffsiteKeyError("%s is not authenticated (no HMAC): it was not written with an offsite key, or someone "
                                  "who can write the bucket replaced it" % where)
        if auth.get("key_id") != self.key_id:
            raise OffsiteKeyError("%s was signed with offsite key %s, not with the key given (%s)" % (where, auth.get("key_id"), self.key_id))
        if not hmac.compare_digest(str(auth["mac"]).encode("utf-8"), self._mac(manifest).encode()):
            raise OffsiteKeyError("%s fails its HMAC: it was changed after the offsite key signed it" % where)

    # ------------------------------------------------------------------ objects

    def _cipher(self, nonce):
        return Cipher(algorithms.AES(self._cipher_key), modes.GCM(nonce), backend=default_backend())

    def encrypting_reader(self, handle, object_key):
        return _EncryptingReader(self, handle, object_key)

    def decrypting_writer(self, handle, object_key):
        return _DecryptingWriter(self, handle, object_key)


def _associated_data(header, object_key):
    return header + object_key.encode("utf-8")


class _EncryptingReader(object):
    """A read-only, non-seekable file object yielding the sealed form of handle's contents."""

    def __init__(self, key, handle, object_key):
        nonce = os.urandom(NONCE_BYTES)
        self._handle = handle
        self._encryptor = key._cipher(nonce).encryptor()
        self._encryptor.authenticate_additional_data(_associated_data(MAGIC + nonce, object_key))
        self._pending = MAGIC + nonce
        self._done = False

    def readable(self):
        return True

    def seekable(self):
        return False

    def read(self, size=-1):
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        while len(self._pending) < size and not self._done:
            chunk = self._handle.read(max(size - len(self._pending), 1 << 16))
            if chunk:
                self._pending += self._encryptor.update(chunk)
            else:
                self._pending += self._encryptor.finalize() + self._encryptor.tag
                self._done = True
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


class _DecryptingWriter(object):
    """A write-only, non-seekable file object that opens a sealed stream into handle and hashes the
    plaintext; finish() checks the tag, and only then is the plaintext good."""

    def __init__(self, key, handle, object_key):
        self._key = key
        self._handle = handle
        self._object_key = object_key
        self._decryptor = None
        self._buffer = b""
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self):
        return True

    def seekable(self):
        return False

    def write(self, data):
        self._buffer += data
        if self._decryptor is None:
            header = len(MAGIC) + NONCE_BYTES
            if len(self._buffer) < header:
                return len(data)
            if not self._buffer.startswith(MAGIC):
                raise OffsiteKeyError("the object is not an encrypted offsite copy")
            nonce = self._buffer[len(MAGIC):header]
            self._decryptor = self._key._cipher(nonce).decryptor()
            self._decryptor.authenticate_additional_data(_associated_data(self._buffer[:header], self._object_key))
            self._buffer = self._buffer[header:]
        if len(self._buffer) > TAG_BYTES:
            self._emit(self._decryptor.update(self._buffer[:-TAG_BYTES]))
            self._buffer = self._buffer[-TAG_BYTES:]
        return len(data)

    def _emit(self, plain):
        self._handle.write(plain)
        self.sha256.update(plain)
        self.size += len(plain)

    def finish(self):
        """The plaintext's sha256 once the tag checked; OffsiteKeyError otherwise."""
        if self._decryptor is None or len(self._buffer) != TAG_BYTES:
            raise OffsiteKeyError("the object is not an encrypted offsite copy, or it is truncated")
        try:
            self._emit(self._decryptor.finalize_with_tag(self._buffer))
        except InvalidTag:
            raise OffsiteKeyError("the object fails its authentication tag: it was changed, moved from another key or prefix, "
                                  "or sealed with another offsite key")
        return self.sha256.hexdigest()
