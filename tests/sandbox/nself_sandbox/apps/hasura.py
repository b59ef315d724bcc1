"""Hasura GraphQL engine stand-in: /healthz, and /v1/graphql as Hasura v2 answers it in JWT mode.

The session comes from the admin secret (role admin, or the x-hasura-role asked for), from an HS256
JWT signed with the key inside HASURA_GRAPHQL_JWT_SECRET whose claims namespace holds
x-hasura-allowed-roles and x-hasura-default-role (an x-hasura-role header must be one of the allowed
roles), or, with no Authorization header, from HASURA_GRAPHQL_UNAUTHORIZED_ROLE. A query is a
selection of tracked tables: `admin` sees every row and column, role `user` the select permissions
below (its own user, the families it is an active member of, their members, and the posts of the
families in the session variable X-Hasura-Family-Ids, which auth's tokens do not carry), any other role none,
so a table it may not read is "not found in type: 'query_root'", as Hasura says it; <table>_by_pk(id:
$var) reads one row. Mutations are update_<table>_by_pk under the update permissions (role `user`: its
own display_name) and insert_<table>_one(object: $var) under the insert permissions (role `user`: a
post in a family of X-Hasura-Family-Ids, its author_id set from X-Hasura-User-Id), as the frontend creates posts.
"""
import json
import os
import re
import sys

import psycopg2

from . import common

TABLES = {
    "users": ("public.users", ["id", "email", "display_name", "is_active"]),
    "families": ("public.families", ["id", "name"]),
    "family_members": ("public.family_members", ["id", "family_id", "user_id", "role", "lifecycle_state"]),
    "posts": ("public.posts", ["id", "family_id", "author_id", "post_type", "visibility", "body"]),
}
MY_FAMILIES = ("SELECT m.family_id FROM public.family_members m WHERE m.user_id = %(user_id)s "
               "AND m.lifecycle_state = 'active'")
# role -> table -> (columns, row filter): the select permissions of the metadata.
PERMISSIONS = {
    "user": {
        "users": (["id", "email", "display_name"], "t.id = %(user_id)s"),
        "families": (["id", "name"], "t.id IN (" + MY_FAMILIES + ")"),
        "family_members": (["id", "family_id", "user_id", "role"], "t.family_id IN (" + MY_FAMILIES + ")"),
        "posts": (["id", "family_id", "author_id", "post_type", "visibility", "body"], "t.family_id::text = ANY(%(family_ids)s::text[])"),
    },
}
# role -> table -> (columns it may set, check on the new row's values, columns set from the session): the insert
# permissions of the metadata. Posts are checked against the session variable X-Hasura-Family-Ids, as upstream's
# metadata has it; auth's tokens do not carry it, so a user's post is refused there as it is here.
INSERTS = {"user": {"posts": (["family_id", "post_type", "visibility", "body"], "%(family_id)s::text = ANY(%(family_ids)s::text[])",
                              {"author_id": "user_id"})}}
# role -> table -> (columns it may set, row filter): the update permissions of the metadata.
UPDATES = {"user": {"users": (["display_name"], "t.id = %(user_id)s")}}
FIELD_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
UPDATE_RE = re.compile(r'^\s*mutation\b[^{]*\{\s*update_([a-z_]+)_by_pk\s*\(\s*pk_columns\s*:\s*\{\s*id\s*:\s*"([^"]*)"\s*\}'
                       r'\s*,\s*_set\s*:\s*\{([^}]*)\}\s*\)\s*\{([^}]*)\}\s*\}\s*$')
INSERT_RE = re.compile(r'^\s*mutation\b[^{]*\{\s*insert_([a-z_]+)_one\s*\(\s*object\s*:\s*\$([A-Za-z_]+)\s*\)\s*\{([^}]*)\}\s*\}\s*$')
BY_PK_RE = re.compile(r'^\s*query\b[^{]*\{\s*([a-z_]+)_by_pk\s*\(\s*id\s*:\s*\$([A-Za-z_]+)\s*\)\s*\{([^}]*)\}\s*\}\s*$')
SET_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*:\s*"([^"]*)"')


