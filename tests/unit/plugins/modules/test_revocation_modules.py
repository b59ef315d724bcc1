import pytest

from ansible_collections.nfamily.ops.plugins.modules import device_revocation, session_revocation

FAMILY = "00000000-0000-0000-0000-000000000001"


def project(tmp_path):
    (tmp_path / ".env").write_text("ENV=prod\nPROJECT_NAME=fam\nPOSTGRES_DB=fam\n")
    return str(tmp_path)


@pytest.mark.parametrize("args,message", [
    ({"family_id": FAMILY + "'; DROP TABLE public.users; --"}, "is not a UUID"),
    ({"device_ids": [FAMILY, "1 OR 1=1"]}, "device id '1 OR 1=1' is not a UUID"),
    ({"device_names": ["TV"]}, "device_names needs family_id"),
    ({"family_id": FAMILY, "device_names": [" "]}, "empty name"),
    ({}, "give family_id, device_ids or device_names"),
])
def test_device_input_is_refused_before_the_database_is_touched(run_module, tmp_path, args, message):
    # no nself answers are scripted: any call to the database would fail the test
    result, calls = run_module(device_revocation.main, dict(args, project_dir=project(tmp_path)))
    assert result["failed"] and message in result["msg"] and "nothing was changed" in result["msg"] and calls == []


@pytest.mark.parametrize("args,message", [
    ({}, "give either all_users=true or user_ids"),
    ({"all_users": True, "user_ids": [FAMILY]}, "give either all_users=true or user_ids"),
    ({"user_ids": ["x"]}, "user id 'x' is not a UUID"),
])
def test_session_input_is_refused_before_the_database_is_touched(run_module, tmp_path, args, message):
    result, calls = run_module(session_revocation.main, dict(args, project_dir=project(tmp_path)))
    assert result["failed"] and message in result["msg"] and calls == []
