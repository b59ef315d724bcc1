"""The services of the sandbox stack: what `nself build` writes into docker-compose.yml,
and how each "container" is really run on this host (there is no Docker here).
"""
import os
import signal
import sys

from . import paths

# Start order follows the nFamily deploy doc: PostgreSQL, then Hasura, Auth, API, Nginx.
BUILTIN_ORDER = ["postgres", "redis", "minio", "hasura"]
NGINX = "nginx"

PG_ENV = {
    "POSTGRES_USER": "${POSTGRES_USER:-postgres}",
    "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD}",
    "POSTGRES_DB": "${POSTGRES_DB}",
    "POSTGRES_HOST": "postgres",
    "POSTGRES_PORT": "5432",
    "DATABASE_URL": "postgresql://${POSTGRES_USER:-postgres}:${POSTGRES_PASSWORD}@postgres:5432/${POSTGRES_DB}",
}
APP_ENV = dict(PG_ENV, **{
    "ENV": "${ENV}",
    "PROJECT_NAME": "${PROJECT_NAME}",
    "JWT_SECRET": "${JWT_SECRET}",
    "JWT_ACCESS_TOKEN_EXPIRES_IN": "${JWT_ACCESS_TOKEN_EXPIRES_IN:-900}",
    "JWT_REFRESH_TOKEN_EXPIRES_IN": "${JWT_REFRESH_TOKEN_EXPIRES_IN:-604800}",
    "BCRYPT_ROUNDS": "${BCRYPT_ROUNDS:-10}",
    "DEMO_MODE": "${DEMO_MODE}",
    "MINIO_ENDPOINT": "minio",
    "MINIO_PORT": "9000",
    "MINIO_ROOT_USER": "${MINIO_ROOT_USER}",
    "MINIO_ROOT_PASSWORD": "${MINIO_ROOT_PASSWORD}",
    "S3_BUCKET": "${S3_BUCKET}",
    "S3_REGION": "${S3_REGION:-us-east-1}",
})


def custom_services(variables):
    """CS_N=name:template:port[:route] entries, in N order."""
    found = []
    for index in range(1, 11):
        spec = variables.get("CS_%d" % index)
        if not spec:
            continue
        parts = spec.split(":")
        name, template = parts[0], parts[1] if len(parts) > 1 else ""
        port = parts[2] if len(parts) > 2 else "0"
        route = parts[3] if len(parts) > 3 else ""
        found.append({"name": name, "template": template, "port": port, "route": route})
    return found


def enabled(variables, key, default="true"):
    return (variables.get(key) or default).lower() == "true"


