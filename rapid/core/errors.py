"""Errors as AWS renders them.

Two families with two shapes:

- Errors of the *service* (the Invoke API): HTTP status, ``x-amzn-ErrorType`` header and a
  body ``{"Type": "User"|"Service", "message": ...}``. boto3 reads the header for the code
  and ``message`` for the text.
- Errors of the *Runtime API* (what a runtime process is told): HTTP status and a body
  ``{"errorMessage": ..., "errorType": ...}``.

Function errors (timeouts, crashes, oversize responses) are neither: they reach the invoker
as a 200 with ``X-Amz-Function-Error: Unhandled``; see ``FunctionError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Limits, exactly as AWS counts them.
MAX_SYNC_REQUEST = 6 * 1024 * 1024  # 6,291,456: invoke request body
MAX_ASYNC_REQUEST = 1024 * 1024  # 1,048,576: Event invoke body
MAX_RUNTIME_RESPONSE = 6 * 1024 * 1024 + 100  # 6,291,556: what /response accepts


@dataclass(frozen=True, slots=True)
class ServiceError(Exception):
    """An Invoke API error: rendered as AWS's REST-JSON error."""

    status: int
    code: str
    message: str
    kind: str = "User"
    reason: str | None = None  # 429s carry a Reason
    retry_after: int | None = None

    def body(self) -> dict[str, str]:
        out = {"Type": self.kind, "message": self.message}
        if self.reason is not None:
            out["Reason"] = self.reason
        return out


NO_SUCH_RESOURCE = "The resource you requested does not exist."


def resource_not_found(message: str = NO_SUCH_RESOURCE) -> ServiceError:
    return ServiceError(404, "ResourceNotFoundException", message)


def function_not_found(arn: str) -> ServiceError:
    return resource_not_found(f"Function not found: {arn}")


def resource_conflict(message: str) -> ServiceError:
    return ServiceError(409, "ResourceConflictException", message)


def precondition_failed(arn: str) -> ServiceError:
    """A RevisionId that is not the current one, as the control plane words it."""
    return ServiceError(
        412, "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API "
        f"to retrieve the latest Revision Id for {arn}",
    )


def request_too_large(limit: int) -> ServiceError:
    return ServiceError(
        413,
        "RequestTooLargeException",
        f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
    )


def not_json() -> ServiceError:
    return ServiceError(
        400, "InvalidRequestContentException", "Could not parse request body into json: "
        "The request body could not be parsed as JSON."
    )


def invalid_parameter(message: str) -> ServiceError:
    return ServiceError(400, "InvalidParameterValueException", message)


def validation(message: str) -> ServiceError:
    return ServiceError(400, "ValidationException", message)


def unknown_operation() -> ServiceError:
    return ServiceError(404, "UnknownOperationException", "Unknown operation")


def throttled(reason: str) -> ServiceError:
    return ServiceError(429, "TooManyRequestsException", "Rate Exceeded.", reason=reason, retry_after=1)


def shutting_down() -> ServiceError:
    return ServiceError(503, "ServiceException", "rapid is shutting down", kind="Service")


@dataclass(frozen=True, slots=True)
class RuntimeAPIError(Exception):
    """A Runtime API error, told to the runtime process."""

    status: int
    error_type: str
    message: str

    def body(self) -> dict[str, str]:
        return {"errorMessage": self.message, "errorType": self.error_type}


def invalid_request_id() -> RuntimeAPIError:
    return RuntimeAPIError(400, "InvalidRequestID", "Invalid request ID")


def payload_too_large() -> RuntimeAPIError:
    return RuntimeAPIError(
        413,
        "RequestEntityTooLarge",
        f"Exceeded maximum allowed payload size ({MAX_RUNTIME_RESPONSE} bytes).",
    )


class InvalidStateTransition(RuntimeAPIError):
    """A Runtime API call made out of order: 403, worded as the RIE words it."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(
            403,
            "InvalidStateTransition",
            f"State transition from {current} to {target} failed for runtime. "
            "Error: State transition is not allowed",
        )


@dataclass(frozen=True, slots=True)
class FunctionError:
    """A failure of the function, told to the invoker as 200 + ``Unhandled``.

    ``status`` is the REPORT line's new-style ``Status`` (``error`` or ``timeout``).
    """

    error_type: str
    message: str
    status: str = "error"
    bare: bool = False  # AWS words a few errors without the "RequestId: … Error:" prefix

    def body(self, request_id: str | None) -> dict[str, str]:
        if self.bare:
            text = self.message
        elif request_id:
            text = f"RequestId: {request_id} Error: {self.message}"
        else:
            text = f"Error: {self.message}"
        return {"errorType": self.error_type, "errorMessage": text}


def timed_out(seconds: float) -> FunctionError:
    return FunctionError("Sandbox.Timedout", f"Task timed out after {seconds:.2f} seconds", "timeout")


# Go's names for signals, as the RIE prints them in "signal: killed".
_SIGNAL_NAMES = {
    1: "hangup", 2: "interrupt", 3: "quit", 4: "illegal instruction", 5: "trace/breakpoint trap",
    6: "aborted", 7: "bus error", 8: "floating point exception", 9: "killed",
    10: "user defined signal 1", 11: "segmentation fault", 12: "user defined signal 2",
    13: "broken pipe", 14: "alarm clock", 15: "terminated",
}


def exit_message(returncode: int) -> str:
    """The RIE's words for how a runtime process ended (Popen-style returncode)."""
    if returncode == 0:
        return "Runtime exited without providing a reason"
    if returncode < 0:  # pragma: no mutate (0 was answered above: `<= 0`, `< 1` are the same test)
        name = _SIGNAL_NAMES.get(-returncode, f"signal {-returncode}")
        return f"Runtime exited with error: signal: {name}"
    return f"Runtime exited with error: exit status {returncode}"


def runtime_exited(returncode: int) -> FunctionError:
    return FunctionError("Runtime.ExitError", exit_message(returncode))


def response_too_large() -> FunctionError:
    return FunctionError(
        "Function.ResponseSizeTooLarge",
        f"Response payload size exceeded maximum allowed payload size ({MAX_RUNTIME_RESPONSE} bytes).",
        bare=True,
    )


def invalid_entrypoint(detail: str) -> FunctionError:
    return FunctionError("Runtime.InvalidEntrypoint", detail)


_VALID_ERROR_TYPE = re.compile(r"(Runtime|Function)\.[A-Z][a-zA-Z]+")


def normalise_error_type(value: str | None) -> str:
    """The error type for REPORT/telemetry, as the RIE normalises what runtimes post.

    ``Runtime.X``/``Function.X`` (a capital, then ASCII letters) survive; any other
    ``Function.`` value becomes ``Function.Unknown``; everything else ``Runtime.Unknown``.
    """
    if value:
        if _VALID_ERROR_TYPE.match(value):
            return value
        if value.startswith("Function."):
            return "Function.Unknown"
    return "Runtime.Unknown"
