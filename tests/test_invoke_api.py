"""The Invoke API as an invoker sees it: status codes, headers, AWS's error shapes, limits,
invocation types and name forms. Bad input gets AWS's error and the daemon keeps serving."""

import base64
import json

import pytest

from tests.daemon import run_server


@pytest.fixture
def daemon(behave_fn):
    with run_server(["--function", f"fn={behave_fn}", "--timeout", "10"]) as d:
        yield d


def assert_service_error(r, status, code, message=None):
    assert r.status == status
    assert r.headers["x-amzn-errortype"] == code
    assert r.headers["x-amzn-requestid"]
    body = r.json()
    assert body["Type"] in ("User", "Service")
    if message is not None:
        assert body["message"] == message
    return body


def test_unknown_function_is_404(daemon):
    r = daemon.invoke("nope", {})
    assert_service_error(r, 404, "ResourceNotFoundException",
                         "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope")
    assert daemon.invoke("fn", {"echo": 1}).json() == 1


def test_unknown_qualifier_is_404(daemon):
    r = daemon.request("POST", "/2015-03-31/functions/fn/invocations?Qualifier=7", b"{}")
    assert_service_error(r, 404, "ResourceNotFoundException",
                         "Function not found: arn:aws:lambda:us-east-1:000000000000:function:fn:7")


def test_name_forms(daemon):
    for name in ("fn", "fn:$LATEST", "arn:aws:lambda:us-east-1:000000000000:function:fn",
                 "arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Afn",
                 "000000000000:function:fn", "fn%3A%24LATEST"):
        r = daemon.request("POST", f"/2015-03-31/functions/{name}/invocations", b'{"echo": "ok"}')
        assert (r.status, r.json()) == (200, "ok"), name
    r = daemon.request("POST", "/2015-03-31/functions/fn/invocations?Qualifier=%24LATEST", b'{"echo": 2}')
    assert r.json() == 2


def test_invoked_arn_carries_the_qualifier(daemon):
    r = daemon.request("POST", "/2015-03-31/functions/fn:$LATEST/invocations", b'{"headers": true}')
    assert r.json()["Lambda-Runtime-Invoked-Function-Arn"].endswith("function:fn:$LATEST")


def test_conflicting_qualifiers_are_rejected(daemon):
    r = daemon.request("POST", "/2015-03-31/functions/fn:$LATEST/invocations?Qualifier=prod", b"{}")
    assert_service_error(r, 400, "InvalidParameterValueException")


def test_bad_function_name_is_rejected(daemon):
    r = daemon.request("POST", "/2015-03-31/functions/bad%20name!/invocations", b"{}")
    body = assert_service_error(r, 400, "ValidationException")
    assert body["message"].startswith(
        "1 validation error detected: Value 'bad name!' at 'functionName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ")


def test_body_that_is_not_json_is_400(daemon):
    for body in (b"{not json", b"hello", b"\xff\xfe"):
        r = daemon.invoke("fn", body)
        assert_service_error(r, 400, "InvalidRequestContentException")
    assert daemon.invoke("fn", {"echo": 1}).json() == 1


def test_empty_body_is_an_empty_object(daemon):
    r = daemon.invoke("fn", b"")
    # The behave runtime answers null for an event without a known key.
    assert r.status == 200 and r.json() is None


def test_request_over_6mb_is_413_and_daemon_keeps_serving(daemon):
    body = json.dumps({"echo": "x" * (6 * 1024 * 1024)}).encode()
    r = daemon.invoke("fn", body)
    assert_service_error(r, 413, "RequestTooLargeException",
                         "Request must be smaller than 6291456 bytes for the InvokeFunction operation")
    assert daemon.invoke("fn", {"echo": 1}).json() == 1


def test_exactly_6mb_request_is_accepted(daemon):
    head, tail = b'{"echo": "', b'"}'
    body = head + b"x" * (6291456 - len(head) - len(tail)) + tail
    assert len(body) == 6291456
    r = daemon.invoke("fn", body)
    assert r.status == 200 and len(r.body) == 6291456 - len(head) - len(tail) + 2


def test_one_megabyte_round_trip(daemon):
    payload = "y" * (1024 * 1024)
    r = daemon.invoke("fn", {"echo": payload})
    assert r.status == 200 and r.json() == payload


def test_response_over_the_limit_is_function_response_size_too_large(daemon):
    r = daemon.invoke("fn", {"size": 6291556 + 1})
    assert r.status == 200
    assert r.function_error == "Unhandled"
    assert r.json() == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    # The runtime was told 413 and exited (as awslambdaric does); the function recovers.
    assert daemon.invoke("fn", {"echo": 1}).json() == 1


