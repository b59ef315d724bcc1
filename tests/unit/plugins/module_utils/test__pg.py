import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _pg


class FakeModule:
    def __init__(self):
        self.calls = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/local/bin/" + name

    def run_command(self, argv, **kwargs):
        self.calls.append(argv)
        self.environ_updates = getattr(self, "environ_updates", []) + [kwargs.get("environ_update")]
        return 0, "1\n", ""


ENV = {"PROJECT_NAME": "nself-family", "POSTGRES_USER": "postgres", "POSTGRES_DB": "nself_family"}


def test_nself_exec_argv():
    pg = _pg.PostgresContainer(FakeModule(), "/p", ENV, "nself")
    assert pg.argv(["pg_dump", "-Fc"]) == ["/usr/local/bin/nself", "exec", "postgres", "pg_dump", "-Fc"]
    assert pg.argv(["pg_restore"], interactive=True)[:4] == ["/usr/local/bin/nself", "exec", "-i", "postgres"]


def test_docker_exec_uses_the_project_container_name():
    pg = _pg.PostgresContainer(FakeModule(), "/p", ENV, "nself", via="docker")
    assert pg.argv(["psql"], interactive=True) == ["/usr/local/bin/docker", "exec", "-i", "nself-family_postgres", "psql"]


def test_database_falls_back_to_project_name_and_needs_one():
    assert _pg.connection_settings({"PROJECT_NAME": "fam"}) == ("postgres", "fam")
    with pytest.raises(_pg.PostgresError, match="POSTGRES_DB"):
        _pg.connection_settings({})


def test_quoting():
    assert _pg.qualified('auth.refresh_tokens') == '"auth"."refresh_tokens"'
    assert _pg.qualified('users') == '"public"."users"'
    assert _pg.quote_ident('we"ird') == '"we""ird"'
    assert _pg.quote_literal("it's") == "'it''s'"


def test_query_sends_each_statement_with_on_error_stop():
    module = FakeModule()
    pg = _pg.PostgresContainer(module, "/p", ENV, "nself")
    assert pg.query("SELECT 1", "SELECT 2") == [["1"]]
    argv = module.calls[0]
    assert "ON_ERROR_STOP=1" in argv and argv.count("-c") == 2 and argv[-1] == "SELECT 2"


def test_on_switches_the_database_only():
    pg = _pg.PostgresContainer(FakeModule(), "/p", ENV, "nself")
    other = pg.on("postgres")
    assert other.database == "postgres" and pg.database == "nself_family" and other.user == pg.user


def test_table_checksums_fix_how_rows_are_rendered_and_hash_every_row():
    module = FakeModule()
    module.run_command = lambda argv, **kw: (module.calls.append(argv), (0, "public.users\x1f42\n" if "unnest" not in " ".join(argv)
                                                                         else "\"public\".\"users\"\n", ""))[1]
    pg = _pg.PostgresContainer(module, "/p", ENV, "nself")
    assert pg.table_checksums(["public.users", "public.gone"]) == {"public.users": "42"}
    sql = module.calls[-1]
    assert [sql[i + 1] for i, a in enumerate(sql) if a == "-c"][:len(_pg.CHECKSUM_SETTINGS)] == _pg.CHECKSUM_SETTINGS
    assert "bit_xor(('x' || left(md5(t::text), 16))::bit(64)::bigint)" in sql[-1] and '"public"."users" AS t' in sql[-1]


def test_a_forced_environment_reaches_psql_as_it_reaches_pg_dump():
    """Issue 17, item 8: run() (psql queries) dropped the NSELF_ENV that _popen (pg_dump) passed."""
    module = FakeModule()
    pg = _pg.PostgresContainer(module, "/p", ENV, "nself", environ={"NSELF_ENV": "staging"})
    pg.query("SELECT 1")
    assert module.environ_updates == [{"NSELF_ENV": "staging", "NO_COLOR": "1"}]
    assert pg.environ["NSELF_ENV"] == "staging"
