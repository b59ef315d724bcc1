"""Image build step: lay out /opt/nself-family/backend like a production host (a checkout of the
repository at a release tag, releases.py), bring the stack up once through the nself stand-in,
apply the 13 migrations, load the fixture and seed the object store.

Secrets are generated here, per image build; nothing secret is kept in the repository.
"""
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys

import bcrypt
import boto3
import botocore.config

from . import envfiles, faults, paths, releases

PROJECT = paths.DEFAULT_PROJECT
FIXTURE = os.path.join(os.path.dirname(paths.SHARE_DIR), "fixture")
# Test-only account password shared by every seeded user (documented in tests/sandbox/README.md).
USER_PASSWORD = "family-sandbox-pass"

FAMILY_DEMO = "00000000-0000-0000-0000-000000000001"
FAMILY_OTHER = "20000000-0000-4000-8000-000000000002"


def uid(prefix, n):
    return "%s0000000-0000-4000-8000-%012d" % (prefix, n)


USERS = [  # n, email, display name, family, role, active
    (1, "owner@nself.org", "Olivia Owner", FAMILY_DEMO, "OWNER", True),
    (2, "admin@nself.org", "Adam Admin", FAMILY_DEMO, "ADMIN", True),
    (3, "user@nself.org", "Uma User", FAMILY_DEMO, "ADULT_MEMBER", True),
    (4, "adult@nself.org", "Aaron Adult", FAMILY_DEMO, "ADULT_MEMBER", True),
    (5, "youth@nself.org", "Yara Youth", FAMILY_DEMO, "YOUTH_MEMBER", True),
    (6, "child@nself.org", "Chris Child", FAMILY_DEMO, "CHILD_MEMBER", True),
    (7, "owner@other.family", "Otto Other", FAMILY_OTHER, "OWNER", True),
    (8, "disabled@nself.org", "Dora Disabled", None, None, False),
    (9, "ops-verify@nself.org", "Ops Verification", None, None, True),
]
DEVICES = [  # n, family, user n, name, type, state
    (1, FAMILY_DEMO, 1, "Living Room TV", "tv", "pending"),
    (2, FAMILY_DEMO, 1, "Home Antbox", "antbox", "enrolled"),
    (3, FAMILY_DEMO, 2, "Family Desktop", "desktop", "enrolled"),
    (4, FAMILY_DEMO, 3, "Old Phone", "mobile", "revoked"),
    (5, FAMILY_OTHER, 7, "Other Antserver", "antserver", "enrolled"),
]
MEDIA = [  # n, family, uploader n, file name, mime, size
    (1, FAMILY_DEMO, 1, "beach.jpg", "image/jpeg", 48000),
    (2, FAMILY_DEMO, 2, "birthday.mp4", "video/mp4", 160000),
    (3, FAMILY_DEMO, 3, "recipe-card.png", "image/png", 24000),
    (4, FAMILY_DEMO, 1, "grandpa-letter.pdf", "application/pdf", 12000),
    (5, FAMILY_OTHER, 7, "garden.jpg", "image/jpeg", 32000),
]


def q(value):
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'%s'" % str(value).replace("'", "''")


