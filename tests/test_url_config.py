"""Function URL configurations through boto3 and the AWS CLI: create, read, update, list,
delete, on a function and on an alias; AWS's errors; kept across a restart."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from tests.control import ROLE, client, python_zip, wait_active
from tests.daemon import Daemon, run_server, unique

URL_RE = re.compile(r"^http://([a-z0-9]{32})\.lambda-url\.us-east-1\.localhost:(\d+)/$")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("urlconfig")
    with run_server(["--data-dir", str(root / "state")]) as d:
        yield d


@pytest.fixture(scope="module")
def lam(daemon: Daemon):  # type: ignore[no-untyped-def]
    return client(daemon)


def _err(err: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    e = err.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"], e["Error"]["Message"]


def _function(lam) -> str:  # type: ignore[no-untyped-def]
    name = "url-" + unique()
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": python_zip("def handler(event, context):\n    return 'hi'\n")})
    wait_active(lam, name)
    return name


def test_create_get_update_list_delete(lam, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    name = _function(lam)
    cors = {"AllowOrigins": ["http://a.example"], "AllowMethods": ["GET", "POST"], "AllowHeaders": ["x-one"],
            "ExposeHeaders": ["x-two"], "MaxAge": 60, "AllowCredentials": True}
    made = lam.create_function_url_config(FunctionName=name, AuthType="NONE", Cors=cors)
    assert made["ResponseMetadata"]["HTTPStatusCode"] == 201
    m = URL_RE.match(made["FunctionUrl"])
    assert m is not None and int(m.group(2)) == daemon.port, made["FunctionUrl"]
    assert made["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert made["AuthType"] == "NONE" and made["InvokeMode"] == "BUFFERED" and made["Cors"] == cors
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", made["CreationTime"])

    got = lam.get_function_url_config(FunctionName=name)
    assert got["FunctionUrl"] == made["FunctionUrl"] and got["LastModifiedTime"] == made["CreationTime"]

    changed = lam.update_function_url_config(FunctionName=name, AuthType="AWS_IAM", InvokeMode="RESPONSE_STREAM",
                                             Cors={"AllowOrigins": ["*"]})
    assert changed["FunctionUrl"] == made["FunctionUrl"]  # the address never changes
    assert changed["AuthType"] == "AWS_IAM" and changed["InvokeMode"] == "RESPONSE_STREAM"
    assert changed["Cors"] == {"AllowOrigins": ["*"]}
    assert changed["LastModifiedTime"] >= changed["CreationTime"]
    kept = lam.update_function_url_config(FunctionName=name, AuthType="NONE")
    assert kept["InvokeMode"] == "RESPONSE_STREAM" and kept["Cors"] == {"AllowOrigins": ["*"]}

    listed = lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]
    assert [u["FunctionUrl"] for u in listed] == [made["FunctionUrl"]]

    assert lam.delete_function_url_config(FunctionName=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as err:
        lam.get_function_url_config(FunctionName=name)
    assert _err(err) == (404, "ResourceNotFoundException", "The resource you requested does not exist.")
    with pytest.raises(ClientError) as err:
        lam.delete_function_url_config(FunctionName=name)
    assert _err(err)[:2] == (404, "ResourceNotFoundException")
    assert lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"] == []


def test_alias_urls_and_their_lifetimes(lam) -> None:  # type: ignore[no-untyped-def]
    name = _function(lam)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    plain = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    live = lam.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE")
    assert live["FunctionArn"].endswith(f":function:{name}:live")
    assert live["FunctionUrl"] != plain["FunctionUrl"]
    assert lam.get_function_url_config(FunctionName=f"{name}:live")["FunctionUrl"] == live["FunctionUrl"]
    urls = [u["FunctionUrl"] for u in lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]]
    assert urls == [plain["FunctionUrl"], live["FunctionUrl"]]
    page = lam.list_function_url_configs(FunctionName=name, MaxItems=1)
    assert len(page["FunctionUrlConfigs"]) == 1 and page["NextMarker"]
    lam.delete_alias(FunctionName=name, Name="live")  # the alias's URL goes with it
    urls = [u["FunctionUrl"] for u in lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]]
    assert urls == [plain["FunctionUrl"]]
    lam.delete_function(FunctionName=name)
    with pytest.raises(ClientError) as err:
        lam.get_function_url_config(FunctionName=name)
    assert _err(err)[:2] == (404, "ResourceNotFoundException")


def test_errors(lam) -> None:  # type: ignore[no-untyped-def]
    name = _function(lam)
    lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    with pytest.raises(ClientError) as err:
        lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    status, code, message = _err(err)
    assert (status, code) == (409, "ResourceConflictException")
    assert "FunctionUrlConfig exists for this Lambda function" in message
    with pytest.raises(ClientError) as err:
        lam.create_function_url_config(FunctionName="missing-" + unique(), AuthType="NONE")
    assert _err(err)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as err:
        lam.create_function_url_config(FunctionName=name, Qualifier="nosuch", AuthType="NONE")
    assert _err(err)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as err:
        lam.create_function_url_config(FunctionName=name, Qualifier="1", AuthType="NONE")
    assert _err(err)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as err:
        lam.update_function_url_config(FunctionName=name, AuthType="BASIC")
    assert _err(err)[:2] == (400, "ValidationException") and "[NONE, AWS_IAM]" in _err(err)[2]
    with pytest.raises(ClientError) as err:
        lam.update_function_url_config(FunctionName=name, InvokeMode="FAST")
    assert _err(err)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as err:
        lam.update_function_url_config(FunctionName=name, Cors={"MaxAge": 86401})
    assert _err(err)[:2] == (400, "ValidationException") and "cors.maxAge" in _err(err)[2]
    with pytest.raises(ClientError) as err:
        lam.update_function_url_config(FunctionName=name, Cors={"AllowMethods": ["BREW"]})
    assert _err(err)[:2] == (400, "InvalidParameterValueException")
    # Nothing refused changed anything.
    got = lam.get_function_url_config(FunctionName=name)
    assert got["AuthType"] == "NONE" and "Cors" not in got


def test_kept_across_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = str(tmp_path / "state")
    with run_server(["--data-dir", state]) as d:
        lam = client(d)
        name = _function(lam)
        made = lam.create_function_url_config(FunctionName=name, AuthType="NONE", Cors={"AllowOrigins": ["*"]})
    with run_server(["--data-dir", state]) as d:
        got = client(d).get_function_url_config(FunctionName=name)
        assert URL_RE.match(got["FunctionUrl"]).group(1) == URL_RE.match(made["FunctionUrl"]).group(1)
        assert got["Cors"] == {"AllowOrigins": ["*"]}


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_aws_cli_creates_a_url(lam, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    name = _function(lam)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": ""}
    out = subprocess.run(
        ["aws", "lambda", "create-function-url-config", "--endpoint-url", f"http://127.0.0.1:{daemon.port}",
         "--function-name", name, "--auth-type", "NONE", "--invoke-mode", "RESPONSE_STREAM",
         "--cors", "AllowOrigins=http://a.example,AllowMethods=GET"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert URL_RE.match(made["FunctionUrl"]) and made["InvokeMode"] == "RESPONSE_STREAM"
    assert made["Cors"] == {"AllowOrigins": ["http://a.example"], "AllowMethods": ["GET"]}
