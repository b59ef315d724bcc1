# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to the nfamily.ops collection. It may change without notice.

"""The project's S3 store (MinIO under nself) through boto3, with the settings S3-compatible
servers need (anchors.md F.2): path-style addressing, region us-east-1 by default, checksums only
when required (botocore >= 1.36 otherwise sends CRC headers MinIO-likes reject), an optional CA
bundle. Connection settings come from the nself env cascade unless given. Files move with
boto3's managed transfer (multipart, streamed from disk), and integrity is judged by the sha256
kept in the object's metadata, never by an ETag.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re

from ansible_collections.nfamily.ops.plugins.module_utils import _files as files
from ansible_collections.nfamily.ops.plugins.module_utils import _nself_env as nenv
from ansible_collections.nfamily.ops.plugins.module_utils import _urls as urls

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
    from boto3.exceptions import Boto3Error
    from boto3.s3.transfer import TransferConfig
    from s3transfer.exceptions import RetriesExceededError
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc

    class BotoCoreError(Exception):
        """Stands in for botocore's, so that except clauses still parse without boto3."""

    class ClientError(Exception):
        """Stands in for botocore's."""

    class Boto3Error(Exception):
        """Stands in for boto3's."""

    class RetriesExceededError(Exception):
        """Stands in for s3transfer's."""


SHA256_META = "sha256"
ENCRYPTION_META = "encryption"
KEY_ID_META = "key-id"
PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 10000


class S3Error(Exception):
    """An S3 call that failed, or an object that is not what its metadata says."""


def s3_argument_options():
    """Options of a connection dict (offsite copies) or of a module's top level."""
    return dict(
        endpoint_url=dict(type="str"),
        access_key=dict(type="str", no_log=True),
        secret_key=dict(type="str", no_log=True),
        region=dict(type="str"),
        ca_bundle=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
    )


def offsite_argument_spec():
    options = s3_argument_options()
    options.update(bucket=dict(type="str", required=True), prefix=dict(type="str", default="db/"),
                   encryption_key=dict(type="str", no_log=True), allow_plaintext=dict(type="bool", default=False))
    return dict(type="dict", options=options)


def settings_from_env(env, given):
    """Connection settings: explicit values first, then the env cascade. From the host, the S3 API of
    the minio service is 127.0.0.1:MINIO_PORT (S3_ENDPOINT usually names the compose network's host)."""
    endpoint = given.get("endpoint_url") or "http://127.0.0.1:%s" % (env.get("MINIO_PORT") or "9000")
    access = given.get("access_key") or env.get("S3_ACCESS_KEY") or env.get("MINIO_ROOT_USER")
    secret = given.get("secret_key") or env.get("S3_SECRET_KEY") or env.get("MINIO_ROOT_PASSWORD")
    if not access or not secret:
        raise S3Error("no S3 credentials: set access_key and secret_key, or S3_ACCESS_KEY/S3_SECRET_KEY or "
                      "MINIO_ROOT_USER/MINIO_ROOT_PASSWORD in the project's env files")
    problem = urls.plain_http_problem(endpoint, "the S3 keys' signatures and every object")
    if problem:
        raise S3Error("endpoint_url %s; nothing was sent" % problem)
    return dict(endpoint_url=endpoint, access_key=access, secret_key=secret,
                region=given.get("region") or env.get("S3_REGION") or env.get("MINIO_REGION") or "us-east-1",
                ca_bundle=given.get("ca_bundle"), validate_certs=given.get("validate_certs", True))