def write_project(env_name="prod"):
    for sub in ("hasura/migrations/default", "backups", "postgres/init", "nginx", "seeds"):
        os.makedirs(os.path.join(PROJECT, sub), exist_ok=True)
    jwt_key = secrets.token_hex(32)
    files = {
        ".env.dev": {
            "PROJECT_NAME": "nself-family", "COMPOSE_PROJECT_NAME": "nself-family", "PROJECT_DESCRIPTION": "nFamily backend",
            "BASE_DOMAIN": "local.nself.org", "ENV": "dev", "ADMIN_EMAIL": "ops@nself.org",
            "POSTGRES_ENABLED": "true", "HASURA_ENABLED": "true", "AUTH_ENABLED": "true", "STORAGE_ENABLED": "true",
            "MINIO_ENABLED": "true", "REDIS_ENABLED": "true", "NSELF_ADMIN_ENABLED": "false",
            "POSTGRES_VERSION": "16-alpine", "POSTGRES_PORT": "5432", "POSTGRES_DB": "nself_family", "POSTGRES_USER": "postgres",
            "POSTGRES_PASSWORD": "dev-password-change-me", "POSTGRES_MAX_CONNECTIONS": "50",
            "HASURA_GRAPHQL_ADMIN_SECRET": "dev-admin-secret-change-me",
            "HASURA_GRAPHQL_JWT_SECRET": '{"type":"HS256","key":"dev-jwt-secret-min-32-chars-required!!"}',
            "JWT_SECRET": "dev-jwt-secret-min-32-chars-required", "JWT_ACCESS_TOKEN_EXPIRES_IN": "900",
            "JWT_REFRESH_TOKEN_EXPIRES_IN": "604800", "BCRYPT_ROUNDS": "10",
            "MINIO_PORT": "9000", "MINIO_CONSOLE_PORT": "9001", "MINIO_ROOT_USER": "minioadmin", "MINIO_ROOT_PASSWORD": "minioadmin",
            "MINIO_DEFAULT_BUCKETS": "nself-family-dev", "S3_BUCKET": "nself-family-dev", "S3_REGION": "us-east-1",
            "REDIS_PORT": "6379", "REDIS_PASSWORD": "dev-redis-password",
            "AUTH_SERVICE_PORT": "4000", "API_SERVICE_PORT": "4001",
            "CS_1": "auth:fastify:4000", "CS_2": "api:fastify:4001", "CS_3": "scheduler:worker:0",
        },
        ".env.prod": {
            "ENV": "prod", "BASE_DOMAIN": "family.sandbox.test", "SSL_ENABLED": "true",
            "S3_BUCKET": "nself-family-prod", "MINIO_DEFAULT_BUCKETS": "nself-family-prod,nf-backups",
        },
        ".env.secrets": {
            "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
            "HASURA_GRAPHQL_ADMIN_SECRET": secrets.token_urlsafe(36),
            "JWT_SECRET": jwt_key,
            "HASURA_GRAPHQL_JWT_SECRET": '{"type":"HS256","key":"%s"}' % jwt_key,
            "MINIO_ROOT_USER": "nfamily-admin",
            "MINIO_ROOT_PASSWORD": secrets.token_urlsafe(24),
            "REDIS_PASSWORD": secrets.token_urlsafe(18),
        },
        ".env": {"ENV": env_name, "PROJECT_NAME": "nself-family"},
    }
    for name, values in files.items():
        envfiles.write_env_file(os.path.join(PROJECT, name), values, mode=0o600 if name == ".env.secrets" else 0o644)
    with open(os.path.join(PROJECT, "postgres", "init", "00-init.sql"), "w", encoding="utf-8") as handle:
        handle.write("CREATE SCHEMA IF NOT EXISTS auth;\nCREATE SCHEMA IF NOT EXISTS storage;\n"
                     "CREATE EXTENSION IF NOT EXISTS pgcrypto;\nCREATE EXTENSION IF NOT EXISTS \"uuid-ossp\";\n")
    target = os.path.join(PROJECT, "hasura", "migrations", "default")
    for name in sorted(os.listdir(os.path.join(FIXTURE, "migrations"))):
        shutil.copytree(os.path.join(FIXTURE, "migrations", name), os.path.join(target, name), dirs_exist_ok=True)


