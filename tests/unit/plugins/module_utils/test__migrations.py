import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _migrations as mg


def nself_tree(tmp_path, versions, without_down=()):
    for version, name in versions:
        directory = tmp_path / ("%d_%s" % (version, name))
        directory.mkdir()
        (directory / "up.sql").write_text("-- up")
        if version not in without_down:
            (directory / "down.sql").write_text("-- down")
    return str(tmp_path)


CHAIN = [(1770000000000 + i, "m%02d" % i) for i in range(1, 14)]


def test_discover_nself_layout_sorted(tmp_path):
    found = mg.discover("schema_migrations", nself_tree(tmp_path, reversed(CHAIN)))
    assert [m.version for m in found] == [v for v, _n in CHAIN]
    assert found[0].name == "1770000000001_m01" and found[0].down.endswith("down.sql")


def test_discover_repo_layout(tmp_path):
    for name in ("001_core_tables", "002_auth_tables"):
        (tmp_path / (name + ".up.sql")).write_text("-- up")
        (tmp_path / (name + ".down.sql")).write_text("-- down")
    (tmp_path / "README.md").write_text("notes")
    found = mg.discover("_migrations", str(tmp_path))
    assert [(m.version, m.name) for m in found] == [(1, "001_core_tables"), (2, "002_auth_tables")]


def test_discover_refuses_duplicate_versions_and_missing_dir(tmp_path):
    for name in ("010_a", "010_b"):
        (tmp_path / (name + ".up.sql")).write_text("")
    with pytest.raises(mg.MigrationError, match="share version 10"):
        mg.discover("_migrations", str(tmp_path))
    with pytest.raises(mg.MigrationError, match="does not exist"):
        mg.discover("_migrations", str(tmp_path / "missing"))


@pytest.mark.parametrize("target, version", [("010", 1770000000010), ("1770000000010", 1770000000010), ("10", 1770000000010),
                                             ("0", 0)])
def test_resolve_target_forms(tmp_path, target, version):
    assert mg.resolve_target(target, mg.discover("schema_migrations", nself_tree(tmp_path, CHAIN))) == version


@pytest.mark.parametrize("target, message", [("abc", "not a number"), ("999", "no migration has version 999"),
                                             ("1", "matches several migrations")])
def test_resolve_target_errors(tmp_path, target, message):
    migrations = mg.discover("schema_migrations", nself_tree(tmp_path, CHAIN))
    with pytest.raises(mg.MigrationError, match=message):
        mg.resolve_target(target, migrations)


def test_plan_down_from_13_to_10_in_reverse_order(tmp_path):
    migrations = mg.discover("schema_migrations", nself_tree(tmp_path, CHAIN))
    steps = mg.plan(migrations, [v for v, _n in CHAIN], 1770000000010)
    assert [(d, m.version % 100) for d, m in steps] == [("down", 13), ("down", 12), ("down", 11)]


def test_plan_at_target_is_empty_and_up_fills_gaps(tmp_path):
    migrations = mg.discover("schema_migrations", nself_tree(tmp_path, CHAIN))
    applied = [v for v, _n in CHAIN[:10]]
    assert mg.plan(migrations, applied, 1770000000010) == []
    assert [(d, m.version % 100) for d, m in mg.plan(migrations, applied, 1770000000012)] == [("up", 11), ("up", 12)]


def test_plan_refuses_missing_down_file_before_any_step(tmp_path):
    migrations = mg.discover("schema_migrations", nself_tree(tmp_path, CHAIN, without_down=(1770000000012,)))
    with pytest.raises(mg.MigrationError, match="has no down migration file"):
        mg.plan(migrations, [v for v, _n in CHAIN], 1770000000010)


def test_plan_refuses_applied_versions_without_files(tmp_path):
    migrations = mg.discover("schema_migrations", nself_tree(tmp_path, CHAIN[:10]))
    with pytest.raises(mg.MigrationError, match="have no files"):
        mg.plan(migrations, [v for v, _n in CHAIN], 1770000000010)
