"""Where the sandbox keeps its state inside the container."""
import os

STATE_DIR = os.environ.get("NSELF_SANDBOX_STATE", "/var/lib/nself-sandbox")
CONTAINERS_DIR = os.path.join(STATE_DIR, "containers")
LOG_DIR = os.path.join(STATE_DIR, "logs")
FAULTS_FILE = os.path.join(STATE_DIR, "faults.json")
STALE_KEYS_FILE = os.path.join(STATE_DIR, "stale_keys.json")
FOREIGN_DIR = os.path.join(STATE_DIR, "foreign")
FOREIGN_PIDS_FILE = os.path.join(FOREIGN_DIR, "pids.json")
IMAGES_DIR = os.path.join(STATE_DIR, "images")  # what nself build baked into each custom service's image
CALLS_LOG = os.path.join(STATE_DIR, "calls.jsonl")
VOLUMES_DIR = os.environ.get("NSELF_SANDBOX_VOLUMES", "/srv/volumes")
PG_BIN = "/usr/lib/postgresql/16/bin"  # as postgres:16-alpine, the nFamily compose's image (images.sh)
PG_DATA = os.path.join(VOLUMES_DIR, "postgres_data")
PG_SOCKET_DIR = "/var/run/postgresql"
MINIO_DATA = os.environ.get("NSELF_SANDBOX_MINIO_DATA", "/srv/minio")
REDIS_DATA = os.path.join(VOLUMES_DIR, "redis_data")
SHARE_DIR = os.path.dirname(os.path.abspath(__file__))
# What the stand-in's processes put on PYTHONPATH: its package, and the libraries the bare variant keeps
# for it alone (tests/sandbox/Containerfile.bare).
PYTHONPATH = os.pathsep.join((os.path.dirname(SHARE_DIR), os.path.join(os.path.dirname(SHARE_DIR), "vendor")))
DEFAULT_PROJECT = "/opt/nself-family/backend"
NSELF_VERSION = "0.9.9"


def image_file(service):
    return os.path.join(IMAGES_DIR, "%s.json" % service)
