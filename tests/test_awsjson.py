"""The AWS JSON protocol's refusals, the same for every service rapid serves that way:
an unknown operation and a body that is not a JSON object are 400s in botocore's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rapid.api import awsjson
from rapid.http.message import Request
from tests.daemon import run_server


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def request(target: str, body: bytes) -> Request:
    req = Request("POST", "/")
    req.headers["x-amz-target"] = target
    req.body = body
    return req


def test_read_names_the_operation_and_decodes_the_body() -> None:
    op, handler, body = awsjson.read(request("Svc.Get", b'{"a": 1}'), {"Get": "the handler"}, Refused)
    assert (op, handler, body) == ("Get", "the handler", {"a": 1})
    assert awsjson.read(request("Svc.Get", b""), {"Get": 1}, Refused)[2] == {}


@pytest.mark.parametrize("target, body, code", [
    ("Svc.Nope", b"{}", "UnknownOperationException"),
    ("Svc", b"{}", "UnknownOperationException"),
    ("Svc.Get", b"{not json", "SerializationException"),
    ("Svc.Get", b"[1, 2]", "SerializationException"),
])
def test_read_refuses_in_the_apis_own_error_type(target: str, body: bytes, code: str) -> None:
    with pytest.raises(Refused) as info:
        awsjson.read(request(target, body), {"Get": 1}, Refused)
    assert info.value.code == code


def test_refusal_has_botocores_shape() -> None:
    r = awsjson.refusal("ThingNotFound", "no thing", "rid-1", "application/x-amz-json-1.1", 404)
    assert r.status == 404 and json.loads(r.body) == {"__type": "ThingNotFound", "message": "no thing"}
    assert ("x-amzn-ErrorType", "ThingNotFound") in r.headers and ("x-amzn-RequestId", "rid-1") in r.headers


@pytest.mark.parametrize("service", ["AnyScaleFrontendService", "CodeDeploy_20141006", "Logs_20140328"])
def test_each_json_service_refuses_alike(tmp_path: Path, service: str) -> None:
    with run_server(["--data-dir", str(tmp_path)]) as daemon:
        for target, body, code in ((f"{service}.NoSuchOperation", b"{}", "UnknownOperationException"),
                                   (f"{service}.{_an_operation(service)}", b"{oops", "SerializationException")):
            got = daemon.request("POST", "/", body, {"X-Amz-Target": target,
                                                     "Content-Type": "application/x-amz-json-1.1"})
            assert got.status == 400, (target, got.status, got.body)
            assert json.loads(got.body)["__type"] == code
            assert got.headers["x-amzn-errortype"] == code


def _an_operation(service: str) -> str:
    return {"AnyScaleFrontendService": "DescribeScalableTargets", "CodeDeploy_20141006": "ListDeployments",
            "Logs_20140328": "DescribeLogGroups"}[service]
