# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  offsite:
    description:
      - The object store that holds offsite copies of the backups (the project's MinIO by default). Connection settings
        not given come from the env cascade (C(S3_ACCESS_KEY)/C(S3_SECRET_KEY), else C(MINIO_ROOT_USER)/C(MINIO_ROOT_PASSWORD);
        C(S3_REGION); the endpoint C(http://127.0.0.1:<MINIO_PORT>)).
      - Objects are addressed path-style and checksummed only when required, which MinIO-like servers need. Integrity is
        judged by the sha256 kept in the object's metadata and in the manifest, never by an ETag.
      - Copies are encrypted on the host with O(offsite.encryption_key) (AES-256-GCM, bound to the file name) and their
        manifests signed with it (HMAC-SHA256), so whoever can read the bucket cannot read a backup, and whoever can write
        it cannot make a restore take a backup the key did not seal. With a key, only signed manifests and sealed copies
        are brought back.
    type: dict
    suboptions:
      bucket:
        description: Bucket of the offsite copies.
        type: str
        required: true
      prefix:
        description: Key prefix of the offsite copies.
        type: str
        default: db/
      endpoint_url:
        description: S3 endpoint URL; V(https://), or V(http://) only to this host's loopback address (refused otherwise).
        type: str
      access_key:
        description: Access key.
        type: str
      secret_key:
        description: Secret key.
        type: str
      region:
        description: Region; C(us-east-1) when neither given nor in the env files.
        type: str
      ca_bundle:
        description: CA bundle to verify the endpoint's certificate with.
        type: path
      validate_certs:
        description: Whether to verify the endpoint's TLS certificate.
        type: bool
        default: true
      encryption_key:
        description:
          - The operator's offsite key, 32 random bytes in base64 (C(openssl rand -base64 32)). Keep it off the hosts'
            backups and beside the database password; without it no offsite copy can be restored.
          - Required unless O(offsite.allow_plaintext=true).
        type: str
      allow_plaintext:
        description:
          - Send copies unencrypted and manifests unsigned, and bring back such copies (a warning says so). Only for a store
            that no one else can read or write, or to restore copies made before the key was set.
        type: bool
        default: false
requirements:
  - boto3 on the managed host when O(offsite) is used (C(python3-boto3) on Debian), and cryptography with
    O(offsite.encryption_key) (C(python3-cryptography)).
"""
