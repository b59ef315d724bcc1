"""nFamily auth service stand-in (backend/services/auth): bcrypt login, HS256 JWT signed with
JWT_SECRET, opaque refresh tokens stored as sha256 in auth.refresh_tokens (nfamily-backend.md §3).
"""
import hashlib
import os
import re
import secrets
import time
import uuid

import bcrypt

from . import common

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _access_token(user_id, email, session_id):
    now = int(time.time())
    claims = {"sub": str(user_id), "email": email, "session_id": str(session_id), "jti": str(uuid.uuid4()),
              "iat": now, "exp": now + int(os.environ.get("JWT_ACCESS_TOKEN_EXPIRES_IN") or 900),
              common.HASURA_NS: {"x-hasura-allowed-roles": ["user", "admin", "anonymous"],
                                 "x-hasura-default-role": "user", "x-hasura-user-id": str(user_id)}}
    if common.faults.active("bad_claims", "auth"):  # a build of auth that signs without Hasura's claims
        del claims[common.HASURA_NS]
    return common.jwt_encode(claims, os.environ.get("JWT_SECRET", ""))


def _issue(cur, user_id, email, session_id, chain=None):
    refresh = secrets.token_hex(32)
    ttl = int(os.environ.get("JWT_REFRESH_TOKEN_EXPIRES_IN") or 604800)
    cur.execute("INSERT INTO auth.refresh_tokens (user_id, token_hash, session_id, family_chain, expires_at) "
                "VALUES (%s, %s, %s, COALESCE(%s, gen_random_uuid()), now() + make_interval(secs => %s))",
                (user_id, hashlib.sha256(refresh.encode()).hexdigest(), session_id, chain, ttl))
    return {"access_token": _access_token(user_id, email, session_id), "refresh_token": refresh,
            "expires_in": int(os.environ.get("JWT_ACCESS_TOKEN_EXPIRES_IN") or 900), "token_type": "Bearer"}


def login(req, body=None, status=200):
    body = req.json_body() if body is None else body
    email = (body or {}).get("email")
    password = (body or {}).get("password")
    if not isinstance(email, str) or not EMAIL_RE.match(email) or not isinstance(password, str) or not password:
        return req.error(400, "VALIDATION_ERROR", "Invalid request body", [{"path": ["email", "password"]}])
    conn = common.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, email, password_hash, is_active FROM public.users WHERE lower(email) = lower(%s)", (email,))
            row = cur.fetchone()
            if row is None or not bcrypt.checkpw(password.encode(), row[2].encode()):
                return req.error(401, "INVALID_CREDENTIALS", "Invalid email or password")
            if not row[3]:
                return req.error(403, "ACCOUNT_DISABLED", "Account is disabled")
            cur.execute("INSERT INTO auth.sessions (user_id, ip_address, user_agent) VALUES (%s, %s, %s) RETURNING id",
                        (row[0], req.client_address[0], req.headers.get("User-Agent")))
            session_id = cur.fetchone()[0]
            tokens = _issue(cur, row[0], row[1], session_id)
            cur.execute("UPDATE public.users SET last_login_at = now() WHERE id = %s", (row[0],))
        conn.commit()
    finally:
        conn.close()
    return req.send_json(status, {"data": {"user": {"id": str(row[0]), "email": row[1]}, "tokens": tokens}})


def refresh(req):
    body = req.json_body() or {}
    token = body.get("refresh_token")
    if not isinstance(token, str) or not token:
        return req.error(400, "VALIDATION_ERROR", "refresh_token is required")
    conn = common.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT t.id, t.user_id, t.session_id, t.family_chain, t.revoked_at, t.expires_at < now(), u.email "
                        "FROM auth.refresh_tokens t JOIN public.users u ON u.id = t.user_id WHERE t.token_hash = %s",
                        (hashlib.sha256(token.encode()).hexdigest(),))
            row = cur.fetchone()
            if row is None:
                return req.error(401, "INVALID_TOKEN", "Invalid refresh token")
            if row[4] is not None:
                cur.execute("UPDATE auth.refresh_tokens SET revoked_at = now() WHERE family_chain = %s AND revoked_at IS NULL", (row[3],))
                conn.commit()
                return req.error(401, "TOKEN_REUSE", "Refresh token reuse detected; all sessions in this chain revoked")
            if row[5]:
                return req.error(401, "INVALID_TOKEN", "Refresh token expired")
            cur.execute("UPDATE auth.refresh_tokens SET revoked_at = now() WHERE id = %s", (row[0],))
            tokens = _issue(cur, row[1], row[6], row[2], row[3])
        conn.commit()
    finally:
        conn.close()
    return req.send_json(200, {"data": {"tokens": tokens}})


