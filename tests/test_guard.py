"""The management API's guard, with requests signed by botocore's own SigV4 signer."""

from __future__ import annotations

import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from rapid.api.guard import Guard, is_loopback
from rapid.core.errors import ServiceError
from rapid.http.message import Request

KEYS = {"AKIDRAPID": "s3cret"}


def _signed(key: str, secret: str, method: str = "GET", target: str = "/2017-03-31/tags/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af",
            body: bytes = b"") -> Request:
    aws = AWSRequest(method=method, url=f"http://127.0.0.1:8080{target}", data=body,
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(key, secret), "lambda", "us-east-1").add_auth(aws)
    prepared = aws.prepare()
    req = Request(method, target)
    req.headers = {k.lower(): v for k, v in prepared.headers.items()}
    req.headers["host"] = "127.0.0.1:8080"
    req.body = body
    return req


def _code(guard: Guard, req: Request) -> str | None:
    try:
        guard.check(req)
    except ServiceError as exc:
        assert exc.status == 403
        return exc.code
    return None


def test_a_right_signature_passes_on_paths_queries_and_bodies() -> None:
    guard = Guard(KEYS)
    assert _code(guard, _signed("AKIDRAPID", "s3cret")) is None
    assert _code(guard, _signed("AKIDRAPID", "s3cret", target="/2015-03-31/functions?FunctionVersion=ALL&MaxItems=2")) is None
    assert _code(guard, _signed("AKIDRAPID", "s3cret", "POST", "/2015-03-31/functions", b'{"a": 1}')) is None


def test_wrong_key_secret_body_or_time_is_refused_as_aws_words_it() -> None:
    guard = Guard(KEYS)
    assert _code(guard, _signed("AKIDOTHER", "s3cret")) == "UnrecognizedClientException"
    assert _code(guard, _signed("AKIDRAPID", "wrong")) == "InvalidSignatureException"
    tampered = _signed("AKIDRAPID", "s3cret", "POST", "/2015-03-31/functions", b'{"a": 1}')
    tampered.body = b'{"a": 2}'
    tampered.headers.pop("x-amz-content-sha256", None)
    assert _code(guard, tampered) == "InvalidSignatureException"
    late = Guard(KEYS, clock=lambda: time.time() + 3600)
    assert _code(late, _signed("AKIDRAPID", "s3cret")) == "InvalidSignatureException"
    assert _code(guard, Request("GET", "/2015-03-31/functions")) == "MissingAuthenticationTokenException"


def test_without_keys_everything_is_refused_and_says_how_to_enable_it() -> None:
    with pytest.raises(ServiceError) as err:
        Guard(None).check(_signed("AKIDRAPID", "s3cret"))
    assert err.value.code == "AccessDeniedException" and "--credentials" in err.value.message


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                           ("localhost", True), ("0.0.0.0", False), ("10.0.0.1", False)])
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