def test_response_at_the_limit_is_delivered(daemon):
    r = daemon.invoke("fn", {"size": 6291556})
    assert r.status == 200 and r.function_error is None and len(r.body) == 6291556


def test_dry_run_is_204(daemon):
    r = daemon.invoke("fn", {"echo": 1}, headers={"X-Amz-Invocation-Type": "DryRun"})
    assert r.status == 204 and r.body == b""
    assert daemon.invoke("nope", {}, headers={"X-Amz-Invocation-Type": "DryRun"}).status == 404


def test_event_is_202_and_runs_in_the_background(daemon):
    r = daemon.invoke("fn", {"print": "async ran"}, headers={"X-Amz-Invocation-Type": "Event"})
    assert r.status == 202 and r.body == b""
    rid = r.headers["x-amzn-requestid"]
    daemon.wait_for_line(f"REPORT RequestId: {rid}")
    daemon.wait_for_line("async ran")


def test_event_payload_limit_is_1mb(daemon):
    body = json.dumps({"echo": "x" * (1024 * 1024)}).encode()
    r = daemon.invoke("fn", body, headers={"X-Amz-Invocation-Type": "Event"})
    assert_service_error(r, 413, "RequestTooLargeException")


def test_legacy_invoke_async(daemon):
    r = daemon.request("POST", "/2014-11-13/functions/fn/invoke-async/", b'{"print": "legacy ran"}')
    assert r.status == 202
    daemon.wait_for_line("legacy ran")


def test_unknown_invocation_type_is_rejected(daemon):
    r = daemon.invoke("fn", {}, headers={"X-Amz-Invocation-Type": "Sometimes"})
    assert_service_error(r, 400, "ValidationException")


def test_client_context_is_decoded_for_the_runtime(daemon):
    ctx = {"custom": {"k": "v"}, "env": {"a": "b"}}
    encoded = base64.b64encode(json.dumps(ctx).encode()).decode()
    r = daemon.invoke("fn", {"headers": True}, headers={"X-Amz-Client-Context": encoded})
    assert json.loads(r.json()["Lambda-Runtime-Client-Context"]) == ctx
    bad = daemon.invoke("fn", {"headers": True}, headers={"X-Amz-Client-Context": "%%%"})
    assert_service_error(bad, 400, "InvalidRequestContentException")


def test_trace_id_from_the_invoker_is_passed_on(daemon):
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    r = daemon.invoke("fn", {"headers": True}, headers={"X-Amzn-Trace-Id": trace})
    assert r.json()["Lambda-Runtime-Trace-Id"] == trace


def test_request_ids_are_unique_and_match_the_logs(daemon):
    ids = {daemon.invoke("fn", {"echo": i}).headers["x-amzn-requestid"] for i in range(5)}
    assert len(ids) == 5
    for rid in ids:
        daemon.wait_for_line(f"REPORT RequestId: {rid}")


def test_unknown_paths_and_methods(daemon):
    assert_service_error(daemon.request("GET", "/2015-03-31/functions/fn/invocations"), 404,
                         "UnknownOperationException")
    assert_service_error(daemon.request("GET", "/nothing/here"), 404, "UnknownOperationException")


def test_healthz(daemon):
    r = daemon.request("GET", "/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}


def test_malformed_http_gets_400_and_daemon_keeps_serving(daemon):
    import socket

    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    assert daemon.invoke("fn", {"echo": 1}).json() == 1


def test_a_client_that_hangs_up_does_not_lose_the_next_invoke(daemon):
    import socket

    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    body = b'{"sleep": 0.5}'
    s.sendall(b"POST /2015-03-31/functions/fn/invocations HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    daemon.wait_for_line("START RequestId")  # the invoke is running: now its caller goes
    s.close()
    assert daemon.invoke("fn", {"echo": "after"}).json() == "after"


def test_json_log_format(behave_fn):
    with run_server(["--function", f"fn={behave_fn}", "--log-format", "json"]) as d:
        r = d.invoke("fn", {"print": "plain text line"})
        rid = r.headers["x-amzn-requestid"]
        d.wait_for_line('"platform.report"')
        records = [json.loads(line.removeprefix("[fn] ")) for line in d.lines]
        start = next(x for x in records if x.get("type") == "platform.start")
        assert start["record"]["requestId"] == rid and start["record"]["version"] == "$LATEST"
        rep = next(x for x in records if x.get("type") == "platform.report")
        metrics = rep["record"]["metrics"]
        assert rep["record"]["status"] == "success"
        assert {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB", "initDurationMs"} <= set(metrics)
        line = next(x for x in records if x.get("message") == "plain text line")
        assert line["level"] == "INFO" and line["requestId"] == rid
