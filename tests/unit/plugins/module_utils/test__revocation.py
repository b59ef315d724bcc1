import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _revocation as rv


class Columns:
    """A PostgresContainer stand-in answering the column query of registered_devices."""

    def __init__(self, cols):
        self.cols = cols

    def query(self, sql):
        assert "information_schema.columns" in sql
        return [[c] for c in self.cols]


REAL = ["id", "family_id", "user_id", "device_name", "credential", "bootstrap_token", "is_trusted", "is_revoked", "updated_at"]


@pytest.mark.parametrize("value", ["00000000-0000-0000-0000-00000000000", "x'; DROP TABLE users; --", "", None,
                                   "00000000-0000-0000-0000-000000000001 "])
def test_anything_but_a_uuid_is_refused(value):
    with pytest.raises(rv.RevocationError, match="is not a UUID"):
        rv.check_uuid("family_id", value)


def test_parameters_travel_as_copy_data_never_as_sql():
    hostile = "x'); DROP TABLE public.users; --\t\\.\nmore"
    script = rv.script([("name", hostile)], "SELECT 1", commit=False).decode()
    lines = script.splitlines()
    data = lines[lines.index("COPY nfamily_ops_params (kind, value) FROM STDIN;") + 1]
    assert data == "name\tx'); DROP TABLE public.users; --\\t\\\\.\\nmore"
    assert lines[-3:] == ["\\.", "SELECT 1;", "ROLLBACK;"] and lines[0] == "BEGIN;"
    assert rv.script([], "SELECT 1", commit=True).decode().endswith("COMMIT;\n")


def test_the_real_schema_revokes_with_is_revoked_and_clears_the_credential():
    schema = rv.device_schema(Columns(REAL))
    statement = rv.device_statement(schema, clear_bootstrap=True, revoke_tokens=False, audit=True)
    assert schema["kind"] == "is_revoked"
    assert "SET is_revoked = true, credential = NULL, bootstrap_token = NULL, updated_at = now()" in statement
    assert "NOT d.is_revoked OR d.credential IS NOT NULL OR d.bootstrap_token IS NOT NULL" in statement
    assert "status" not in statement and "auth.refresh_tokens" not in statement
    assert "INSERT INTO public.audit_events" in statement


def test_a_status_column_schema_is_detected():
    schema = rv.device_schema(Columns(["id", "family_id", "user_id", "device_name", "status", "credential"]))
    statement = rv.device_statement(schema, clear_bootstrap=True, revoke_tokens=True, audit=False)
    assert schema["kind"] == "status" and "SET status = 'revoked', credential = NULL" in statement
    assert "bootstrap_token" not in statement and "updated_at" not in statement
    assert "UPDATE auth.refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND user_id IN (SELECT user_id FROM revoked)" in statement
    assert "audit_events" not in statement


def test_unknown_schemas_are_refused():
    with pytest.raises(rv.RevocationError, match="does not exist"):
        rv.device_schema(Columns([]))
    with pytest.raises(rv.RevocationError, match="neither is_revoked nor status"):
        rv.device_schema(Columns(["id", "family_id"]))


def test_session_revocation_for_everyone_or_named_users():
    everyone = rv.session_statement(all_users=True, audit=True)
    assert "WHERE revoked_at IS NULL AND true" in everyone and "WHERE is_active AND true" in everyone
    named = rv.session_statement(all_users=False, audit=False)
    assert "user_id IN (SELECT value::uuid FROM nfamily_ops_params WHERE kind = 'user')" in named
