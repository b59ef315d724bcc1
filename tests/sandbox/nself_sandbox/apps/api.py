"""nFamily API service stand-in (backend/services/api): /health and /ready are public, every other
path needs a Bearer JWT signed with JWT_SECRET. Routes: audit read and media upload.

Unlike upstream (whose upload route has a TODO), the upload really writes to the object store,
at <ENV>/<family_id>/family/media/<uuid>/<file>, so storage runbooks see real objects.
"""
import email.parser
import email.policy
import hashlib
import json
import os
import uuid

import boto3
import botocore.config
import botocore.exceptions

from . import common

MAX_UPLOAD = 50 * 1024 * 1024


def s3_client():
    return boto3.client(
        "s3", endpoint_url="http://%s:%s" % (os.environ.get("MINIO_ENDPOINT", "minio"), os.environ.get("MINIO_PORT", "9000")),
        aws_access_key_id=os.environ.get("MINIO_ROOT_USER"), aws_secret_access_key=os.environ.get("MINIO_ROOT_PASSWORD"),
        region_name=os.environ.get("S3_REGION") or "us-east-1",
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=3))


def _member(req, claims):
    family_id = req.headers.get("X-Family-Id")
    if not family_id:
        req.error(400, "MISSING_FAMILY_ID", "X-Family-Id header is required")
        return None
    try:
        uuid.UUID(family_id)
    except ValueError:
        req.error(400, "VALIDATION_ERROR", "X-Family-Id must be a UUID")
        return None
    row = common.query("SELECT role::text AS role FROM public.family_members WHERE family_id = %s AND user_id = %s "
                       "AND lifecycle_state = 'active'", (family_id, claims["sub"]), one=True)
    if row is None:
        req.error(403, "NOT_A_MEMBER", "Not an active member of this family")
        return None
    return family_id


def audit(req):
    claims = req.bearer_claims()
    if claims is None:
        return None
    family_id = _member(req, claims)
    if family_id is None:
        return None
    events = common.query("SELECT id, event_type, actor_id, subject_type, subject_id, created_at FROM public.audit_events "
                          "WHERE family_id = %s ORDER BY created_at DESC LIMIT 50", (family_id,))
    return req.send_json(200, {"data": {"events": events}})


def _multipart_file(req):
    ctype = req.headers.get("Content-Type", "")
    if not ctype.startswith("multipart/form-data"):
        return None
    raw = b"Content-Type: " + ctype.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + req.read_body()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_filename() or "upload.bin", part.get_content_type(), part.get_payload(decode=True) or b""
    return None


def upload(req):
    claims = req.bearer_claims()
    if claims is None:
        return None
    if os.environ.get("DEMO_MODE"):
        return req.error(403, "DEMO_MODE", "Write operations are disabled in demo mode")
    if req.behaves("broken_upload"):
        req.read_body()
        return req.error(500, "INTERNAL_ERROR", "storage_path is not defined")
    if int(req.headers.get("Content-Length") or 0) > MAX_UPLOAD:
        return req.error(413, "FILE_TOO_LARGE", "Files are limited to 50 MB")
    family_id = _member(req, claims)
    if family_id is None:
        return None
    parsed = _multipart_file(req)
    if parsed is None:
        return req.error(400, "VALIDATION_ERROR", "multipart field 'file' is required")
    name, mime, data = parsed
    checksum = hashlib.sha256(data).hexdigest()
    existing = common.query("SELECT id FROM public.media_items WHERE family_id = %s AND checksum_sha256 = %s",
                            (family_id, checksum), one=True)
    if existing:
        return req.send_json(200, {"data": {"media_item_id": str(existing["id"]), "status": "already_exists"}})
    key = "%s/%s/family/media/%s/%s" % (os.environ.get("ENV") or "dev", family_id, uuid.uuid4(), os.path.basename(name))
    try:
        s3_client().put_object(Bucket=os.environ.get("S3_BUCKET"), Key=key, Body=data, ContentType=mime,
                               Metadata={"sha256": checksum})
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        common.log("storage error: %s" % exc)
        return req.error(502, "STORAGE_ERROR", "Object storage is unavailable")
    item = common.query("INSERT INTO public.media_items (family_id, uploaded_by, file_name, mime_type, file_size, storage_path, "
                        "checksum_sha256, processing_status) VALUES (%s, %s, %s, %s, %s, %s, %s, 'completed') RETURNING id",
                        (family_id, claims["sub"], name, mime, len(data), key, checksum), one=True, commit=True)
    common.query("INSERT INTO public.audit_events (family_id, event_type, actor_id, subject_id, subject_type, new_state) "
                 "VALUES (%s, 'media.uploaded', %s, %s, 'media_item', %s)",
                 (family_id, claims["sub"], str(item["id"]), json.dumps({"storage_path": key})), commit=True)
    return req.send_json(201, {"data": {"media_item_id": str(item["id"]), "storage_path": key, "checksum": checksum,
                                        "status": "completed"}})


class ApiHandler(common.Handler):
    service = "api"
    routes = {("GET", "/api/audit"): audit, ("POST", "/api/media/upload"): upload}


if __name__ == "__main__":
    common.serve(ApiHandler, os.environ.get("PORT") or os.environ.get("API_SERVICE_PORT") or 4001)