class GraphQLError(Exception):
    def __init__(self, code, message, path="$"):
        super().__init__(message)
        self.code, self.path = code, path


def _jwt_key():
    config = json.loads(os.environ.get("HASURA_GRAPHQL_JWT_SECRET") or "{}")
    if config.get("type", "HS256") != "HS256" or len(config.get("key", "")) < 32:
        raise ValueError("HS256 key must be at least 32 characters")
    return common.verification_key("hasura", config["key"])


def _jwt_error(req, code, message, path="$"):
    return req.send_json(200, {"errors": [{"extensions": {"path": path, "code": code}, "message": message}]})


def session(headers):
    """(role, user id, family ids or None) of a request, or GraphQLError as Hasura words it."""
    asked = headers.get("x-hasura-role")
    admin = headers.get("x-hasura-admin-secret")
    if admin is not None:
        if admin != os.environ.get("HASURA_GRAPHQL_ADMIN_SECRET"):
            raise GraphQLError("access-denied", "invalid x-hasura-admin-secret/x-hasura-access-key")
        return asked or "admin", headers.get("x-hasura-user-id"), family_ids(headers.get("x-hasura-family-ids"))
    header = headers.get("Authorization", "")
    if not header:
        unauthorized = os.environ.get("HASURA_GRAPHQL_UNAUTHORIZED_ROLE")
        if not unauthorized:
            raise GraphQLError("access-denied", "Missing Authorization header in JWT authentication mode")
        return unauthorized, None, None
    if not header.startswith("Bearer "):
        raise GraphQLError("invalid-headers", "Malformed Authorization header")
    try:
        claims = common.jwt_decode(header[7:].strip(), _jwt_key())
    except common.TokenError as exc:
        raise GraphQLError("invalid-jwt", "Could not verify JWT: JWTExpired" if exc.code == "expired"
                           else "Could not verify JWT: JWSError JWSInvalidSignature")
    namespace = claims.get(common.HASURA_NS)
    if not isinstance(namespace, dict):
        raise GraphQLError("jwt-invalid-claims", "claims key: '%s' not found" % common.HASURA_NS)
    allowed = namespace.get("x-hasura-allowed-roles")
    default = namespace.get("x-hasura-default-role")
    if not isinstance(allowed, list):
        raise GraphQLError("jwt-missing-role-claims", "JWT claim does not contain x-hasura-allowed-roles")
    if not isinstance(default, str):
        raise GraphQLError("jwt-missing-role-claims", "JWT claim does not contain x-hasura-default-role")
    role = asked or default
    if role not in allowed:
        raise GraphQLError("access-denied", "Your requested role is not in allowed roles")
    return role, namespace.get("x-hasura-user-id"), family_ids(namespace.get("x-hasura-family-ids"))


def family_ids(value):
    """The session variable X-Hasura-Family-Ids (a Postgres array literal, "{a,b}"), as a list, or None."""
    if value is None:
        return None
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip().strip('"') for v in str(value).strip("{}").split(",") if v.strip()]


def needs(condition, who, path):
    """The session's values for a permission's condition; Hasura's error when a session variable it uses is missing."""
    if "%(user_id)s" in condition and who["user_id"] is None:
        raise GraphQLError("not-found", 'missing session variable: "x-hasura-user-id"', path)
    if "%(family_ids)s" in condition and who["family_ids"] is None:
        raise GraphQLError("not-found", 'missing session variable: "x-hasura-family-ids"', path)
    return dict(who)


