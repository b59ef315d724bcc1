# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  project_dir:
    description:
      - The nself project directory; connection settings not given come from its env cascade (C(S3_ACCESS_KEY) and
        C(S3_SECRET_KEY), else C(MINIO_ROOT_USER) and C(MINIO_ROOT_PASSWORD); C(S3_REGION) or C(MINIO_REGION); the
        endpoint C(http://127.0.0.1:<MINIO_PORT>), the minio service as seen from the host).
    type: path
  environment:
    description: The env cascade to read (V(dev), V(staging), V(prod)); default the C(ENV=) of the project's C(.env).
    type: str
    choices: [dev, staging, prod]
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
requirements:
  - boto3 on the managed host (C(python3-boto3) on Debian).
notes:
  - Objects are addressed path-style and checksummed only when required (new botocore's CRC headers are refused by
    MinIO-like servers). Integrity is judged by the sha256 kept in the object's metadata, never by an ETag.
"""
