"""AWS's error texts and AWS's names, exactly."""

from __future__ import annotations

import re
import uuid

import pytest

from rapid.core import errors
from rapid.core.errors import (
    FunctionError,
    RuntimeAPIError,
    ServiceError,
    exit_message,
    normalise_error_type,
)
from rapid.core.naming import (
    Target,
    check_name,
    function_arn,
    log_stream_name,
    parse_function_name,
    request_id,
    trace_id,
)

REGION, ACCOUNT = "us-east-1", "000000000000"

# -- limits -------------------------------------------------------------------------------


def test_limits() -> None:
    assert errors.MAX_SYNC_REQUEST == 6_291_456
    assert errors.MAX_ASYNC_REQUEST == 1_048_576
    assert errors.MAX_RUNTIME_RESPONSE == 6_291_556


# -- exit messages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, text",
    [
        (0, "Runtime exited without providing a reason"),
        (1, "Runtime exited with error: exit status 1"),
        (101, "Runtime exited with error: exit status 101"),
        (255, "Runtime exited with error: exit status 255"),
        (-9, "Runtime exited with error: signal: killed"),
        (-15, "Runtime exited with error: signal: terminated"),
        (-11, "Runtime exited with error: signal: segmentation fault"),
        (-6, "Runtime exited with error: signal: aborted"),
        (-2, "Runtime exited with error: signal: interrupt"),
        # Go prints an unnamed signal as "signal N".
        (-40, "Runtime exited with error: signal: signal 40"),
    ],
)
def test_exit_message(code: int, text: str) -> None:
    assert exit_message(code) == text
    err = errors.runtime_exited(code)
    assert err.error_type == "Runtime.ExitError"
    assert err.body("abc") == {"errorType": "Runtime.ExitError", "errorMessage": f"RequestId: abc Error: {text}"}


# -- error type normalisation (REPORT's Error Type) -----------------------------------------


@pytest.mark.parametrize(
    "raw, normal",
    [
        ("Runtime.ImportModuleError", "Runtime.ImportModuleError"),
        ("Runtime.ExitError", "Runtime.ExitError"),
        ("Function.Foo", "Function.Foo"),
        ("Function.ResponseSizeTooLarge", "Function.ResponseSizeTooLarge"),
        ("Function.bad", "Function.Unknown"),
        ("Function.", "Function.Unknown"),
        ("Runtime.bad", "Runtime.Unknown"),
        ("Runtime.", "Runtime.Unknown"),
        ("MyError", "Runtime.Unknown"),
        ("MyCustomError.Error", "Runtime.Unknown"),
        ("Unhandled", "Runtime.Unknown"),
        ("InvalidEventDataException", "Runtime.Unknown"),
        ("Sandbox.Timedout", "Runtime.Unknown"),
        ("Functional.Foo", "Runtime.Unknown"),
        ("", "Runtime.Unknown"),
        (None, "Runtime.Unknown"),
    ],
)
def test_normalise_error_type(raw: str | None, normal: str) -> None:
    assert normalise_error_type(raw) == normal


@pytest.mark.parametrize(
    "raw, normal",
    [
        # The RIE's rule is the regexp (Runtime|Function)\.[A-Z][a-zA-Z]+ (fatalerror.go
        # GetValidRuntimeOrFunctionErrorType): at least two ASCII letters after the dot,
        # and only a "Function." *prefix* makes Function.Unknown.
        ("Runtime.A", "Runtime.Unknown"),
        ("Function.A", "Function.Unknown"),
        ("Runtime.Ärger", "Runtime.Unknown"),
        ("Function", "Runtime.Unknown"),
    ],
)
def test_normalise_error_type_follows_the_rie_regexp(raw: str, normal: str) -> None:
    assert normalise_error_type(raw) == normal


# -- service (Invoke API) errors -------------------------------------------------------------


def test_service_error_body() -> None:
    err = errors.function_not_found("arn:aws:lambda:us-east-1:000000000000:function:nope")
    assert (err.status, err.code) == (404, "ResourceNotFoundException")
    assert err.body() == {
        "Type": "User",
        "message": "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope",
    }
    with pytest.raises(ServiceError):  # raised by handlers, rendered once at the edge
        raise err


def test_throttle_body_carries_reason() -> None:
    err = errors.throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
    assert (err.status, err.code, err.retry_after) == (429, "TooManyRequestsException", 1)
    assert err.body() == {
        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        "Type": "User",
        "message": "Rate Exceeded.",
    }
    assert errors.throttled("ConcurrentInvocationLimitExceeded").body()["Reason"] == (
        "ConcurrentInvocationLimitExceeded")
    assert "Reason" not in ServiceError(400, "X", "m").body()


def test_request_too_large() -> None:
    err = errors.request_too_large(errors.MAX_SYNC_REQUEST)
    assert (err.status, err.code) == (413, "RequestTooLargeException")
    assert err.message == "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    assert err.body() == {"Type": "User", "message": err.message}
    assert errors.request_too_large(errors.MAX_ASYNC_REQUEST).message == (
        "Request must be smaller than 1048576 bytes for the InvokeFunction operation")