def selection(text):
    """The top-level fields of a query and the sub-fields each selects: [(field, [columns])]."""
    body = text.strip()
    if body.startswith(("mutation", "subscription")):
        raise GraphQLError("validation-failed", "only update_<table>_by_pk and insert_<table>_one mutations exist here", "$")
    body = body[body.find("{") + 1:body.rfind("}")] if "{" in body else ""
    fields, position = [], 0
    while position < len(body):
        match = FIELD_RE.match(body, position)
        if not match or not match.group(1):
            if body[position:].strip():
                raise GraphQLError("validation-failed", "not a valid graphql query")
            break
        name, position, columns = match.group(1), match.end(), []
        if body[position:position + 1] == "{":
            end = body.index("}", position)
            columns = body[position + 1:end].split()
            position = end + 1
        fields.append((name, columns))
    return fields


def resolve(role, who, fields):
    data = {}
    for name, columns in fields:
        if name == "__typename":
            data[name] = "query_root"
            continue
        path = "$.selectionSet.%s" % name
        if role == "admin" and name in TABLES:
            table, permitted = TABLES[name]
            condition = "true"
        elif name in PERMISSIONS.get(role, {}):
            table = TABLES[name][0]
            permitted, condition = PERMISSIONS[role][name]
        else:
            raise GraphQLError("validation-failed", "field '%s' not found in type: 'query_root'" % name, path)
        for column in columns:
            if column not in permitted:
                raise GraphQLError("validation-failed", "field '%s' not found in type: '%s'" % (column, name),
                                   path + ".selectionSet.%s" % column)
        wanted = columns or permitted[:1]
        sql = "SELECT %s FROM %s t WHERE %s ORDER BY 1" % (", ".join("t.%s" % c for c in wanted), table, condition)
        data[name] = [dict((c, row[c]) for c in wanted) for row in common.query(sql, needs(condition, who, path))]
    return data


def update_by_pk(role, user_id, match):
    """`mutation { update_<table>_by_pk(pk_columns: {id: "…"}, _set: {col: "…"}) { cols } }`: the row, or
    null when the role's filter hides it."""
    name, key, assignments, returned = match.group(1), match.group(2), SET_RE.findall(match.group(3)), match.group(4).split()
    field = "update_%s_by_pk" % name
    if role == "admin" and name in TABLES:
        settable, condition = [c for c in TABLES[name][1] if c != "id"], "true"
    elif name in UPDATES.get(role, {}):
        settable, condition = UPDATES[role][name]
    else:
        raise GraphQLError("validation-failed", "field '%s' not found in type: 'mutation_root'" % field, "$.selectionSet.%s" % field)
    for column, _value in assignments:
        if column not in settable:
            raise GraphQLError("validation-failed", "field '%s' not found in type: '%s_set_input'" % (column, name),
                               "$.selectionSet.%s.args._set.%s" % (field, column))
    visible = TABLES[name][1] if role == "admin" else PERMISSIONS[role][name][0]
    wanted = [c for c in returned if c in visible] if returned else ["id"]
    if not assignments or len(wanted) != len(returned or ["id"]):
        raise GraphQLError("validation-failed", "not a valid update of %s" % name, "$.selectionSet.%s" % field)
    params = dict(("set_%d" % i, value) for i, (_column, value) in enumerate(assignments))
    params.update(key=key, user_id=user_id)
    sql = "UPDATE %s t SET %s WHERE t.id::text = %%(key)s AND %s RETURNING %s" % (
        TABLES[name][0], ", ".join("%s = %%(set_%d)s" % (c, i) for i, (c, _v) in enumerate(assignments)), condition,
        ", ".join("t.%s" % c for c in wanted))
    row = common.query(sql, params, one=True, commit=True)
    return {field: dict((c, row[c]) for c in wanted) if row else None}


