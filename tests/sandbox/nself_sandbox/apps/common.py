"""Shared pieces of the sandbox's HTTP services: JSON server, HS256 JWT, database access."""
import base64
import datetime
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import psycopg2.extras

from .. import faults, paths

HASURA_NS = "https://hasura.io/jwt/claims"


def log(message):
    sys.stdout.write("%s %s\n" % (datetime.datetime.now().strftime("%H:%M:%S"), message))
    sys.stdout.flush()


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- JWT (HS256 only, like the nFamily services)

def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_encode(claims, key):
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key.encode(), ("%s.%s" % (header, payload)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (header, payload, _b64(signature))


def verification_key(service, configured):
    """The key a service verifies tokens with: its configured one, unless the stale_key fault pins
    the key it had when the fault was set (as a container whose environment was never recreated)."""
    if faults.active("stale_key", service):
        try:
            with open(paths.STALE_KEYS_FILE, encoding="utf-8") as handle:
                return json.load(handle).get(service, configured)
        except (OSError, ValueError):
            pass
    return configured


class TokenError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def jwt_decode(token, key):
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(payload_b64))
        signature = _unb64(signature_b64)
    except (ValueError, TypeError) as exc:
        raise TokenError("malformed", "jwt malformed") from exc
    if header.get("alg") != "HS256":
        raise TokenError("algorithm", "invalid algorithm")
    expected = hmac.new(key.encode(), ("%s.%s" % (header_b64, payload_b64)).encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise TokenError("signature", "invalid signature")
    if claims.get("exp") is not None and claims["exp"] < time.time():
        raise TokenError("expired", "jwt expired")
    return claims


# ---------------------------------------------------------------- database

def connect():
    url = os.environ.get("DATABASE_URL") or os.environ.get("HASURA_GRAPHQL_DATABASE_URL")
    if url:
        return psycopg2.connect(url, connect_timeout=3, application_name="nfamily-%s" % os.environ.get("NSELF_SERVICE", "app"))
    return psycopg2.connect(host=os.environ.get("POSTGRES_HOST", "postgres"), port=int(os.environ.get("POSTGRES_PORT", "5432")),
                            user=os.environ.get("POSTGRES_USER", "postgres"), password=os.environ.get("POSTGRES_PASSWORD", ""),
                            dbname=os.environ.get("POSTGRES_DB", "postgres"), connect_timeout=3,
                            application_name="nfamily-%s" % os.environ.get("NSELF_SERVICE", "app"))


def query(sql, params=None, one=False, commit=False):
    conn = connect()
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
        if commit:
            conn.commit()
        return (rows[0] if rows else None) if one else rows
    finally:
        conn.close()


def ready():
    try:
        query("SELECT 1")
        return True
    except psycopg2.Error:
        return False


# ---------------------------------------------------------------- HTTP

class Handler(BaseHTTPRequestHandler):
    service = "app"
    routes = {}
    release = {}  # the image's package.json, read once when the service starts (serve)
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        log("%s %s" % (self.address_string(), fmt % args))

    def send_json(self, status, body):
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message, details=None):
        body = {"error": {"code": code, "message": message}}
        if details is not None:
            body["error"]["details"] = details
        self.send_json(status, body)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def json_body(self):
        try:
            body = json.loads(self.read_body() or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def bearer_claims(self):
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            self.error(401, "TOKEN_EXPIRED", "Missing or invalid authorization token")
            return None
        try:
            return jwt_decode(header[7:].strip(), verification_key(self.service, os.environ.get("JWT_SECRET", "")))
        except TokenError:
            self.error(401, "TOKEN_EXPIRED", "Invalid or expired token")
            return None

    def behaves(self, behaviour):
        """Whether the release this service's image was built from has a bad release's behaviour."""
        return bool(self.release.get("nfamilySandbox", {}).get(behaviour))

    def unhealthy(self):
        return faults.active("unhealthy", self.service) or self.behaves("unhealthy")

    def health(self):
        body = {"status": "error" if self.unhealthy() else "ok", "service": self.service, "timestamp": now_iso()}
        if self.release.get("version"):
            body["version"] = self.release["version"]
        return self.send_json(503 if self.unhealthy() else 200, body)

    def ready(self):
        state = "ready" if ready() and not self.unhealthy() else "not_ready"
        return self.send_json(200, {"status": state, "service": self.service})  # 200 either way (nFamily quirk)

    def _dispatch(self, method):
        path = self.path.split("?", 1)[0]
        if method == "GET" and path == "/health":
            return self.health()
        if method == "GET" and path == "/ready":
            return self.ready()
        handler = self.routes.get((method, path))
        if handler is None:
            for (route_method, route), candidate in self.routes.items():
                if route_method == method and route.endswith("*") and path.startswith(route[:-1]):
                    handler = candidate
                    break
        if handler is None:
            return self.error(404, "NOT_FOUND", "Route %s:%s not found" % (method, path))
        if self.behaves("server_errors"):
            return self.error(500, "INTERNAL_ERROR", "Cannot read properties of undefined (reading 'family_id')")
        try:
            return handler(self)
        except psycopg2.Error as exc:
            log("database error: %s" % str(exc).strip())
            return self.error(500, "INTERNAL_ERROR", "Database unavailable")

    def do_GET(self):  # noqa: N802
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")


def image(service):
    try:
        with open(paths.image_file(service), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def serve(handler, port):
    handler.release = image(handler.service)
    server = ThreadingHTTPServer(("0.0.0.0", int(port)), handler)
    server.daemon_threads = True
    log("%s listening on :%s" % (handler.service, port))
    server.serve_forever()