def me(req):
    claims = req.bearer_claims()
    if claims is None:
        return None
    user = common.query("SELECT id, email, display_name, avatar_url, email_verified, is_active FROM public.users WHERE id = %s",
                        (claims["sub"],), one=True)
    if user is None:
        return req.error(404, "USER_NOT_FOUND", "User not found")
    roles = common.query("SELECT a.app_key, r.role FROM public.user_app_roles r JOIN public.apps a ON a.id = r.app_id "
                         "WHERE r.user_id = %s ORDER BY a.app_key", (claims["sub"],))
    families = common.query("SELECT f.id, f.name, m.role::text AS role FROM public.family_members m "
                            "JOIN public.families f ON f.id = m.family_id WHERE m.user_id = %s "
                            "AND m.lifecycle_state = 'active' AND f.is_active ORDER BY f.name", (claims["sub"],))
    return req.send_json(200, {"data": {"user": user, "app_roles": roles, "families": families}})


def revoke(req):
    claims = req.bearer_claims()
    if claims is None:
        return None
    body = req.json_body() or {}
    if body.get("revoke_all"):
        rows = common.query("UPDATE auth.refresh_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL "
                            "RETURNING id", (claims["sub"],), commit=True)
    elif body.get("refresh_token"):
        rows = common.query("UPDATE auth.refresh_tokens SET revoked_at = now() WHERE user_id = %s AND token_hash = %s "
                            "AND revoked_at IS NULL RETURNING id",
                            (claims["sub"], hashlib.sha256(str(body["refresh_token"]).encode()).hexdigest()), commit=True)
    else:
        return req.error(400, "VALIDATION_ERROR", "refresh_token or revoke_all is required")
    return req.send_json(200, {"data": {"revoked": len(rows)}})


def logout(req):
    claims = req.bearer_claims()
    if claims is None:
        return None
    common.query("UPDATE auth.refresh_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
                 (claims["sub"],), commit=True)
    common.query("UPDATE auth.sessions SET is_active = false WHERE user_id = %s", (claims["sub"],), commit=True)
    return req.send_json(200, {"data": {"logged_out": True}})


def register(req):
    if os.environ.get("DEMO_MODE"):  # z.coerce.boolean(): any non-empty string is true
        return req.error(403, "DEMO_MODE", "Registration is disabled in demo mode")
    body = req.json_body() or {}
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not EMAIL_RE.match(email) or not isinstance(password, str) or not 8 <= len(password) <= 128:
        return req.error(400, "VALIDATION_ERROR", "Invalid request body")
    if common.query("SELECT 1 FROM public.users WHERE lower(email) = lower(%s)", (email,), one=True):
        return req.error(409, "EMAIL_EXISTS", "Email already registered")
    rounds = int(os.environ.get("BCRYPT_ROUNDS") or 10)
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()
    common.query("INSERT INTO public.users (email, password_hash, display_name) VALUES (%s, %s, %s)",
                 (email, digest, body.get("display_name")), commit=True)
    return login(req, {"email": email, "password": password}, status=201)


class AuthHandler(common.Handler):
    service = "auth"
    routes = {("POST", "/auth/login"): login, ("POST", "/auth/refresh"): refresh, ("GET", "/auth/me"): me,
              ("POST", "/auth/revoke"): revoke, ("POST", "/auth/logout"): logout, ("POST", "/auth/register"): register}


if __name__ == "__main__":
    common.serve(AuthHandler, os.environ.get("PORT") or os.environ.get("AUTH_SERVICE_PORT") or 4000)
