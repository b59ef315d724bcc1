from ansible_collections.nfamily.ops.plugins.module_utils import _rights


def test_rights_name_each_thing_the_user_cannot_do(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env.secrets").write_text("POSTGRES_PASSWORD=x\n")
    secrets, socket, state = str(project / ".env.secrets"), tmp_path / "docker.sock", tmp_path / "state" / "nfamily-ops"
    socket.write_text("")
    denied = (secrets, str(tmp_path), str(socket))
    monkeypatch.setattr(_rights.os, "access", lambda path, mode: path not in denied)
    message = _rights.missing_rights(str(project), "prod", str(state), str(socket))
    assert "cannot read %s (" % secrets in message and "write %s (%s is " % (state, tmp_path) in message
    assert "use the Docker daemon (%s is " % socket in message and "ansible_become: true" in message
    monkeypatch.setattr(_rights.os, "access", lambda path, mode: True)
    assert _rights.missing_rights(str(project), "prod", str(state), str(socket)) is None


def test_a_project_directory_the_user_cannot_enter_is_named_first(tmp_path, monkeypatch):
    monkeypatch.setattr(_rights.os, "access", lambda path, mode: path != str(tmp_path))
    message = _rights.missing_rights(str(tmp_path), "prod", None, str(tmp_path / "no.sock"))
    assert message.split(" cannot ", 1)[1].startswith("enter %s (" % tmp_path)
