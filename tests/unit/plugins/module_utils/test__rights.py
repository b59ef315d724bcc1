import os

from ansible_collections.nfamily.ops.plugins.module_utils import _rights


def test_rights_name_each_thing_the_user_cannot_do(tmp_path, monkeypatch):
    project_dir = str(tmp_path)
    (tmp_path / ".env.secrets").write_text("POSTGRES_PASSWORD=x\n")
    secrets, socket = os.path.join(project_dir, ".env.secrets"), tmp_path / "docker.sock"
    socket.write_text("")
    denied = (secrets, str(tmp_path), str(socket))
    monkeypatch.setattr(_rights.os, "access", lambda path, mode: path not in denied)
    message = _rights.missing_rights(project_dir, "prod", str(tmp_path / "state" / "nfamily-ops"), str(socket))
    assert "cannot read %s (" % secrets in message and "write %s (%s is " % (tmp_path / "state" / "nfamily-ops", tmp_path) in message
    assert "use the Docker daemon (%s is " % socket in message and "ansible_become: true" in message
    monkeypatch.setattr(_rights.os, "access", lambda path, mode: True)
    assert _rights.missing_rights(project_dir, "prod", str(tmp_path / "state"), str(socket)) is None
