"""Functions through the Lambda API with boto3 against a real daemon: create, read, list,
update, delete, tags, account settings, and each refusal the issue names."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.control import ROLE, behave_zip, client, make_zip, python_zip, wait_active, wait_updated
from tests.daemon import Daemon, make_function, run_server, unique

HELLO = "def handler(event, context):\n    return {'hello': event.get('name'), 'v': 1}\n"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("control")
    declared = make_function(root / "declared", "#!/bin/sh\nexit 1\n")
    with run_server(["--data-dir", str(root / "state"), "--function", f"declared={declared}",
                     "--max-concurrency", "300"]) as d:
        yield d


@pytest.fixture(scope="module")
def lam(daemon: Daemon):  # type: ignore[no-untyped-def]
    return client(daemon)


def _code(err: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    e = err.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"], e["Error"]["Message"]


def test_create_invoke_get_list_delete(lam) -> None:  # type: ignore[no-untyped-def]
    name = "hello-" + unique()
    code = python_zip(HELLO)
    created = lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                                  Code={"ZipFile": code}, Description="first", Timeout=5, MemorySize=256,
                                  Environment={"Variables": {"A": "1"}}, Tags={"team": "x"})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["State"] == "Pending" and created["LastUpdateStatus"] == "InProgress"
    assert created["CodeSha256"] == base64.b64encode(hashlib.sha256(code).digest()).decode()
    assert created["CodeSize"] == len(code)
    assert created["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert created["PackageType"] == "Zip" and created["Architectures"] == ["x86_64"]
    assert created["EphemeralStorage"] == {"Size": 512} and created["TracingConfig"] == {"Mode": "PassThrough"}
    assert created["LoggingConfig"]["LogGroup"] == f"/aws/lambda/{name}"
    assert created["Version"] == "$LATEST" and created["Environment"] == {"Variables": {"A": "1"}}
    wait_active(lam, name)
    got = lam.get_function(FunctionName=name)
    assert got["Configuration"]["State"] == "Active" and got["Configuration"]["LastUpdateStatus"] == "Successful"
    assert got["Tags"] == {"team": "x"}
    import urllib.request

    assert urllib.request.urlopen(got["Code"]["Location"], timeout=10).read() == code
    assert got["Configuration"]["MemorySize"] == 256 and got["Configuration"]["Timeout"] == 5
    out = lam.invoke(FunctionName=name, Payload=json.dumps({"name": "ada"}))
    assert json.loads(out["Payload"].read()) == {"hello": "ada", "v": 1}
    assert out["ExecutedVersion"] == "$LATEST"
    conf = lam.get_function_configuration(FunctionName=f"arn:aws:lambda:us-east-1:000000000000:function:{name}")
    assert conf["Description"] == "first"
    names = [f["FunctionName"] for f in lam.get_paginator("list_functions").paginate(
        PaginationConfig={"PageSize": 1}).build_full_result()["Functions"]]
    assert name in names and "declared" in names
    with pytest.raises(ClientError) as err:
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": code})
    assert _code(err)[:2] == (409, "ResourceConflictException")
    deleted = lam.delete_function(FunctionName=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as err:
        lam.get_function(FunctionName=name)
    assert _code(err)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName=name)
    assert _code(err)[:2] == (404, "ResourceNotFoundException")


def test_update_code_and_configuration_with_revision_ids(lam) -> None:  # type: ignore[no-untyped-def]
    name = "upd-" + unique()
    first = lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                                Code={"ZipFile": python_zip(HELLO)})
    wait_active(lam, name)
    current = lam.get_function(FunctionName=name)["Configuration"]["RevisionId"]
    with pytest.raises(ClientError) as err:
        lam.update_function_code(FunctionName=name, ZipFile=python_zip(HELLO), RevisionId=first["RevisionId"] + "x")
    assert _code(err)[:2] == (412, "PreconditionFailedException")
    new = python_zip("def handler(event, context):\n    return 'v2'\n")
    updated = lam.update_function_code(FunctionName=name, ZipFile=new, RevisionId=current)
    assert updated["LastUpdateStatus"] == "InProgress" and updated["RevisionId"] != current
    assert updated["CodeSha256"] == base64.b64encode(hashlib.sha256(new).digest()).decode()
    wait_updated(lam, name)
    assert lam.invoke(FunctionName=name)["Payload"].read() == b'"v2"'
    conf = lam.update_function_configuration(
        FunctionName=name, Handler="app2.run", Environment={"Variables": {"GREETING": "hi"}}, Timeout=9)
    assert conf["Handler"] == "app2.run" and conf["Timeout"] == 9 and conf["RevisionId"] != updated["RevisionId"]
    wait_updated(lam, name)
    lam.update_function_code(FunctionName=name, ZipFile=make_zip({
        "app2.py": "import os\ndef run(event, context):\n    return os.environ['GREETING']\n"}))
    wait_updated(lam, name)
    assert lam.invoke(FunctionName=name)["Payload"].read() == b'"hi"'
    with pytest.raises(ClientError) as err:
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"AWS_REGION": "x"}})
    assert _code(err)[1] == "InvalidParameterValueException" and "AWS_REGION" in _code(err)[2]
    with pytest.raises(ClientError) as err:
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"BIG": "x" * 5000}})
    assert "4KB" in _code(err)[2]
    with pytest.raises(ClientError) as err:
        lam.update_function_configuration(FunctionName=name, MemorySize=20000)
    assert _code(err)[:2] == (400, "ValidationException")
    lam.delete_function(FunctionName=name)


@pytest.mark.parametrize("runtime", ["python2.7", "java21", "nodejs16.x"])
def test_unsupported_runtime_is_refused(lam, runtime: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as err:
        lam.create_function(FunctionName="rt-" + unique(), Runtime=runtime, Handler="a.b", Role=ROLE,
                            Code={"ZipFile": python_zip(HELLO)})
    status, code, message = _code(err)
    assert (status, code) == (400, "InvalidParameterValueException") and runtime in message


def test_code_from_s3_or_an_image_is_refused_clearly(lam) -> None:  # type: ignore[no-untyped-def]
    for code in ({"S3Bucket": "bucket", "S3Key": "k.zip"}, {"ImageUri": "000000000000.dkr.ecr.us-east-1.amazonaws.com/x:1"}):
        with pytest.raises(ClientError) as err:
            lam.create_function(FunctionName="s3-" + unique(), Runtime="python3.12", Handler="a.b", Role=ROLE,
                                Code=code)
        status, kind, message = _code(err)
        assert (status, kind) == (400, "InvalidParameterValueException")
        assert "S3" in message or "image" in message


def test_role_is_required_and_checked_by_shape(daemon: Daemon, lam) -> None:  # type: ignore[no-untyped-def]
    body = {"FunctionName": "norole", "Runtime": "python3.12", "Handler": "a.b",
            "Code": {"ZipFile": base64.b64encode(python_zip(HELLO)).decode()}}
    reply = daemon.request("POST", "/2015-03-31/functions", json.dumps(body).encode())
    assert reply.status == 400 and reply.headers["x-amzn-errortype"] == "ValidationException"
    assert "role" in reply.json()["message"]  # type: ignore[index]
    with pytest.raises(ClientError) as err:
        lam.create_function(FunctionName="badrole", Runtime="python3.12", Handler="a.b", Role="not-an-arn",
                            Code={"ZipFile": python_zip(HELLO)})
    assert _code(err)[:2] == (400, "ValidationException")


def test_not_a_zip_and_zip_slip_are_refused_and_write_nothing_outside(daemon: Daemon, lam, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as err:
        lam.create_function(FunctionName="nozip", Runtime="python3.12", Handler="a.b", Role=ROLE,
                            Code={"ZipFile": b"this is not a zip"})
    assert _code(err)[:2] == (400, "InvalidParameterValueException")
    escaped = f"../../../../../../../../..{tmp_path}/escaped.txt"
    for files in ({escaped: "x"}, {str(tmp_path / "absolute.txt"): "x"}):
        with pytest.raises(ClientError) as err:
            lam.create_function(FunctionName="slip-" + unique(), Runtime="python3.12", Handler="a.b", Role=ROLE,
                                Code={"ZipFile": make_zip(files)})
        assert _code(err)[:2] == (400, "InvalidParameterValueException")
    link = make_zip({"app.py": "x = 1\n"})
    import io
    import zipfile

    buf = io.BytesIO(link)
    with zipfile.ZipFile(buf, "a") as zf:
        info = zipfile.ZipInfo("escape")
        info.external_attr = 0o120777 << 16  # a symbolic link...
        zf.writestr(info, str(tmp_path))  # ...pointing out of the package
    with pytest.raises(ClientError) as err:
        lam.create_function(FunctionName="slip-" + unique(), Runtime="python3.12", Handler="a.b", Role=ROLE,
                            Code={"ZipFile": buf.getvalue()})
    status, code, message = _code(err)
    assert (status, code) == (400, "InvalidParameterValueException") and "outside" in message
    assert list(tmp_path.iterdir()) == []
    names = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert not any(n.startswith(("slip-", "nozip")) for n in names)


@pytest.mark.slow
def test_zip_over_50_mb_is_413(lam) -> None:  # type: ignore[no-untyped-def]
    big = os.urandom(50 * 1024 * 1024 + 1)
    with pytest.raises(ClientError) as err:
        lam.create_function(FunctionName="big", Runtime="python3.12", Handler="a.b", Role=ROLE,
                            Code={"ZipFile": big})
    assert _code(err)[:2] == (413, "RequestEntityTooLargeException")


def test_unzipped_over_quota_is_refused(lam) -> None:  # type: ignore[no-untyped-def]
    # Zeros compress ~1000:1: a small upload that unpacks past 262,144,000 bytes.
    bomb = make_zip({"zeros.bin": bytes(262_144_001)})
    with pytest.raises(ClientError) as err:
        lam.create_function(FunctionName="bomb", Runtime="python3.12", Handler="a.b", Role=ROLE,
                            Code={"ZipFile": bomb})
    status, code, message = _code(err)
    assert (status, code) == (400, "InvalidParameterValueException") and "262144000" in message


def test_tags_and_account_settings(lam) -> None:  # type: ignore[no-untyped-def]
    name = "tags-" + unique()
    arn = lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                              Code={"ZipFile": behave_zip()})["FunctionArn"]
    lam.tag_resource(Resource=arn, Tags={"a": "1", "b": "2"})
    lam.untag_resource(Resource=arn, TagKeys=["a"])
    assert lam.list_tags(Resource=arn)["Tags"] == {"b": "2"}
    settings = lam.get_account_settings()
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 300
    assert settings["AccountLimit"]["CodeSizeUnzipped"] == 262144000
    assert settings["AccountUsage"]["FunctionCount"] >= 2
    lam.delete_function(FunctionName=name)


def test_provided_runtime_keeps_mode_bits_and_runs(lam) -> None:  # type: ignore[no-untyped-def]
    name = "prov-" + unique()
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE, Code={"ZipFile": behave_zip()},
                        Environment={"Variables": {"COLOUR": "blue"}})
    wait_active(lam, name)
    out = lam.invoke(FunctionName=name, Payload=json.dumps({"env": "COLOUR"}))
    assert out["Payload"].read() == b'"blue"'
    lam.delete_function(FunctionName=name)


def test_declared_functions_are_listed_and_read_only(lam) -> None:  # type: ignore[no-untyped-def]
    conf = lam.get_function_configuration(FunctionName="declared")
    assert conf["FunctionName"] == "declared" and conf["Runtime"] == "provided"
    with pytest.raises(ClientError) as err:
        lam.update_function_configuration(FunctionName="declared", Timeout=10)
    status, code, message = _code(err)
    assert (status, code) == (400, "InvalidParameterValueException") and "rapid.toml" in message
    with pytest.raises(ClientError) as err:
        lam.delete_function(FunctionName="declared")
    assert _code(err)[1] == "InvalidParameterValueException"


def test_update_during_a_running_invocation(daemon: Daemon, lam) -> None:  # type: ignore[no-untyped-def]
    name = "live-" + unique()
    slow = "import time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return 'old'\n"
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": python_zip(slow)}, Timeout=30)
    wait_active(lam, name)
    other = client_like(lam)
    results: list[bytes] = []
    started = threading.Event()

    def run() -> None:
        started.set()
        results.append(other.invoke(FunctionName=name, Payload=b'{"sleep": 2}')["Payload"].read())

    thread = threading.Thread(target=run)
    thread.start()
    started.wait()
    daemon.wait_for_line(rf"\[{name}\] START RequestId")  # the invocation is running
    lam.update_function_code(FunctionName=name, ZipFile=python_zip("def handler(e, c):\n    return 'new'\n"))
    wait_updated(lam, name)
    assert lam.invoke(FunctionName=name)["Payload"].read() == b'"new"'
    thread.join(30)
    assert results == [b'"old"']  # the invocation in flight finished on the old code
    lam.delete_function(FunctionName=name)


def test_delete_during_a_running_invocation_finishes_it(daemon: Daemon, lam) -> None:  # type: ignore[no-untyped-def]
    name = "gone-" + unique()
    slow = "import time\ndef handler(event, context):\n    time.sleep(1.5)\n    return 'done'\n"
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": python_zip(slow)}, Timeout=30)
    wait_active(lam, name)
    other = client_like(lam)
    results: list[bytes] = []
    thread = threading.Thread(target=lambda: results.append(other.invoke(FunctionName=name)["Payload"].read()))
    thread.start()
    daemon.wait_for_line(rf"\[{name}\] START RequestId")
    lam.delete_function(FunctionName=name)
    thread.join(30)
    assert not thread.is_alive()
    assert results == [b'"done"']


def client_like(lam):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.client("lambda", endpoint_url=lam.meta.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 0}, read_timeout=60))