def test_other_service_errors() -> None:
    nj = errors.not_json()
    assert (nj.status, nj.code) == (400, "InvalidRequestContentException")
    assert "The request body could not be parsed as JSON." in nj.message
    ip = errors.invalid_parameter("bad")
    assert (ip.status, ip.code, ip.message) == (400, "InvalidParameterValueException", "bad")
    sd = errors.shutting_down()
    assert (sd.status, sd.code, sd.body()["Type"]) == (503, "ServiceException", "Service")
    assert errors.unknown_operation().status == 404


# -- Runtime API errors --------------------------------------------------------------------


def test_payload_too_large() -> None:
    err = errors.payload_too_large()
    assert isinstance(err, RuntimeAPIError)
    assert err.status == 413
    assert err.body() == {
        "errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "RequestEntityTooLarge",
    }


def test_invalid_request_id() -> None:
    err = errors.invalid_request_id()
    assert err.status == 400
    assert err.body() == {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}


# -- function errors (to the invoker) -------------------------------------------------------


def test_response_too_large_has_no_request_id_prefix() -> None:
    err = errors.response_too_large()
    expected = {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
    }
    assert err.body("f83d9f5b-91c2-46ef-8f27-956c2efb047a") == expected
    assert err.body(None) == expected
    assert err.status == "error"


def test_timed_out_body() -> None:
    err = errors.timed_out(3)
    assert err.status == "timeout"
    assert err.body("f83d9f5b-91c2-46ef-8f27-956c2efb047a") == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: f83d9f5b-91c2-46ef-8f27-956c2efb047a Error: Task timed out after 3.00 seconds",
    }


def test_function_error_without_request_id() -> None:
    err = errors.invalid_entrypoint(
        "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]")
    assert err.body(None) == {
        "errorType": "Runtime.InvalidEntrypoint",
        "errorMessage": "Error: Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]",
    }
    assert FunctionError("X.Y", "m").body("") == {"errorType": "X.Y", "errorMessage": "Error: m"}


# -- function names and ARNs ----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, qualifier, target",
    [
        ("fn", None, Target("fn", None)),
        ("fn", "prod", Target("fn", "prod")),
        ("fn:$LATEST", None, Target("fn", "$LATEST")),
        ("fn:prod", None, Target("fn", "prod")),
        ("fn:7", "7", Target("fn", "7")),
        ("my-function_2", None, Target("my-function_2", None)),
        ("arn:aws:lambda:us-east-1:000000000000:function:fn", None, Target("fn", None)),
        ("arn:aws:lambda:us-east-1:000000000000:function:fn", "$LATEST", Target("fn", "$LATEST")),
        ("arn:aws:lambda:us-east-1:000000000000:function:fn:prod", None, Target("fn", "prod")),
        ("arn:aws:lambda:us-east-1:000000000000:function:fn:$LATEST", "$LATEST", Target("fn", "$LATEST")),
        ("000000000000:function:fn", None, Target("fn", None)),
        ("000000000000:function:fn:prod", None, Target("fn", "prod")),
        ("a" * 64, None, Target("a" * 64, None)),
    ],
)
def test_parse_function_name(raw: str, qualifier: str | None, target: Target) -> None:
    assert parse_function_name(raw, qualifier, REGION, ACCOUNT) == target


@pytest.mark.parametrize(
    "raw, qualifier",
    [
        ("fn:prod", "dev"),
        ("fn:$LATEST", "prod"),
        ("arn:aws:lambda:us-east-1:000000000000:function:fn:prod", "$LATEST"),
        ("000000000000:function:fn:1", "2"),
    ],
)
def test_mismatched_qualifier(raw: str, qualifier: str) -> None:
    with pytest.raises(ServiceError) as info:
        parse_function_name(raw, qualifier, REGION, ACCOUNT)
    assert (info.value.status, info.value.code) == (400, "InvalidParameterValueException")
    assert info.value.message == (
        "The derived qualifier from the function name does not match the specified qualifier.")


@pytest.mark.parametrize(
    "raw",
    ["fn!", "my function", "fn/x", "", "fn:", "fn:a:b", "ärger", "x" * 171,
     "arn:aws:s3:us-east-1:000000000000:function:fn"],
)
def test_bad_function_name_is_400(raw: str) -> None:
    with pytest.raises(ServiceError) as info:
        parse_function_name(raw, None, REGION, ACCOUNT)
    assert (info.value.status, info.value.code) == (400, "ValidationException")
    assert info.value.message.startswith(
        f"1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ")


@pytest.mark.parametrize(
    "raw",
    [
        "arn:aws:lambda:us-east-1:111111111111:function:fn",
        "arn:aws:lambda:eu-west-1:000000000000:function:fn",
        "arn:aws:lambda:eu-west-1:000000000000:function:fn:prod",
        "111111111111:function:fn",
    ],
)
def test_arn_of_another_account_or_region_is_not_found(raw: str) -> None:
    with pytest.raises(ServiceError) as info:
        parse_function_name(raw, None, REGION, ACCOUNT)
    err = info.value
    assert (err.status, err.code) == (404, "ResourceNotFoundException")
    assert err.message.startswith("Function not found: ")
    assert err.body()["Type"] == "User"


