"""The event-invoke-config API through boto3 (Put replaces, Update merges, Get, List, Delete),
AWS's validation errors, the settings taking effect, kept across restarts; and the same
settings in rapid.toml."""

from __future__ import annotations

import datetime
import json
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.daemon import BEHAVE, make_function, run_cli, run_server

REGION, ACCOUNT = "us-east-1", "000000000000"
ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function"
Q = f"arn:aws:sqs:{REGION}:{ACCOUNT}"


def client(d, validate=True):
    return boto3.client(
        "lambda", endpoint_url=d.url, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=validate),
    )


def error_of(call, **kw):
    with pytest.raises(ClientError) as exc:
        call(**kw)
    err = exc.value.response
    return err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"], err["Error"]["Message"]


@pytest.fixture
def setup(tmp_path):
    behave = make_function(tmp_path / "behave", BEHAVE)
    args = ["--function", f"cfg={behave}", "--function", f"other={behave}", "--data-dir", str(tmp_path / "data"),
            "--timeout", "10"]
    return args, {"RAPID_ASYNC_TIME_SCALE": "0.01"}, tmp_path


def test_put_get_update_list_delete(setup):
    args, env, _ = setup
    with run_server(args, env=env) as d:
        lam = client(d)
        out = lam.put_function_event_invoke_config(
            FunctionName="cfg", MaximumRetryAttempts=1,
            DestinationConfig={"OnSuccess": {"Destination": f"{Q}:good"}},
        )
        assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert out["FunctionArn"] == f"{ARN}:cfg:$LATEST"
        assert out["MaximumRetryAttempts"] == 1 and "MaximumEventAgeInSeconds" not in out
        assert out["DestinationConfig"] == {"OnSuccess": {"Destination": f"{Q}:good"}, "OnFailure": {}}
        assert isinstance(out["LastModified"], datetime.datetime)
        got = lam.get_function_event_invoke_config(FunctionName="cfg")
        assert {k: got[k] for k in ("FunctionArn", "MaximumRetryAttempts", "DestinationConfig")} == {
            k: out[k] for k in ("FunctionArn", "MaximumRetryAttempts", "DestinationConfig")}
        # Update merges: the retry setting and OnSuccess stay.
        up = lam.update_function_event_invoke_config(
            FunctionName=f"{ARN}:cfg", MaximumEventAgeInSeconds=3600,
            DestinationConfig={"OnFailure": {"Destination": f"{Q}:bad"}},
        )
        assert (up["MaximumRetryAttempts"], up["MaximumEventAgeInSeconds"]) == (1, 3600)
        assert up["DestinationConfig"] == {"OnSuccess": {"Destination": f"{Q}:good"},
                                           "OnFailure": {"Destination": f"{Q}:bad"}}
        assert up["LastModified"] >= out["LastModified"]
        # Put replaces: what it omits is gone.
        again = lam.put_function_event_invoke_config(FunctionName="cfg", Qualifier="$LATEST",
                                                     MaximumEventAgeInSeconds=60)
        assert "MaximumRetryAttempts" not in again and again["MaximumEventAgeInSeconds"] == 60
        assert again["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
        listed = lam.list_function_event_invoke_configs(FunctionName="cfg")["FunctionEventInvokeConfigs"]
        assert [(c["FunctionArn"], c["MaximumEventAgeInSeconds"]) for c in listed] == [(f"{ARN}:cfg:$LATEST", 60)]
        assert lam.list_function_event_invoke_configs(FunctionName="other")["FunctionEventInvokeConfigs"] == []
        gone = lam.delete_function_event_invoke_config(FunctionName="cfg")
        assert gone["ResponseMetadata"]["HTTPStatusCode"] == 204
        missing = (404, "ResourceNotFoundException", f"The function {ARN}:cfg:$LATEST doesn't have an EventInvokeConfig")
        assert error_of(lam.get_function_event_invoke_config, FunctionName="cfg") == missing
        assert error_of(lam.delete_function_event_invoke_config, FunctionName="cfg") == missing
        assert error_of(lam.update_function_event_invoke_config, FunctionName="cfg", MaximumRetryAttempts=0) == missing


def test_bad_values_get_awss_errors(setup):
    args, env, _ = setup
    with run_server(args, env=env) as d:
        lam, raw = client(d), client(d, validate=False)
        put = lam.put_function_event_invoke_config
        assert error_of(put, FunctionName="cfg", MaximumRetryAttempts=5) == (
            400, "ValidationException", ("1 validation error detected: Value '5' at 'maximumRetryAttempts' failed to "
            "satisfy constraint: Member must have value less than or equal to 2"))
        assert error_of(put, FunctionName="cfg", MaximumEventAgeInSeconds=44444) == (
            400, "ValidationException", ("1 validation error detected: Value '44444' at 'maximumEventAgeInSeconds' "
            "failed to satisfy constraint: Member must have value less than or equal to 21600"))
        # botocore refuses values under the minimum itself; without its check, rapid does.
        assert error_of(raw.put_function_event_invoke_config, FunctionName="cfg", MaximumEventAgeInSeconds=59,
                        MaximumRetryAttempts=-1) == (
            400, "ValidationException", ("2 validation errors detected: Value '-1' at 'maximumRetryAttempts' failed to "
            "satisfy constraint: Member must have value greater than or equal to 0; Value '59' at "
            "'maximumEventAgeInSeconds' failed to satisfy constraint: Member must have value greater than or equal "
            "to 60"))
        status, code, message = error_of(put, FunctionName="cfg", DestinationConfig={"OnSuccess": {"Destination": "invalid"}})
        assert (status, code) == (400, "ValidationException")
        assert message.startswith("1 validation error detected: Value 'invalid' at 'destinationConfig.onSuccess."
                                  "destination' failed to satisfy constraint: Member must satisfy regular expression "
                                  "pattern: ^$|arn:(aws[a-zA-Z0-9-]*)")
        assert error_of(put, FunctionName="cfg") == (
            400, "InvalidParameterValueException", ("You must specify at least one of error handling or destination "
            "setting."))
        assert error_of(put, FunctionName="cfg", DestinationConfig={"OnFailure": {"Destination": f"{ARN}:cfg"}}) == (
            400, "InvalidParameterValueException", "You can't specify the function as a destination for itself.")
        assert error_of(put, FunctionName="cfg", DestinationConfig={"OnFailure": {"Destination": f"{ARN}:ghost"}}) == (
            400, "InvalidParameterValueException", f"The destination ARN {ARN}:ghost is invalid.")
        sns = f"arn:aws:sns:{REGION}:{ACCOUNT}:topic"
        status, code, message = error_of(put, FunctionName="cfg", DestinationConfig={"OnSuccess": {"Destination": sns}})
        assert (status, code) == (400, "InvalidParameterValueException")
        assert message.startswith(f"The provided destination config DestinationConfig(onSuccess=OnSuccess("
                                  f"destination={sns}), onFailure=null) is invalid.")
        assert error_of(put, FunctionName="ghost", MaximumRetryAttempts=1) == (
            404, "ResourceNotFoundException", f"Function not found: {ARN}:ghost")
        assert error_of(lam.get_function_event_invoke_config, FunctionName="cfg", Qualifier="7")[:2] == (
            404, "ResourceNotFoundException")
        r = d.request("GET", "/2019-09-25/functions/cfg/event-invoke-config/list?MaxItems=51")
        assert (r.status, r.headers["x-amzn-errortype"]) == (400, "ValidationException")
        assert "Member must have value less than or equal to 50" in r.json()["message"]
        r = d.request("PUT", "/2019-09-25/functions/cfg/event-invoke-config", b"{nope")
        assert (r.status, r.headers["x-amzn-errortype"]) == (400, "InvalidRequestContentException")
        # Nothing was stored by any of that.
        assert lam.list_function_event_invoke_configs(FunctionName="cfg")["FunctionEventInvokeConfigs"] == []


def test_settings_take_effect_and_survive_a_restart(setup):
    args, env, tmp = setup
    records = tmp / "failed.ndjson"
    with run_server(args, env=env) as d:
        client(d).put_function_event_invoke_config(
            FunctionName="cfg", MaximumRetryAttempts=0,
            DestinationConfig={"OnFailure": {"Destination": f"file://{records}"}},
        )
        r = d.invoke("cfg", {"error": "Once"}, headers={"X-Amz-Invocation-Type": "Event"})
        rid = r.headers["x-amzn-requestid"]
        deadline = time.monotonic() + 10
        while not (records.exists() and records.read_text().endswith("}\n")) and time.monotonic() < deadline:
            time.sleep(0.02)
        rec = json.loads(records.read_text().splitlines()[0])
        assert rec["requestContext"]["requestId"] == rid
        assert rec["requestContext"]["condition"] == "RetriesExhausted"
        assert rec["requestContext"]["approximateInvokeCount"] == 1  # MaximumRetryAttempts 0: no retry
    with run_server(args, env=env) as d:
        got = client(d).get_function_event_invoke_config(FunctionName="cfg")
        assert got["MaximumRetryAttempts"] == 0
        assert got["DestinationConfig"]["OnFailure"] == {"Destination": f"file://{records}"}


def test_toml_settings_are_the_config_and_are_checked(tmp_path):
    behave = make_function(tmp_path / "behave", BEHAVE)
    toml = tmp_path / "rapid.toml"

    def start(fn_settings, server=""):
        toml.write_text(f'{server}\n[functions.f]\npath = "{behave}"\n{fn_settings}\n'
                        f'[functions.g]\npath = "{behave}"\n')
        return run_cli(["serve", "--port", "0", "--config", str(toml)])

    for settings, words in [
        ("maximum_retry_attempts = 3", "maximum_retry_attempts"),
        ("maximum_event_age = 59", "maximum_event_age"),
        (f'on_failure = "{ARN}:ghost"', "functions.f.on_failure"),
        (f'on_success = "{ARN}:f"', "destination for itself"),
        (f'dead_letter = "arn:aws:sns:{REGION}:{ACCOUNT}:t"', "functions.f.dead_letter"),
        ('on_success = "file://relative"', "functions.f.on_success"),
        ("retries = 1", "retries"),
    ]:
        r = start(settings)
        assert r.returncode == 2 and words in r.stderr, (settings, r.stderr)
        assert r.stderr.count("\n") == 1
    r = start("", server="async_time_scale = 0")
    assert r.returncode == 2 and "async_time_scale" in r.stderr
    r = run_cli(["serve", "--function", f"f={behave}"], env={"RAPID_ASYNC_CONCURRENCY": "many"})
    assert r.returncode == 2 and "async_concurrency" in r.stderr
    # Good settings are the function's event-invoke-config, as Get shows it.
    toml.write_text(f'data_dir = "data"\n[functions.f]\npath = "{behave}"\nmaximum_retry_attempts = 1\n'
                    f'maximum_event_age = 120\non_failure = "{ARN}:g"\n[functions.g]\npath = "{behave}"\n')
    with run_server(["--config", str(toml)]) as d:
        got = client(d).get_function_event_invoke_config(FunctionName="f")
        assert (got["MaximumRetryAttempts"], got["MaximumEventAgeInSeconds"]) == (1, 120)
        assert got["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {"Destination": f"{ARN}:g"}}


def test_one_daemon_per_data_dir(setup):
    args, env, tmp = setup
    with run_server(args, env=env):
        r = run_cli(["serve", "--port", "0", *args])
        assert r.returncode == 2 and "is in use by another rapid daemon" in r.stderr
        assert r.stderr.count("\n") == 1
    (tmp / "junk").mkdir()
    (tmp / "junk" / "events.db").write_bytes(b"this is not a database" * 100)
    r = run_cli(["serve", "--port", "0", "--function", f"f={tmp / 'behave'}", "--data-dir", str(tmp / "junk")])
    assert r.returncode == 2 and "cannot open the async queue" in r.stderr
