"""The Invoke API edge in-process: AWS's shapes for every answer and every refusal."""

from __future__ import annotations

import base64
import json


async def test_request_response(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("fn", {"echo": {"a": 1}})
    assert r.status == 200 and r.json() == {"a": 1}
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-amz-executed-version"] == "$LATEST"
    assert len(r.headers["x-amzn-requestid"]) == 36
    assert "x-amz-function-error" not in r.headers and "x-amz-log-result" not in r.headers


async def test_no_payload_is_an_empty_object(make_rapid):
    rapid = await make_rapid()
    assert (await rapid.invoke("fn", None)).json() == "ok"  # the runtime was given {}


async def test_unknown_function_is_404(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("nope", {})
    assert r.status == 404 and r.headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert r.json() == {"Type": "User",
                        "message": "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"}


async def test_unknown_qualifier_is_404(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("fn", {}, path="/2015-03-31/functions/fn/invocations?Qualifier=9")
    assert r.status == 404
    assert r.json()["message"] == "Function not found: arn:aws:lambda:us-east-1:000000000000:function:fn:9"


async def test_dry_run_is_204_and_runs_nothing(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("fn", {}, headers={"X-Amz-Invocation-Type": "DryRun"})
    assert (r.status, r.body) == (204, b"")
    assert rapid.backend.spawned == []


async def test_bad_invocation_type_is_a_validation_error(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("fn", {}, headers={"X-Amz-Invocation-Type": "Later"})
    assert r.status == 400 and r.headers["x-amzn-errortype"] == "ValidationException"
    assert r.json()["message"] == (
        "1 validation error detected: Value 'Later' at 'invocationType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Event, RequestResponse, DryRun]")


async def test_a_body_that_is_not_json_is_refused(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("fn", body=b"{nope")
    assert r.status == 400 and r.headers["x-amzn-errortype"] == "InvalidRequestContentException"
    assert rapid.backend.spawned == []


async def test_a_request_over_6_mb_is_413(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("fn", body=b'"' + b"x" * (6 * 1024 * 1024) + b'"')
    assert r.status == 413 and r.headers["x-amzn-errortype"] == "RequestTooLargeException"
    assert r.json() == {"Type": "User",
                        "message": "Request must be smaller than 6291456 bytes for the InvokeFunction operation"}


async def test_event_without_a_queue_is_refused_not_lost(make_rapid):
    rapid = await make_rapid()  # built without the async dispatcher
    r = await rapid.invoke("fn", {}, headers={"X-Amz-Invocation-Type": "Event"})
    assert r.status == 503 and r.headers["x-amzn-errortype"] == "ServiceException"


async def test_client_context_reaches_the_runtime_and_bad_ones_are_refused(make_rapid):
    rapid = await make_rapid()
    ctx = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    r = await rapid.invoke("fn", {}, headers={"X-Amz-Client-Context": ctx})
    assert r.status == 200
    bad = await rapid.invoke("fn", {}, headers={"X-Amz-Client-Context": "not base64!"})
    assert bad.status == 400 and bad.json()["message"] == "Client context must be a valid Base64-encoded JSON object."


async def test_wrong_method_and_unknown_path(make_rapid):
    rapid = await make_rapid()
    from tests.unit.http_client import request

    r = await request(rapid.address, "GET", "/2015-03-31/functions/fn/invocations")
    assert r.status in (400, 404) and r.headers["x-amzn-errortype"] == "UnknownOperationException"
    r = await request(rapid.address, "GET", "/nowhere")
    assert r.headers["x-amzn-errortype"] == "UnknownOperationException"


async def test_healthz_and_shutdown(make_rapid):
    from tests.unit.http_client import request

    rapid = await make_rapid()
    r = await request(rapid.address, "GET", "/healthz")
    assert (r.status, r.json()) == (200, {"status": "ok"})
    rapid.host.stopping = True
    r = await request(rapid.address, "GET", "/healthz")
    assert (r.status, r.json()) == (503, {"status": "stopping"})
    r = await rapid.invoke("fn", {})
    assert r.status == 503 and r.json() == {"Type": "Service", "message": "rapid is shutting down"}
    rapid.host.stopping = False