def compose_document(variables):
    """The docker-compose.yml that `nself build` generates for this env."""
    project = variables.get("PROJECT_NAME", "nself")
    services = {}

    def add(name, image, environment, healthcheck=None, ports=None, depends=None):
        entry = {"image": image, "container_name": "%s_%s" % (project, name.replace("-", "_")),
                 "restart": "unless-stopped", "environment": environment, "networks": ["default"]}
        if healthcheck:
            entry["healthcheck"] = {"test": healthcheck, "interval": "10s", "timeout": "5s",
                                    "retries": 3, "start_period": "20s"}
        if ports:
            entry["ports"] = ports
        if depends:
            entry["depends_on"] = depends
        services[name] = entry

    add("postgres", "postgres:${POSTGRES_VERSION:-16-alpine}", dict(PG_ENV, POSTGRES_MAX_CONNECTIONS="${POSTGRES_MAX_CONNECTIONS:-100}"),
        ["CMD-SHELL", "pg_isready -U ${POSTGRES_USER:-postgres}"])
    if enabled(variables, "REDIS_ENABLED", "false"):
        add("redis", "redis:7-alpine", {"REDIS_PASSWORD": "${REDIS_PASSWORD}"},
            ["CMD-SHELL", "redis-cli -a $$REDIS_PASSWORD ping"], ["127.0.0.1:${REDIS_PORT:-6379}:6379"])
    if enabled(variables, "MINIO_ENABLED", variables.get("STORAGE_ENABLED", "false")):
        add("minio", "minio/minio:latest",
            {"MINIO_ROOT_USER": "${MINIO_ROOT_USER}", "MINIO_ROOT_PASSWORD": "${MINIO_ROOT_PASSWORD}",
             "MINIO_DEFAULT_BUCKETS": "${MINIO_DEFAULT_BUCKETS:-uploads}", "MINIO_REGION": "${MINIO_REGION:-us-east-1}"},
            ["CMD", "curl", "-f", "http://localhost:9000/minio/health/live"],
            ["127.0.0.1:${MINIO_PORT:-9000}:9000", "127.0.0.1:${MINIO_CONSOLE_PORT:-9001}:9001"])
    add("hasura", "hasura/graphql-engine:v2.36.0",
        {"HASURA_GRAPHQL_DATABASE_URL": PG_ENV["DATABASE_URL"],
         "HASURA_GRAPHQL_ADMIN_SECRET": "${HASURA_GRAPHQL_ADMIN_SECRET}",
         "HASURA_GRAPHQL_JWT_SECRET": "${HASURA_GRAPHQL_JWT_SECRET}", "HASURA_GRAPHQL_UNAUTHORIZED_ROLE": "public"},
        ["CMD", "curl", "-f", "http://localhost:8080/healthz"], ["127.0.0.1:${HASURA_PORT:-8080}:8080"], ["postgres"])
    for custom in custom_services(variables):
        env = dict(APP_ENV, SERVICE_NAME=custom["name"], PORT=custom["port"])
        health = None
        if custom["port"] not in ("", "0"):
            health = ["CMD", "wget", "--spider", "-q", "http://localhost:%s/health" % custom["port"]]
        add(custom["name"], "nfamily/%s:%s" % (custom["name"], custom["template"]), env, health,
            ["127.0.0.1:%s:%s" % (custom["port"], custom["port"])] if health else None, ["postgres"])
    add(NGINX, "nginx:alpine", {"BASE_DOMAIN": "${BASE_DOMAIN}"},
        ["CMD", "wget", "-q", "--spider", "http://127.0.0.1/health"],
        ["${NGINX_PORT:-80}:80", "${NGINX_SSL_PORT:-443}:443"], ["hasura"])
    return {"name": "${PROJECT_NAME}", "services": services,
            "networks": {"default": {"name": "${PROJECT_NAME}_network"}},
            "volumes": {"postgres_data": {}, "minio_data": {}, "redis_data": {}, "nginx_cache": {}}}


def stop_policy(image):
    """(signal, grace seconds) of `docker stop` for an image. The postgres image's STOPSIGNAL is
    SIGINT (fast shutdown). SeaweedFS needs ~30 s to stop on SIGTERM where MinIO needs about one,
    so the stand-in gets a short grace before SIGKILL."""
    kind = image.split(":")[0]
    if kind.startswith("postgres"):
        return signal.SIGINT, 10
    if kind.startswith("minio"):
        return signal.SIGTERM, 3
    return signal.SIGTERM, 10


def launch(service, image, env, project_dir):
    """argv, user and cwd that stand in for the image's entrypoint."""
    python = sys.executable
    kind = image.split(":")[0]
    if kind.startswith("postgres"):
        max_conn = env.get("POSTGRES_MAX_CONNECTIONS") or "100"
        return ([os.path.join(paths.PG_BIN, "postgres"), "-D", paths.PG_DATA,
                 "-c", "max_connections=%s" % max_conn,
                 "-c", "unix_socket_directories=%s" % paths.PG_SOCKET_DIR,
                 "-c", "listen_addresses=127.0.0.1",
                 "-c", "hba_file=%s/pg_hba.conf" % paths.PG_DATA], "postgres", "/")
    if kind.startswith("redis"):
        return (["redis-server", "--port", "6379", "--bind", "127.0.0.1", "--dir", paths.REDIS_DATA,
                 "--requirepass", env.get("REDIS_PASSWORD", "")], "root", "/")
    if kind.startswith("minio"):
        return ([python, "-m", "nself_sandbox.apps.objectstore"], "root", "/")
    if kind.startswith("nginx"):
        conf = os.path.join(project_dir, "nginx", "nginx.conf")
        return (["nginx", "-c", conf, "-g", "daemon off;"], "root", "/")
    if kind.startswith("hasura"):
        return ([python, "-m", "nself_sandbox.apps.hasura"], "root", "/")
    if kind.startswith("nfamily/"):
        app = service if service in ("auth", "api", "scheduler") else "generic"
        return ([python, "-m", "nself_sandbox.apps.%s" % app], "root", "/")
    raise ValueError("no launcher for image %s" % image)
