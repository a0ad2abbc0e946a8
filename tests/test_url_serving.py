"""Function URLs served on rapid's port, hit by aiohttp: by Host header and by path; the
payload 2.0 event the function gets; how its answers come back; errors, streaming, CORS,
AWS_IAM."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.control import ROLE, client, make_zip, python_zip, wait_active
from tests.daemon import Daemon, run_server, unique

PY_RUNTIME = f"python3.{sys.version_info.minor}"

# One Python function, told by the path what to answer.
APP = r'''
import base64, json, time

def handler(event, context):
    path = event["rawPath"]
    if path.endswith("/event"):
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}
    if path == "/shaped":
        return {"statusCode": 201, "headers": {"x-made": "yes", "content-type": "text/plain"},
                "cookies": ["a=1; Path=/", "b=2"], "body": "made it"}
    if path == "/string":
        return "just a string"
    if path == "/json":
        return {"k": [1, 2]}
    if path == "/binary":
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "body": base64.b64encode(bytes(range(256))).decode(), "isBase64Encoded": True}
    if path == "/own-cors":
        return {"statusCode": 200, "headers": {"access-control-allow-origin": "http://evil.example"}, "body": "x"}
    if path == "/slow":
        time.sleep(5)
    raise RuntimeError("it broke")
'''

# A Node function streaming an HTTP answer: the prelude, a first chunk, then (once the test
# has read that chunk and made the gate file) the rest.
STREAM_JS = r'''
const fs = require('fs');
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const gate = (event.queryStringParameters || {}).gate;
  const out = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 207, headers: { 'content-type': 'text/plain', 'x-streamed': 'yes' }, cookies: ['s=1'] });
  out.write('first;');
  while (gate && !fs.existsSync(gate)) await new Promise((r) => setTimeout(r, 5));
  out.write('second;');
  out.end('third');
});
'''


# The bundled Python runtime streams a generator; a first item with statusCode is the HTTP head.
STREAM_PY = r'''
import os, time

def handler(event, context):
    gate = (event.get("queryStringParameters") or {}).get("gate")
    yield {"statusCode": 202, "headers": {"content-type": "text/csv"}, "cookies": ["p=1"]}
    yield "a,b\n"
    while gate and not os.path.exists(gate):
        time.sleep(0.005)
    yield b"1,2\n"
'''


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("urls")
    with run_server(["--data-dir", str(root / "state")], env={"RAPID_PRIVATE_TMP": "directory"}) as d:
        yield d


@pytest.fixture(scope="module")
def lam(daemon: Daemon):  # type: ignore[no-untyped-def]
    return client(daemon)


def _create(lam, zipped: bytes, runtime: str = PY_RUNTIME, handler: str = "app.handler",  # type: ignore[no-untyped-def]
            timeout: int = 3) -> str:
    name = "web-" + unique()
    lam.create_function(FunctionName=name, Runtime=runtime, Handler=handler, Role=ROLE, Timeout=timeout,
                        Code={"ZipFile": zipped})
    wait_active(lam, name)
    return name


@pytest.fixture(scope="module")
def app_url(lam) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    name = _create(lam, python_zip(APP), timeout=1)
    made = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    return name, made["FunctionUrl"].split("//")[1].split(".")[0]


def _host(url_id: str, port: int) -> str:
    return f"{url_id}.lambda-url.us-east-1.localhost:{port}"


async def _get(daemon: Daemon, url_id: str, path: str, *, by: str = "host", method: str = "GET",
               data: bytes | None = None, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    h = dict(headers or {})
    if by == "host":
        h["Host"] = _host(url_id, daemon.port)
        target = f"http://127.0.0.1:{daemon.port}{path}"
    else:
        target = f"http://127.0.0.1:{daemon.port}/lambda-url/{url_id}{path}"
    async with aiohttp.ClientSession() as http:
        async with http.request(method, target, data=data, headers=h, allow_redirects=False) as r:
            return r.status, r.headers, await r.read()


@pytest.mark.parametrize("by", ["host", "path"])
async def test_the_event_is_payload_format_2(daemon: Daemon, app_url, by: str) -> None:  # type: ignore[no-untyped-def]
    _, url_id = app_url
    status, headers, body = await _get(
        daemon, url_id, "/a/b/event?x=1&x=2&y=%20z&empty=", by=by, method="POST", data=b'{"hello": "world"}',
        headers={"Content-Type": "application/json", "Cookie": "c1=v1; c2=v2", "X-Custom": "one",
                 "User-Agent": "rapid-test/1"},
    )
    assert status == 200, body
    event = json.loads(body)
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/a/b/event"
    assert event["rawQueryString"] == "x=1&x=2&y=%20z&empty="
    assert event["queryStringParameters"] == {"x": "1,2", "y": " z", "empty": ""}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-custom"] == "one" and event["headers"]["content-type"] == "application/json"
    assert all(k == k.lower() for k in event["headers"])
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1" and event["headers"]["x-forwarded-proto"] == "http"
    assert event["headers"]["x-forwarded-port"] == str(daemon.port)
    assert event["headers"]["x-amzn-trace-id"].startswith("Root=1-")
    assert event["body"] == '{"hello": "world"}' and event["isBase64Encoded"] is False
    assert "pathParameters" not in event and "stageVariables" not in event
    ctx = event["requestContext"]
    assert ctx["apiId"] == url_id and ctx["domainPrefix"] == url_id
    assert ctx["domainName"] == f"{url_id}.lambda-url.us-east-1.localhost"
    assert ctx["accountId"] == "anonymous" and ctx["stage"] == "$default" and ctx["routeKey"] == "$default"
    assert ctx["http"] == {"method": "POST", "path": "/a/b/event", "protocol": "HTTP/1.1",
                           "sourceIp": "127.0.0.1", "userAgent": "rapid-test/1"}
    assert ctx["requestId"] == headers["x-amzn-RequestId"]
    assert isinstance(ctx["timeEpoch"], int) and ctx["time"].endswith(" +0000")


async def test_repeated_headers_binary_bodies_and_get(daemon: Daemon, app_url) -> None:  # type: ignore[no-untyped-def]
    _, url_id = app_url
    raw = bytes(range(256))
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{daemon.port}/event", data=raw,
                             headers=[("Host", _host(url_id, daemon.port)), ("X-Twice", "a"), ("X-Twice", "b"),
                                      ("Content-Type", "application/octet-stream")]) as r:
            event = json.loads(await r.read())
    assert event["headers"]["x-twice"] == "a,b"
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == raw
    # A form post is base64 too, as on AWS; a GET has no body at all.
    _, _, body = await _get(daemon, url_id, "/event", method="POST", data=b"a=1&b=2",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    event = json.loads(body)
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"a=1&b=2"
    _, _, body = await _get(daemon, url_id, "/event")
    event = json.loads(body)
    assert "body" not in event and event["isBase64Encoded"] is False and "queryStringParameters" not in event
    assert event["rawQueryString"] == "" and event["requestContext"]["http"]["method"] == "GET"


async def test_answers_are_interpreted_as_aws_does(daemon: Daemon, app_url) -> None:  # type: ignore[no-untyped-def]
    _, url_id = app_url
    status, headers, body = await _get(daemon, url_id, "/shaped")
    assert (status, body) == (201, b"made it")
    assert headers["x-made"] == "yes" and headers["Content-Type"] == "text/plain"
    assert headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2"]
    status, headers, body = await _get(daemon, url_id, "/string")
    assert (status, headers["Content-Type"], body) == (200, "application/json", b"just a string")
    status, headers, body = await _get(daemon, url_id, "/json")
    assert (status, headers["Content-Type"], json.loads(body)) == (200, "application/json", {"k": [1, 2]})
    status, headers, body = await _get(daemon, url_id, "/binary", by="path")
    assert (status, body) == (200, bytes(range(256)))


async def test_function_errors_and_unknown_urls(daemon: Daemon, app_url) -> None:  # type: ignore[no-untyped-def]
    _, url_id = app_url
    status, headers, body = await _get(daemon, url_id, "/fail")
    assert (status, body) == (502, b"Internal Server Error")
    status, _, body = await _get(daemon, url_id, "/slow")  # past the 1 s timeout
    assert (status, body) == (502, b"Internal Server Error")
    status, headers, body = await _get(daemon, "a" * 32, "/")
    assert (status, json.loads(body)) == (403, {"Message": None})
    status, _, body = await _get(daemon, "a" * 32, "/", by="path")
    assert (status, json.loads(body)) == (403, {"Message": None})
    # The ordinary API is untouched on the same port.
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{daemon.port}/healthz") as r:
            assert r.status == 200


async def test_throttled_url_is_429(daemon: Daemon, lam) -> None:  # type: ignore[no-untyped-def]
    name = _create(lam, python_zip(APP))
    url_id = lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"].split("//")[1][:32]
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    status, headers, body = await _get(daemon, url_id, "/json")
    assert status == 429 and headers["x-amzn-ErrorType"] == "TooManyRequestsException", body


async def test_a_streaming_url_sends_the_prelude_head_then_chunks_as_written(
    daemon: Daemon, lam, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    name = _create(lam, make_zip({"index.js": STREAM_JS}), runtime="nodejs20.x", handler="index.handler")
    made = lam.create_function_url_config(FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM")
    url_id = made["FunctionUrl"].split("//")[1][:32]
    gate = tmp_path / "gate"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{daemon.port}/s?gate={gate}",
                            headers={"Host": _host(url_id, daemon.port)}) as r:
            assert r.status == 207 and r.headers["x-streamed"] == "yes"
            assert r.headers["Content-Type"] == "text/plain" and r.headers.getall("Set-Cookie") == ["s=1"]
            assert r.headers.get("Transfer-Encoding") == "chunked"
            first = await asyncio.wait_for(r.content.readexactly(len(b"first;")), 20)
            assert first == b"first;"
            assert not gate.exists()  # the rest cannot have been written yet
            gate.touch()
            assert await r.read() == b"second;third"
    # The bundled Python runtime: a generator whose first item is the head.
    py = _create(lam, python_zip(STREAM_PY))
    url_id = lam.create_function_url_config(FunctionName=py, AuthType="NONE",
                                            InvokeMode="RESPONSE_STREAM")["FunctionUrl"].split("//")[1][:32]
    gate = tmp_path / "gate-py"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{daemon.port}/lambda-url/{url_id}/?gate={gate}") as r:
            assert r.status == 202 and r.headers["Content-Type"] == "text/csv"
            assert r.headers.getall("Set-Cookie") == ["p=1"]
            assert await asyncio.wait_for(r.content.readexactly(4), 20) == b"a,b\n"
            assert not gate.exists()
            gate.touch()
            assert await r.read() == b"1,2\n"
    # A buffered function behind a streaming URL: its answer goes out as it was returned.
    plain = _create(lam, python_zip(APP))
    url_id = lam.create_function_url_config(FunctionName=plain, AuthType="NONE",
                                            InvokeMode="RESPONSE_STREAM")["FunctionUrl"].split("//")[1][:32]
    status, _, body = await _get(daemon, url_id, "/json")
    assert (status, json.loads(body)) == (200, {"k": [1, 2]})
    status, _, body = await _get(daemon, url_id, "/fail")
    assert (status, body) == (502, b"Internal Server Error")


async def test_cors_preflight_and_response_headers(  # type: ignore[no-untyped-def]
    daemon: Daemon, lam, app_url,
) -> None:
    name, url_id = app_url
    lam.update_function_url_config(FunctionName=name, Cors={
        "AllowOrigins": ["http://good.example"], "AllowMethods": ["GET", "POST"], "AllowHeaders": ["x-token"],
        "ExposeHeaders": ["x-made"], "MaxAge": 300, "AllowCredentials": True})
    try:
        ask = {"Origin": "http://good.example", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "x-token"}
        status, headers, body = await _get(daemon, url_id, "/fail", method="OPTIONS", headers=ask)
        assert status == 200 and body == b""  # answered without invoking (/fail would be a 502)
        assert headers["Access-Control-Allow-Origin"] == "http://good.example"
        assert headers["Access-Control-Allow-Methods"] == "GET,POST"
        assert headers["Access-Control-Allow-Headers"] == "x-token"
        assert headers["Access-Control-Max-Age"] == "300"
        assert headers["Access-Control-Allow-Credentials"] == "true"
        status, headers, _ = await _get(daemon, url_id, "/", method="OPTIONS",
                                        headers={**ask, "Origin": "http://bad.example"})
        assert "Access-Control-Allow-Origin" not in headers
        status, headers, _ = await _get(daemon, url_id, "/", method="OPTIONS",
                                        headers={**ask, "Access-Control-Request-Method": "DELETE"})
        assert "Access-Control-Allow-Origin" not in headers
        status, headers, _ = await _get(daemon, url_id, "/shaped", headers={"Origin": "http://good.example"})
        assert status == 201 and headers["Access-Control-Allow-Origin"] == "http://good.example"
        assert headers["Access-Control-Expose-Headers"] == "x-made"
        assert headers["Access-Control-Allow-Credentials"] == "true"
        # The URL's configuration decides: the function's own CORS headers give way.
        status, headers, _ = await _get(daemon, url_id, "/own-cors", headers={"Origin": "http://good.example"})
        assert headers.getall("Access-Control-Allow-Origin") == ["http://good.example"]
        status, headers, _ = await _get(daemon, url_id, "/shaped", headers={"Origin": "http://bad.example"})
        assert status == 201 and "Access-Control-Allow-Origin" not in headers
    finally:
        lam.update_function_url_config(FunctionName=name, Cors={})


def _signed(url: str, method: str, key: str, secret: str) -> dict[str, str]:
    req = AWSRequest(method=method, url=url, data=b"")
    SigV4Auth(Credentials(key, secret), "lambda", "us-east-1").add_auth(req)
    return dict(req.headers.items())


async def test_aws_iam_urls_need_a_signature(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKIDRAPID\naws_secret_access_key = s3cret\n")
    with run_server(["--data-dir", str(tmp_path / "state"), "--credentials", str(creds)]) as d:
        lam = client(d, "AKIDRAPID", "s3cret")
        name = _create(lam, python_zip(APP))
        made = lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")
        url_id = made["FunctionUrl"].split("//")[1][:32]
        target = f"http://127.0.0.1:{d.port}/lambda-url/{url_id}/event"
        status, _, body = await _get(d, url_id, "/event", by="path")
        assert (status, json.loads(body)) == (403, {"Message": "Forbidden"})
        status, _, _ = await _get(d, url_id, "/event", by="path", headers=_signed(target, "GET", "AKIDRAPID", "wrong"))
        assert status == 403
        signed = _signed(target, "GET", "AKIDRAPID", "s3cret")
        status, _, body = await _get(d, url_id, "/event", by="path", headers=signed)
        assert status == 200, body
        ctx = json.loads(body)["requestContext"]
        assert ctx["authorizer"]["iam"]["accessKey"] == "AKIDRAPID" and ctx["accountId"] == "000000000000"