def seed_sql():
    digest = bcrypt.hashpw(USER_PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    lines = ["BEGIN;",
             "INSERT INTO public.apps (app_key, name) VALUES ('nfamily', 'nFamily'), ('nchat', 'nChat'), ('ntv', 'nTV');"]
    for n, email, name, _family, _role, active in USERS:
        lines.append("INSERT INTO public.users (id, email, password_hash, display_name, email_verified, is_active) "
                     "VALUES (%s, %s, %s, %s, true, %s);" % (q(uid("1", n)), q(email), q(digest), q(name), q(active)))
        lines.append("INSERT INTO public.user_app_roles (user_id, app_id, role) SELECT %s, id, %s FROM public.apps "
                     "WHERE app_key = 'nfamily';" % (q(uid("1", n)), q("admin" if n == 1 else "user")))
    lines.append("INSERT INTO public.families (id, name, description, settings, created_by) VALUES "
                 "(%s, 'The Nself Family', 'Demo family', '{\"timezone\": \"America/New_York\", \"locale\": \"en-US\", "
                 "\"islamic_mode\": false}', %s), (%s, 'The Other Family', 'Second family', '{\"timezone\": \"Europe/Berlin\", "
                 "\"locale\": \"de-DE\", \"islamic_mode\": false}', %s);" % (q(FAMILY_DEMO), q(uid("1", 1)), q(FAMILY_OTHER), q(uid("1", 7))))
    for n, _email, name, family, role, _active in USERS:
        if family:
            lines.append("INSERT INTO public.family_members (family_id, user_id, role, display_name) VALUES (%s, %s, %s, %s);"
                         % (q(family), q(uid("1", n)), q(role), q(name)))
    for n, family, user, name, kind, state in DEVICES:
        bootstrap = secrets.token_hex(32) if state == "pending" else None
        credential = secrets.token_hex(48) if state == "enrolled" else None
        heartbeat = "now() - interval '%d minutes'" % n if state == "enrolled" else "NULL"
        metrics = '{"cpu": %d, "temperature": %d, "uptime": %d}' % (10 + n, 40 + n, 3600 * n) if state == "enrolled" else "{}"
        lines.append("INSERT INTO public.registered_devices (id, family_id, user_id, device_name, device_type, bootstrap_token, "
                     "credential, is_trusted, is_revoked, last_heartbeat_at, health_metrics) VALUES (%s, %s, %s, %s, %s, %s, %s, "
                     "%s, %s, %s, %s);" % (
                         q(uid("3", n)), q(family), q(uid("1", user)), q(name), q(kind), q(bootstrap),
                         q(credential), q(state != "pending"), q(state == "revoked"), heartbeat, q(metrics)))
    chain = uid("5", 1)
    for n, user, revoked in ((1, 1, False), (2, 1, False), (3, 1, True), (4, 2, False), (5, 3, False)):
        session = uid("4", n)
        lines.append("INSERT INTO auth.sessions (id, user_id, ip_address, user_agent) VALUES (%s, %s, '10.0.0.%d', 'fixture');"
                     % (q(session), q(uid("1", user)), n))
        lines.append("INSERT INTO auth.refresh_tokens (user_id, token_hash, session_id, family_chain, expires_at, revoked_at) "
                     "VALUES (%s, %s, %s, %s, now() + interval '7 days', %s);" % (
                         q(uid("1", user)), q(hashlib.sha256(secrets.token_hex(32).encode()).hexdigest()), q(session),
                         q(chain if user == 1 else uid("5", n)), "now() - interval '1 day'" if revoked else "NULL"))
    for n, family, user, name, mime, size in MEDIA:
        lines.append("INSERT INTO public.media_items (id, family_id, uploaded_by, file_name, mime_type, file_size, storage_path, "
                     "checksum_sha256, processing_status) VALUES (%s, %s, %s, %s, %s, %d, %s, %s, 'completed');" % (
                         q(uid("6", n)), q(family), q(uid("1", user)), q(name), q(mime), size,
                         q(media_key(n, family, name)), q(hashlib.sha256(media_bytes(n, size)).hexdigest())))
    for event, family, actor, subject in (("family.created", FAMILY_DEMO, 1, FAMILY_DEMO), ("family.created", FAMILY_OTHER, 7, FAMILY_OTHER),
                                          ("member.joined", FAMILY_DEMO, 2, uid("1", 2)), ("device.enrolled", FAMILY_DEMO, 1, uid("3", 2)),
                                          ("device.revoked", FAMILY_DEMO, 3, uid("3", 4))):
        lines.append("INSERT INTO public.audit_events (family_id, event_type, actor_id, subject_id, subject_type) VALUES "
                     "(%s, %s, %s, %s, %s);" % (q(family), q(event), q(uid("1", actor)), q(subject), q(event.split(".", maxsplit=1)[0])))
    lines.append("INSERT INTO public.posts (family_id, author_id, post_type, body) VALUES (%s, %s, 'text', 'Welcome to the family!'), "
                 "(%s, %s, 'photo', 'Beach day');" % (q(FAMILY_DEMO), q(uid("1", 1)), q(FAMILY_DEMO), q(uid("1", 2))))
    lines.append("INSERT INTO scheduler.jobs (job_type, run_at) VALUES ('token.cleanup', now()), ('audit.cleanup', now() + interval '1 day');")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def media_key(n, family, name):
    return "prod/%s/family/media/%s/%s" % (family, uid("7", n), name)


def media_bytes(n, size):
    block = hashlib.sha256(b"media-%d" % n).digest()
    return (block * (size // len(block) + 1))[:size]


def seed_objects():
    env = envfiles.load_cascade(PROJECT, "prod")
    client = boto3.client("s3", endpoint_url="http://127.0.0.1:9000", aws_access_key_id=env["MINIO_ROOT_USER"],
                          aws_secret_access_key=env["MINIO_ROOT_PASSWORD"], region_name="us-east-1",
                          config=botocore.config.Config(s3={"addressing_style": "path"}))
    for bucket in env["MINIO_DEFAULT_BUCKETS"].split(","):
        client.create_bucket(Bucket=bucket)
    for n, family, _user, name, mime, size in MEDIA:
        data = media_bytes(n, size)
        client.put_object(Bucket=env["S3_BUCKET"], Key=media_key(n, family, name), Body=data, ContentType=mime,
                          Metadata={"sha256": hashlib.sha256(data).hexdigest()})


def nself(*args, stdin=None):
    proc = subprocess.run(["nself"] + list(args), cwd=PROJECT, input=stdin, capture_output=True, text=True, check=False)
    sys.stdout.write(proc.stdout + proc.stderr)
    return proc.returncode


def main():
    write_project()
    releases.main()
    os.makedirs(paths.MINIO_DATA, exist_ok=True)
    os.makedirs(paths.REDIS_DATA, exist_ok=True)
    if nself("build") != 0:
        raise SystemExit("nself build failed")
    nself("start", "--timeout", "60")
    nself("db", "migrate", "up")
    env = envfiles.load_cascade(PROJECT, "prod")
    proc = subprocess.run([os.path.join(paths.PG_BIN, "psql"), "-h", paths.PG_SOCKET_DIR, "-U", "postgres", "-d", env["POSTGRES_DB"],
                           "-v", "ON_ERROR_STOP=1", "-q"], input=seed_sql(), text=True, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("seed failed: %s" % proc.stderr)
    seed_objects()
    nself("stop")
    for path in (paths.CALLS_LOG, paths.FAULTS_FILE):
        if os.path.exists(path):
            os.unlink(path)
    subprocess.run(["find", paths.LOG_DIR, "-type", "f", "-delete"], check=False)
    faults.save({"faults": {}, "bugs": {}})
    print(json.dumps({"project": PROJECT, "migrations": len(os.listdir(os.path.join(FIXTURE, "migrations")))}))


if __name__ == "__main__":
    main()
