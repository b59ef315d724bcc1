"""Hasura GraphQL engine stand-in: /healthz, and /v1/graphql that accepts only admin-secret
requests or HS256 JWTs signed with the key inside HASURA_GRAPHQL_JWT_SECRET.
"""
import json
import os
import sys

from . import common


def _jwt_key():
    config = json.loads(os.environ.get("HASURA_GRAPHQL_JWT_SECRET") or "{}")
    if config.get("type", "HS256") != "HS256" or len(config.get("key", "")) < 32:
        raise ValueError("HS256 key must be at least 32 characters")
    return common.verification_key("hasura", config["key"])


def _jwt_error(req, code, message):
    return req.send_json(200, {"errors": [{"extensions": {"path": "$", "code": code}, "message": message}]})


def graphql(req):
    body = req.json_body() or {}
    text = str(body.get("query") or "")
    admin = req.headers.get("x-hasura-admin-secret")
    user_id = None
    if admin is not None:
        if admin != os.environ.get("HASURA_GRAPHQL_ADMIN_SECRET"):
            return _jwt_error(req, "access-denied", "invalid x-hasura-admin-secret/x-hasura-access-key")
    else:
        header = req.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return _jwt_error(req, "access-denied", "Missing Authorization header in JWT authentication mode")
        try:
            claims = common.jwt_decode(header[7:].strip(), _jwt_key())
        except common.TokenError as exc:
            if exc.code == "expired":
                return _jwt_error(req, "invalid-jwt", "Could not verify JWT: JWTExpired")
            return _jwt_error(req, "invalid-jwt", "Could not verify JWT: JWSError JWSInvalidSignature")
        namespace = claims.get(common.HASURA_NS)
        if not isinstance(namespace, dict) or "x-hasura-user-id" not in namespace:
            return _jwt_error(req, "jwt-missing-role-claims", "JWT claim does not contain x-hasura-user-id")
        user_id = namespace["x-hasura-user-id"]
    if "families" in text:
        if user_id is None:
            rows = common.query("SELECT id, name FROM public.families ORDER BY name")
        else:
            rows = common.query("SELECT f.id, f.name FROM public.families f JOIN public.family_members m ON m.family_id = f.id "
                                "WHERE m.user_id = %s AND m.lifecycle_state = 'active' ORDER BY f.name", (user_id,))
        return req.send_json(200, {"data": {"families": rows}})
    return req.send_json(200, {"data": {"__typename": "query_root"}})


def healthz(req):
    if common.faults.active("unhealthy", "hasura"):
        return req.send_json(500, {"status": "error"})
    data = b"OK"
    req.send_response(200)
    req.send_header("Content-Type", "text/plain")
    req.send_header("Content-Length", str(len(data)))
    req.end_headers()
    req.wfile.write(data)
    return None


class HasuraHandler(common.Handler):
    service = "hasura"
    routes = {("GET", "/healthz"): healthz, ("POST", "/v1/graphql"): graphql}


if __name__ == "__main__":
    try:
        _jwt_key()
    except ValueError as exc:
        common.log('{"type":"startup","detail":{"kind":"jwt_secret","info":"%s"}}' % exc)
        sys.exit(1)
    common.serve(HasuraHandler, 8080)
