"""db_data_check: what counts as fallen, and the broken foreign keys as the catalog query reports them."""
from ansible_collections.nfamily.ops.plugins.modules import db_data_check


class FakeDatabase:
    """The catalog answers two foreign keys of public.media_items; the anti-joins count 3 and 0 rows."""

    def __init__(self):
        self.commands = []
        self.statements = []

    def existing_tables(self, tables):
        return [t for t in tables if t != "public.gone"]

    def row_counts(self, tables):
        return {"public.users": 9, "public.media_items": 3}

    def migration_state(self):
        return {"schema_migrations": {"version": "1770000000014", "name": "post_reaction_count", "applied": 14}}

    def query(self, sql):
        self.statements.append(sql)
        if "pg_constraint" in sql:
            return [["media_items_family_id_fkey", "media_items", "families", "t.\"family_id\" IS NOT NULL AND NOT EXISTS (...)"],
                    ["media_items_uploaded_by_fkey", "media_items", "users", "t.\"uploaded_by\" IS NOT NULL AND NOT EXISTS (...)"]]
        return [["0", "3"], ["1", "0"]]


def test_fallen_tables_are_the_checked_ones_below_their_baseline():
    fallen, problems = db_data_check.judge(["public.users", "public.media_items", "public.gone"],
                                           {"public.users": 9, "public.media_items": 5, "public.gone": 2, "public.schema_migrations": 99},
                                           {"public.users": 9, "public.media_items": 3}, [])
    assert fallen == [{"table": "public.gone", "before": 2, "now": 0}, {"table": "public.media_items", "before": 5, "now": 3}]
    assert problems == ["public.gone has 0 rows, 2 before", "public.media_items has 3 rows, 5 before"]


def test_more_rows_than_before_is_not_a_problem():
    assert db_data_check.judge(["public.users"], {"public.users": 9}, {"public.users": 12}, []) == ([], [])


def test_broken_foreign_keys_are_counted_in_one_query_and_reported(run_module, tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("ENV=prod\nPROJECT_NAME=fam\n")
    database = FakeDatabase()
    monkeypatch.setattr(db_data_check, "project_database", lambda module: database)
    result, _calls = run_module(db_data_check.main, {"project_dir": str(tmp_path), "tables": ["public.users", "public.media_items"],
                                                     "baseline": {"public.media_items": 3}})
    assert not result["failed"] and not result["changed"] and result["ok"] is False
    assert result["broken_foreign_keys"] == [{"constraint": "media_items_family_id_fkey", "table": "media_items", "references": "families",
                                              "rows": 3}]
    assert result["problems"] == ["media_items_family_id_fkey: 3 row(s) of media_items point at no row of families"]
    assert result["migrations"]["schema_migrations"]["version"] == "1770000000014"
    anti_joins = database.statements[-1]
    assert anti_joins.count(" UNION ALL ") == 1 and "FROM media_items t WHERE t.\"family_id\" IS NOT NULL" in anti_joins
