import hashlib
import json
import os
import stat

import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _jwt_key as jk

KEY = "k" * 40


def project(tmp_path, files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return str(tmp_path)


def test_new_key_is_at_least_64_random_bytes_on_one_line():
    key = jk.new_key(64)
    assert len(key) == 86 and "\n" not in key and "=" not in key
    assert key != jk.new_key(64)
    with pytest.raises(jk.SigningKeyError):
        jk.new_key(32)


def test_a_fingerprint_is_keyed_by_a_secret_of_the_host(tmp_path):
    """Issue 17, item 8: an unkeyed sha256 of a weak key in a report could be matched against guesses."""
    fingerprint = jk.Fingerprints(str(tmp_path))
    name = fingerprint(KEY)
    assert name.startswith("hmac-sha256:") and len(name) == len("hmac-sha256:") + 16 and name != fingerprint(KEY + "x")
    assert name[len("hmac-sha256:"):] not in hashlib.sha256(KEY.encode()).hexdigest()  # not the unkeyed hash
    secret = tmp_path / "jwt_signing_key" / "fingerprint.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(secret.read_bytes()) == 32
    assert jk.Fingerprints(str(tmp_path))(KEY) == name  # the same secret on the next run
    other_host = tmp_path / "other"
    assert jk.Fingerprints(str(other_host))(KEY) != name


def test_a_secret_whose_creation_was_killed_is_made_again_whole(tmp_path):
    directory = tmp_path / "jwt_signing_key"
    directory.mkdir(mode=0o700)
    (directory / ".fingerprint.key.partial").write_bytes(b"half")  # killed between its write and its link
    jk.Fingerprints(str(tmp_path))
    assert len((directory / "fingerprint.key").read_bytes()) == 32 and sorted(os.listdir(str(directory))) == ["fingerprint.key"]


def test_a_fingerprint_written_before_unkeyed_is_still_recognised(tmp_path):
    fingerprint = jk.Fingerprints(str(tmp_path))
    legacy = "sha256:" + hashlib.sha256(KEY.encode()).hexdigest()[:16]
    assert fingerprint.matches(KEY, legacy) and fingerprint.matches(KEY, fingerprint(KEY))
    assert not fingerprint.matches(KEY + "x", legacy) and not fingerprint.matches(KEY, None)


def test_without_create_a_host_without_the_secret_gets_provisional_fingerprints_and_nothing_is_written(tmp_path):
    fingerprint = jk.Fingerprints(str(tmp_path), create=False)
    assert fingerprint.provisional and fingerprint(KEY).startswith("hmac-sha256:") and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("plant", ["symlink", "mode", "short"])
def test_a_planted_or_loose_fingerprint_secret_is_refused(tmp_path, plant):
    jk.Fingerprints(str(tmp_path))
    secret = tmp_path / "jwt_signing_key" / "fingerprint.key"
    if plant == "symlink":
        secret.unlink()
        (tmp_path / "elsewhere").write_bytes(b"x" * 32)
        secret.symlink_to(tmp_path / "elsewhere")
    elif plant == "mode":
        secret.chmod(0o644)
    else:
        secret.write_bytes(b"short")
    expected = {"symlink": "is a symbolic link", "mode": "mode 0644", "short": "is not a fingerprint secret"}[plant]
    with pytest.raises((jk.SigningKeyError, jk.rb.RunbookStateError), match=expected):
        jk.Fingerprints(str(tmp_path))


def test_locate_takes_each_variable_from_the_last_file_that_defines_it(tmp_path):
    directory = project(tmp_path, {
        ".env.dev": "JWT_SECRET=dev-secret-dev-secret-dev-secret-1234\nHASURA_GRAPHQL_JWT_SECRET={\"type\":\"HS256\",\"key\":\"x\"}\n",
        ".env.secrets": "JWT_SECRET='%s'\n" % KEY,
        ".env": "ENV=prod\nAUTH_JWT_SECRET=${JWT_SECRET}\n",
    })
    found = jk.locate(directory, "prod")
    assert found["JWT_SECRET"] == {"file": ".env.secrets", "raw": KEY}
    assert found["HASURA_GRAPHQL_JWT_SECRET"]["file"] == ".env.dev"
    resolved = jk.resolve(found)
    assert resolved["AUTH_JWT_SECRET"]["reference"] == "JWT_SECRET" and resolved["AUTH_JWT_SECRET"]["key"] == KEY
    assert resolved["HASURA_GRAPHQL_JWT_SECRET"]["key"] == "x"


def test_missing_jwt_secret_and_unknown_references_are_errors(tmp_path):
    with pytest.raises(jk.SigningKeyError, match="JWT_SECRET is not set"):
        jk.locate(project(tmp_path, {".env": "ENV=prod\n"}), "prod")
    found = {"JWT_SECRET": {"file": ".env", "raw": KEY}, "AUTH_JWT_SECRET": {"file": ".env", "raw": "${SOMETHING_ELSE}"}}
    with pytest.raises(jk.SigningKeyError, match="SOMETHING_ELSE"):
        jk.resolve(found)
    with pytest.raises(jk.SigningKeyError, match="shorter than 32"):
        jk.resolve({"JWT_SECRET": {"file": ".env", "raw": "short"}})
    with pytest.raises(jk.SigningKeyError, match="not a JSON object"):
        jk.resolve({"JWT_SECRET": {"file": ".env", "raw": KEY}, "HASURA_GRAPHQL_JWT_SECRET": {"file": ".env", "raw": "nope"}})


def test_updates_leave_references_alone_keep_hasura_fields_and_add_a_missing_hasura_config():
    found = {"JWT_SECRET": {"file": ".env.secrets", "raw": KEY},
             "AUTH_JWT_SECRET": {"file": ".env", "raw": "${JWT_SECRET}"}}
    updates = jk.updates_for(found, jk.resolve(found), "n" * 86, "prod")
    assert set(updates) == {".env.secrets"}
    assert updates[".env.secrets"]["JWT_SECRET"] == "n" * 86
    assert json.loads(updates[".env.secrets"]["HASURA_GRAPHQL_JWT_SECRET"]) == {"type": "HS256", "key": "n" * 86}
    found["HASURA_GRAPHQL_JWT_SECRET"] = {"file": ".env", "raw": '{"type":"HS256","key":"%s","claims_namespace":"x"}' % KEY}
    updates = jk.updates_for(found, jk.resolve(found), "n" * 86, "prod")
    assert json.loads(updates[".env"]["HASURA_GRAPHQL_JWT_SECRET"]) == {"type": "HS256", "key": "n" * 86, "claims_namespace": "x"}


@pytest.mark.parametrize("env_name,target", [("prod", ".env.secrets"), ("staging", ".env.staging"), ("dev", ".env.dev")])
def test_the_committed_env_dev_is_only_written_in_dev(env_name, target):
    found = {"JWT_SECRET": {"file": ".env.dev", "raw": KEY}}
    assert set(jk.updates_for(found, jk.resolve(found), "n" * 86, env_name)) == {target}


def test_set_values_keeps_quotes_export_comments_and_everything_else():
    text = "# secrets\nexport JWT_SECRET='old'\nOTHER=1\nHASURA_GRAPHQL_JWT_SECRET=\"{}\"\nJWT_SECRET=old2\n"
    out = jk.set_values(text, {"JWT_SECRET": "new", "HASURA_GRAPHQL_JWT_SECRET": "{j}", "AUTH_JWT_KEY": "new"})
    assert out == "# secrets\nexport JWT_SECRET='old'\nOTHER=1\nHASURA_GRAPHQL_JWT_SECRET=\"{j}\"\nJWT_SECRET=new\nAUTH_JWT_KEY=new\n"
    assert jk.set_values("A=1\nJWT_KEY=x\n", {"JWT_KEY": None}) == "A=1\n"


def test_secret_files_are_written_0600_atomically_and_backed_up_0600(tmp_path):
    path = tmp_path / ".env.secrets"
    path.write_text("JWT_SECRET=old\n")
    path.chmod(0o644)
    backup = jk.backup_file(str(path), jk.rb.utcnow())
    jk.write_secret_file(str(path), "JWT_SECRET=new\n")
    assert path.read_text() == "JWT_SECRET=new\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert open(backup).read() == "JWT_SECRET=old\n" and stat.S_IMODE((tmp_path / backup).stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".env.secrets", backup.rsplit("/", 1)[1]])


def test_diff_shows_fingerprints_only(tmp_path):
    resolved = jk.resolve({"JWT_SECRET": {"file": ".env.secrets", "raw": KEY},
                           "AUTH_JWT_SECRET": {"file": ".env", "raw": "${JWT_SECRET}"}})
    fingerprint = jk.Fingerprints(str(tmp_path))
    before = jk.diff_text(fingerprint, resolved)
    after = jk.diff_text(fingerprint, resolved, "sha256:new", {"HASURA_GRAPHQL_JWT_SECRET": ".env.secrets"})
    assert KEY not in before + after
    assert "JWT_SECRET (.env.secrets) = %s\n" % fingerprint(KEY) in before and "AUTH_JWT_SECRET (.env) = ${JWT_SECRET}" in after
    assert "HASURA_GRAPHQL_JWT_SECRET (.env.secrets) = sha256:new" in after


def test_tokens_are_signed_and_checked_like_jsonwebtoken_hs256():
    token = jk.sign_hs256({"sub": "u", "exp": 1}, KEY)
    assert jk.signed_with(token, KEY) and not jk.signed_with(token, KEY + "x") and not jk.signed_with("garbage", KEY)
    assert jk.claims_of(token) == {"sub": "u", "exp": 1}


@pytest.mark.parametrize("name", ["../../etc/cron.d/x", "/etc/passwd", "..", ".hidden", "a/b", "fam\nily", ""])
def test_a_project_name_that_would_leave_the_record_directory_is_refused(tmp_path, name):
    """Issue 17, item 8: PROJECT_NAME went unchecked into the rotation record's path."""
    backend = tmp_path / "backend"
    backend.mkdir()
    (backend / ".env").write_text("ENV=prod\nPROJECT_NAME='%s'\n" % name.replace("\n", "\\n") if name else "ENV=prod\n")
    if not name:  # no PROJECT_NAME: the directory's name, as nself does
        assert jk.record_path("/state", str(backend), "prod") == "/state/jwt_signing_key/backend.json"
        return
    with pytest.raises(jk.SigningKeyError, match="cannot name the rotation record"):
        jk.record_path("/state", str(backend), "prod")


def test_a_compose_project_name_names_the_record():
    assert jk.RECORD_NAME_RE.fullmatch("nself-family_prod.2")