def insert_one(role, who, match, variables):
    """`mutation($o: <table>_insert_input!) { insert_<table>_one(object: $o) { cols } }`: the new row, or Hasura's
    permission error when the role's check refuses it (nothing is inserted then)."""
    name, returned = match.group(1), match.group(3).split() or ["id"]
    field = "insert_%s_one" % name
    if name not in INSERTS.get(role, {}) and not (role == "admin" and name in TABLES):
        raise GraphQLError("validation-failed", "field '%s' not found in type: 'mutation_root'" % field, "$.selectionSet.%s" % field)
    settable, check, presets = (TABLES[name][1], "true", {}) if role == "admin" else INSERTS[role][name]
    row = variables.get(match.group(2))
    if not isinstance(row, dict) or not row:
        raise GraphQLError("validation-failed", "expecting a value for non-nullable variable: \"%s\"" % match.group(2))
    for column in row:
        if column not in settable:
            raise GraphQLError("validation-failed", "field '%s' not found in type: '%s_insert_input'" % (column, name),
                               "$.selectionSet.%s.args.object.%s" % (field, column))
    visible = TABLES[name][1] if role == "admin" else PERMISSIONS[role][name][0]
    if any(c not in visible for c in returned):
        raise GraphQLError("validation-failed", "not a valid selection of %s" % name, "$.selectionSet.%s" % field)
    values = needs(check, who, "$.selectionSet.%s" % field)
    values.update((c, row.get(c)) for c in settable)
    row = dict(row, **dict((c, who[variable]) for c, variable in presets.items()))
    columns = sorted(row)
    sql = "INSERT INTO %s (%s) VALUES (%s) RETURNING %s" % (
        TABLES[name][0], ", ".join(columns), ", ".join("%%(%s)s" % c for c in columns), ", ".join(returned))
    try:
        if not common.query("SELECT 1 AS allowed WHERE " + check, values, one=True):
            raise GraphQLError("permission-error", "check constraint of an insert/update permission has failed",
                               "$.selectionSet.%s.args" % field)
        inserted = common.query(sql, row, one=True, commit=True)
    except psycopg2.Error as exc:  # a value or constraint the table refuses, in Hasura's words
        raise GraphQLError("constraint-violation" if isinstance(exc, psycopg2.IntegrityError) else "data-exception",
                           str(exc).splitlines()[0], "$.selectionSet.%s" % field)
    return {field: dict((c, inserted[c]) for c in returned)}


def by_pk(role, who, match, variables):
    """`query($id: uuid!) { <table>_by_pk(id: $id) { cols } }`: the row, or null when the role's filter hides it."""
    name, key = match.group(1), variables.get(match.group(2))
    field, returned = "%s_by_pk" % name, match.group(3).split() or ["id"]
    if role == "admin" and name in TABLES:
        permitted, condition = TABLES[name][1], "true"
    elif name in PERMISSIONS.get(role, {}):
        permitted, condition = PERMISSIONS[role][name]
    else:
        raise GraphQLError("validation-failed", "field '%s' not found in type: 'query_root'" % field, "$.selectionSet.%s" % field)
    if any(c not in permitted for c in returned):
        raise GraphQLError("validation-failed", "not a valid selection of %s" % name, "$.selectionSet.%s" % field)
    sql = "SELECT %s FROM %s t WHERE t.id::text = %%(key)s AND %s" % (", ".join("t.%s" % c for c in returned), TABLES[name][0], condition)
    try:
        row = common.query(sql, dict(needs(condition, who, "$.selectionSet.%s" % field), key=str(key)), one=True)
    except psycopg2.Error as exc:
        raise GraphQLError("data-exception", str(exc).splitlines()[0], "$.selectionSet.%s" % field)
    return {field: dict((c, row[c]) for c in returned) if row else None}


def graphql(req):
    body = req.json_body() or {}
    text = str(body.get("query") or "")
    variables = body.get("variables") or {}
    try:
        role, user_id, families = session(req.headers)
        who = {"user_id": user_id, "family_ids": families}
        update, insert, one = UPDATE_RE.match(text), INSERT_RE.match(text), BY_PK_RE.match(text)
        if update:
            data = update_by_pk(role, user_id, update)
        elif insert:
            data = insert_one(role, who, insert, variables)
        elif one:
            data = by_pk(role, who, one, variables)
        else:
            data = resolve(role, who, selection(text))
    except GraphQLError as exc:
        return _jwt_error(req, exc.code, str(exc), exc.path)
    return req.send_json(200, {"data": data})


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