def test_function_arn() -> None:
    assert function_arn(REGION, ACCOUNT, "fn") == "arn:aws:lambda:us-east-1:000000000000:function:fn"
    assert function_arn("eu-west-1", "123456789012", "fn", "prod") == (
        "arn:aws:lambda:eu-west-1:123456789012:function:fn:prod")
    # What function_arn builds, parse_function_name reads back.
    for q in (None, "prod", "$LATEST"):
        assert parse_function_name(function_arn(REGION, ACCOUNT, "fn", q), None, REGION, ACCOUNT) == Target("fn", q)


def test_check_name() -> None:
    check_name("fn")
    check_name("a" * 64)
    for bad in ("", "a" * 65, "fn:prod", "f n"):
        with pytest.raises(ServiceError) as info:
            check_name(bad)
        assert (info.value.status, info.value.code) == (400, "InvalidParameterValueException")


# -- ids --------------------------------------------------------------------------------------

TRACE_RE = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$")


def test_trace_id_format() -> None:
    t = trace_id(0x5BEF4DE7)
    assert TRACE_RE.match(t), t
    assert t.startswith("Root=1-5bef4de7-")
    assert TRACE_RE.match(trace_id())
    assert trace_id(0).startswith("Root=1-00000000-")
    assert len({trace_id(1) for _ in range(20)}) == 20


def test_request_id_is_a_uuid4() -> None:
    rid = request_id()
    assert str(uuid.UUID(rid)) == rid
    assert uuid.UUID(rid).version == 4
    assert request_id() != rid


def test_log_stream_name() -> None:
    assert log_stream_name("abc123", now=0) == "1970/01/01/[$LATEST]abc123"
    # 2024-03-04T17:22:38Z
    assert log_stream_name("0f", "7", now=1709572958) == "2024/03/04/[7]0f"
    assert re.match(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]+$", log_stream_name("deadbeef"))


# -- the exact words of every error (each one a literal, as AWS and the RIE write it) ----------


def test_not_json_words() -> None:
    err = errors.not_json()
    assert (err.status, err.code) == (400, "InvalidRequestContentException")
    assert err.message == "Could not parse request body into json: The request body could not be parsed as JSON."


def test_validation_error() -> None:
    err = errors.validation("1 validation error detected: x")
    assert (err.status, err.code, err.message) == (400, "ValidationException", "1 validation error detected: x")
    assert err.body() == {"Type": "User", "message": "1 validation error detected: x"}


def test_unknown_operation() -> None:
    err = errors.unknown_operation()
    assert (err.status, err.code, err.message) == (404, "UnknownOperationException", "Unknown operation")


def test_shutting_down_is_a_service_fault() -> None:
    err = errors.shutting_down()
    assert (err.status, err.code) == (503, "ServiceException")
    assert err.body() == {"Type": "Service", "message": "rapid is shutting down"}


FUNCTION_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?"
    r"(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)


def test_a_malformed_function_name_is_refused_with_awss_pattern() -> None:
    with pytest.raises(ServiceError) as info:
        parse_function_name("bad name!", None, "us-east-1", "000000000000")
    assert (info.value.status, info.value.code) == (400, "ValidationException")
    assert info.value.message == (
        "1 validation error detected: Value 'bad name!' at 'functionName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: " + FUNCTION_NAME_PATTERN)


def test_function_name_length_limits() -> None:
    # A full ARN up to 170 characters is accepted; 171 is refused as malformed.
    prefix = "arn:aws:lambda:us-east-1:000000000000:function:"
    name = "n" * 64
    at_limit = prefix + name + ":" + "q" * (170 - len(prefix) - 65)
    assert len(at_limit) == 170
    assert parse_function_name(at_limit, None, "us-east-1", "000000000000") == Target(name, "q" * 58)
    with pytest.raises(ServiceError) as info:
        parse_function_name(at_limit + "q", None, "us-east-1", "000000000000")
    assert info.value.code == "ValidationException"
    # A bare name: 64 characters is a name; 65 matches the pattern but no function has it.
    assert parse_function_name("n" * 64, None, "us-east-1", "000000000000") == Target("n" * 64, None)
    with pytest.raises(ServiceError) as info:
        parse_function_name("n" * 65, None, "eu-west-1", "123456789012")
    assert (info.value.status, info.value.code) == (404, "ResourceNotFoundException")
    assert info.value.message == "Function not found: arn:aws:lambda:eu-west-1:123456789012:function:" + "n" * 65


def test_an_arn_of_another_region_or_account_is_not_found_by_that_arn() -> None:
    arn = "arn:aws:lambda:eu-west-1:000000000000:function:fn"
    with pytest.raises(ServiceError) as info:
        parse_function_name(arn, None, "us-east-1", "000000000000")
    assert (info.value.status, info.value.message) == (404, f"Function not found: {arn}")


def test_check_name_words() -> None:
    check_name("ok-name_1")
    with pytest.raises(ServiceError) as info:
        check_name("no spaces")
    assert (info.value.status, info.value.code, info.value.message) == (
        400, "InvalidParameterValueException", "Invalid function name: no spaces")