def client(settings):
    if not HAS_BOTO3:
        raise S3Error("boto3 is required on the managed host (python3-boto3 on Debian): %s" % BOTO3_IMPORT_ERROR)
    options = dict(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"})
    try:
        config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required", **options)
    except TypeError:  # botocore < 1.36 has neither option, and sends no CRC headers
        config = Config(**options)
    verify = settings["ca_bundle"] or settings["validate_certs"]
    return boto3.client("s3", endpoint_url=settings["endpoint_url"], aws_access_key_id=settings["access_key"],
                        aws_secret_access_key=settings["secret_key"], region_name=settings["region"],
                        config=config, verify=verify)


def transfer_config(size=None):
    """boto3's own part size and concurrency (measured fastest against MinIO-like stores by `make bench`);
    files are read part by part, so memory stays at about max_concurrency parts. With size (a stream, whose
    size s3transfer cannot see), parts grow so that it fits in S3's 10000."""
    chunk = PART_SIZE
    if size is not None:
        chunk = max(PART_SIZE, -(-size // (MAX_PARTS - 1) // (1 << 20)) * (1 << 20))
    config = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=chunk, max_concurrency=10, use_threads=True)
    if size is not None:
        # A stream's parts are held in memory until uploaded, and this bounds them (and so the parts in flight):
        # s3transfer's default of 10 took the encrypted offsite copy to 208 MB of RSS; 2 keep it at 120 MB, as fast
        # against the store on the same machine (make bench).
        config.max_in_memory_upload_chunks = 2
    return config


def describe(exc):
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return "%s: %s" % (error.get("Code", "error"), error.get("Message", str(exc)))
    return str(exc)


def upload(s3, path, bucket, key, sha256, sealer=None):
    """Upload a file with its sha256 in the object's metadata, then confirm size and metadata. With
    sealer (an _offsite_key.OffsiteKey: encrypting_reader, algorithm, key_id, overhead, max_size), the
    object is the file encrypted on the way, bound to its key; the metadata names the encryption key,
    and its sha256 stays the plaintext's."""
    metadata = {SHA256_META: sha256}
    size = os.path.getsize(path)
    where = "s3://%s/%s" % (bucket, key)
    if sealer is not None and size > sealer.max_size:
        raise S3Error("%s is %d bytes, more than one %s object may seal (%d); nothing was sent"
                      % (path, size, sealer.algorithm, sealer.max_size))
    try:
        if sealer is None:
            s3.upload_file(path, bucket, key, ExtraArgs={"Metadata": metadata}, Config=transfer_config())
        else:
            metadata.update({ENCRYPTION_META: sealer.algorithm, KEY_ID_META: sealer.key_id})
            size += sealer.overhead
            with open(path, "rb") as handle:
                s3.upload_fileobj(sealer.encrypting_reader(handle, key), bucket, key,
                                  ExtraArgs={"Metadata": metadata}, Config=transfer_config(size))
        head = s3.head_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError, Boto3Error, RetriesExceededError, IOError, OSError) as exc:  # a managed transfer's, the file's
        raise S3Error("uploading %s to %s failed (%s)" % (path, where, describe(exc)))
    if head.get("ContentLength") != size or any(head.get("Metadata", {}).get(k) != v for k, v in metadata.items()):
        raise S3Error("%s does not match %s after the upload (size or metadata differ)" % (where, path))
    location = {"bucket": bucket, "key": key, "size": head["ContentLength"], SHA256_META: sha256}
    if sealer is not None:
        location["encryption"] = {"algorithm": sealer.algorithm, "key_id": sealer.key_id}
    return location


def download(s3, bucket, key, dest, expected=None, unchecked_ok=False, sealer=None):
    """Download an object to dest through a partial file (0600, removed on any failure), kept only if its
    sha256 is the one expected (a manifest's) and the one the object's metadata claims. An object that claims
    none, with nothing expected, is refused unless unchecked_ok. With sealer, the object must be one it
    encrypted under this key: it is decrypted on the way (decrypting_writer) and kept only once its tag
    checked. An encrypted object is refused without sealer. Returns (sha256, checked)."""
    where = "s3://%s/%s" % (bucket, key)
    failures = (BotoCoreError, ClientError, Boto3Error, RetriesExceededError, IOError, OSError) + ((sealer.error,) if sealer else ())
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        metadata = head.get("Metadata", {})
        encrypted_with = metadata.get(KEY_ID_META) if metadata.get(ENCRYPTION_META) else None
        if sealer is None and encrypted_with:
            raise S3Error("%s is encrypted with offsite key %s and no key was given: give that key (offsite.encryption_key "
                          "or NFAMILY_OFFSITE_KEY) to bring it back" % (where, encrypted_with))
        if sealer is not None and not encrypted_with:
            raise S3Error("%s is not encrypted: with an offsite key, only copies sealed with it are brought back" % where)
        if os.path.lexists(files.partial_path(dest)):  # a killed download's; a run holds its family's lock
            os.unlink(files.partial_path(dest))
        with files.PartialFile(dest) as part:
            if sealer is None:
                s3.download_fileobj(bucket, key, part.handle, Config=transfer_config())
                part.sync()
                digest = files.sha256_file(part.path)[0]
            else:
                writer = sealer.decrypting_writer(part.handle, key)
                s3.download_fileobj(bucket, key, writer, Config=transfer_config())
                digest = writer.finish()
            claims = [(what, value) for what, value in (("its manifest", expected), ("its metadata", metadata.get(SHA256_META)))
                      if value]
            wrong = ["%s says %s" % (what, value) for what, value in claims if value != digest]
            if wrong or not (claims or unchecked_ok):
                raise S3Error("%s downloaded with sha256 %s, but %s: not kept" % (
                    where, digest, ", ".join(wrong) or "it carries no sha256 metadata to check it against"))
    except failures as exc:
        if isinstance(exc, S3Error):
            raise
        raise S3Error("downloading %s failed (%s): nothing was kept" % (where, describe(exc)))
    return digest, bool(claims)


def list_keys(s3, bucket, prefix):
    """Every object under prefix as dicts (Key, Size, LastModified), paginated."""
    keys = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(page.get("Contents", []))
    except (BotoCoreError, ClientError) as exc:
        raise S3Error("listing s3://%s/%s failed (%s)" % (bucket, prefix, describe(exc)))
    return keys


def get_bytes(s3, bucket, key):
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise S3Error("reading s3://%s/%s failed (%s)" % (bucket, key, describe(exc)))


def put_bytes(s3, bucket, key, data):
    """A small object (a manifest), with its sha256 in the metadata as every object the collection writes."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata={SHA256_META: hashlib.sha256(data).hexdigest()})
    except (BotoCoreError, ClientError) as exc:
        raise S3Error("writing s3://%s/%s failed (%s)" % (bucket, key, describe(exc)))


# ---------------------------------------------------------------- the MinIO modules' connection

BUCKET_RE = re.compile(r"^(?!xn--)(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def minio_argument_spec():
    """Top-level connection options of the minio_* modules; what is not given comes from the env cascade."""
    spec = s3_argument_options()
    spec.update(project_dir=dict(type="path"), environment=dict(type="str", choices=["dev", "staging", "prod"]))
    return spec


def module_settings(params):
    """Connection settings of a minio_* module: explicit options, then the project's env cascade."""
    env = {}
    if params.get("project_dir"):
        if not os.path.isdir(params["project_dir"]):
            raise S3Error("project_dir %s does not exist; set it to the nself project, or give endpoint_url, access_key "
                          "and secret_key" % params["project_dir"])
        env_name = params.get("environment") or nenv.detect_environment(params["project_dir"])
        env, _files = nenv.load_cascade(params["project_dir"], env_name)
    return settings_from_env(env, params), env


def check_bucket_name(name):
    if not BUCKET_RE.match(name or ""):
        raise S3Error("bucket name %r is not valid: 3 to 63 lower-case letters, digits, '.' or '-', starting and ending "
                      "with a letter or digit" % name)
    return name


def bucket_exists(s3, bucket, endpoint):
    """Whether the bucket exists. A missing bucket and an endpoint that is no S3 server both answer
    404; anything else (credentials, no answer) raises S3Error."""
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise S3Error("checking bucket %s at %s failed (%s): check the credentials and endpoint_url"
                      % (bucket, endpoint, describe(exc)))
    except BotoCoreError as exc:
        raise S3Error("cannot reach the S3 endpoint %s (%s)" % (endpoint, describe(exc)))


def require_writable(s3, bucket, prefix, endpoint, probe=True):
    """Before long work that ends in a write to bucket, fail fast unless the bucket takes the write:
    MinIO and S3 refuse a write into a missing bucket with NoSuchBucket only when it comes. With probe,
    an empty object under prefix is put (what the work will do, so an add-only key passes) and removed;
    without (check mode), only the bucket's existence is asked. Raises S3Error naming the bucket;
    returns warnings (a probe object the key may not remove, a key that may not ask)."""
    missing = "bucket %s does not exist at %s; create it (nfamily.ops.minio_bucket) or name an existing one" % (bucket, endpoint)
    if not probe:
        try:
            if not bucket_exists(s3, bucket, endpoint):
                raise S3Error(missing)
        except S3Error as exc:
            if "AccessDenied" not in str(exc) and "403" not in str(exc):
                raise
            return ["the credentials may not check bucket %s (%s); the run checks it with a write" % (bucket, exc)]
        return []
    key = prefix + ".nfamily-ops-write-probe"
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucket":
            raise S3Error(missing)
        raise S3Error("bucket %s at %s does not take a write (%s); check the store's disk and the credentials' policy"
                      % (bucket, endpoint, describe(exc)))
    except BotoCoreError as exc:
        raise S3Error("cannot reach the S3 endpoint %s (%s)" % (endpoint, describe(exc)))
    try:
        s3.delete_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        return ["the write probe s3://%s/%s stays: the credentials may not delete (%s)" % (bucket, key, describe(exc))]
    return []


def error_code(exc):
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
