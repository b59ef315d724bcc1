from ansible_collections.nfamily.ops.plugins.filter.redact import FilterModule


def test_redact_replaces_secret_looking_values_at_any_depth():
    redact = FilterModule().filters()["redact"]
    value = {"backup": "x.dump", "db_password": "hunter2", "offsite": {"bucket": "b", "secret_key": "s"},
             "steps": [{"api_token": "t", "name": "restore"}]}
    assert redact(value) == {"backup": "x.dump", "db_password": "[redacted]", "offsite": {"bucket": "b", "secret_key": "[redacted]"},
                             "steps": [{"api_token": "[redacted]", "name": "restore"}]}
    assert value["db_password"] == "hunter2"  # the input is not changed
