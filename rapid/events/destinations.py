"""Where async results go: destination targets, invocation records, dead-letter messages.

Targets (``DestinationConfig.OnSuccess/OnFailure.Destination`` and the dead-letter
``TargetArn``) name one of four kinds:

==================================================  ============================================
``arn:aws:lambda:<region>:<account>:function:<f>``  another rapid function, invoked
                                                    asynchronously with the record as payload
                                                    (an event in its own durable queue)
``arn:aws:sqs:<region>:<account>:<queue>``          a built-in queue in the same SQLite db
                                                    (``rapid queue --messages <queue>``)
``file:///path/records.ndjson``                     one record per line, appended and fsync'd
``http://host[:port]/path`` (or ``https://``)       a POST of the record, retried with backoff
==================================================  ============================================

The record is AWS's, key for key [lambda-behaviour.md §9]. A dead-letter message carries the
original event and the attributes ``RequestID``, ``ErrorCode`` (the HTTP status of the last
attempt: 200 for a function error, 429 for a throttle) and ``ErrorMessage`` (the first 1 KB).
On a built-in queue these are the message's attributes, the body is the event as-is, as SQS
stores a dead letter. A file, an HTTP endpoint or a function has no attributes, so it gets
``{"body": <event>, "attributes": {"RequestID": ..., "ErrorCode": ..., "ErrorMessage": ...}}``.

Delivery: a function or built-in queue target is written in the same transaction that
completes the event, a file is appended and fsync'd before that transaction commits. An HTTP
endpoint (and a file that could not be written) gets the record from a durable outbox: a
POST that does not answer 2xx within 10 s is retried with backoff (1 s, 2 s, ... 5 min,
time-scaled) for as long as the function's maximum event age; then the record is dropped and
counted (``rapid_async_destination_dropped_total``), as AWS drops a record it cannot deliver.
A record over 1 MB for a function or a queue is dropped and counted the same way.

Everything here but ``post`` is pure.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from rapid.core.report import iso_now

MAX_DESTINATION_LENGTH = 350  # botocore: DestinationArn max 350
MAX_INTERNAL_RECORD = 1024 * 1024  # an async invoke or a queue message: 1 MB, as on AWS
MAX_ERROR_MESSAGE = 1024  # dead-letter ErrorMessage: the first 1 KB

# botocore's pattern for a destination ARN; rapid adds file:// and http(s):// URLs.
AWS_DESTINATION_PATTERN = r"^$|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:([a-z]{2}(-gov)?-[a-z]+-\d{1})?:(\d{12})?:(.*)"
_AWS_DESTINATION_RE = re.compile(AWS_DESTINATION_PATTERN)
_LAMBDA_RE = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
    r"(?P<name>[a-zA-Z0-9_-]{1,64})(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?$"
)
_SQS_RE = re.compile(r"^arn:aws[a-zA-Z-]*:sqs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<name>[a-zA-Z0-9_-]{1,80})$")

Kind = Literal["lambda", "sqs", "file", "http"]


class TargetError(ValueError):
    """A destination that rapid cannot deliver to; the message says why. ``unsupported``:
    a well-formed ARN of a service rapid does not host (SNS, EventBridge, S3, ...)."""

    def __init__(self, message: str, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    address: str  # the function name, the queue name, the file path or the URL
    arn: str  # as configured

    @property
    def internal(self) -> bool:
        """Delivered in the same transaction that completes the event."""
        return self.kind in ("lambda", "sqs")


def matches_aws_pattern(value: str) -> bool:
    """Whether AWS's request validation would accept ``value`` (rapid's URLs aside)."""
    return value.startswith(("file://", "http://", "https://")) or bool(_AWS_DESTINATION_RE.fullmatch(value))


def parse_target(
    value: str, *, region: str, account: str, functions: Collection[str] | None = None, owner: str | None = None
) -> Target:
    """Check a destination and say what it is. ``functions`` (when given) are the function
    names a ``lambda`` target may name; ``owner`` is the function being configured (a
    function cannot be its own destination, as on AWS)."""
    if value.startswith("file://"):
        parts = urlsplit(value)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/") or parts.path.endswith("/"):
            raise TargetError(f"The destination {value} is invalid: expected file:///absolute/path/to/file.")
        return Target("file", parts.path, value)
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        if not parts.hostname:
            raise TargetError(f"The destination {value} is invalid: the URL has no host.")
        return Target("http", value, value)
    m = _LAMBDA_RE.match(value)
    if m is not None:
        if (m["region"], m["account"]) != (region, account):
            raise TargetError(f"The destination ARN {value} is invalid.")
        name = m["name"]
        if functions is not None and name not in functions:
            raise TargetError(f"The destination ARN {value} is invalid.")
        if owner is not None and name == owner:
            raise TargetError("You can't specify the function as a destination for itself.")
        if m["qualifier"] not in (None, "$LATEST"):
            raise TargetError(f"The destination ARN {value} is invalid: only $LATEST exists.")
        return Target("lambda", name, value)
    m = _SQS_RE.match(value)
    if m is not None:
        return Target("sqs", m["name"], value)
    if value.startswith("arn:") and value.split(":")[2:3] == ["sqs"] and value.endswith(".fifo"):
        raise TargetError(f"The destination ARN {value} is invalid: FIFO queues are not supported.")
    raise TargetError(
        f"The destination {value} is not supported by rapid: use a function "
        "(arn:aws:lambda:...), a built-in queue (arn:aws:sqs:...), file:///path or http://url.",
        unsupported=True,
    )


def describe_config(on_success: str | None, on_failure: str | None) -> str:
    """AWS's words for an invalid destination config."""
    s = f"OnSuccess(destination={on_success})" if on_success else "null"
    f = f"OnFailure(destination={on_failure})" if on_failure else "null"
    return f"The provided destination config DestinationConfig(onSuccess={s}, onFailure={f}) is invalid."


# -- records ------------------------------------------------------------------------------

_encode = msgspec.json.Encoder().encode


def json_value(body: bytes | None) -> Any:
    """A payload as a JSON value inside a record: as-is when it is JSON, else as a string."""
    if not body:
        return None
    try:
        msgspec.json.decode(body, type=msgspec.Raw)
        return msgspec.Raw(body)
    except msgspec.DecodeError:
        return body.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Response:
    """The last attempt's answer, as a record shows it."""

    status: int  # 200 when the function ran; 429/5xx when it never did
    body: bytes
    function_error: str | None = None  # "Unhandled" for a function error


def record(
    *,
    request_id: str,
    function_arn: str,
    condition: str,
    invoke_count: int,
    payload: bytes,
    response: Response | None,
    version: str,
    now: float,
) -> bytes:
    """An invocation record, exactly AWS's shape (``functionArn`` is qualified)."""
    ctx: dict[str, Any] = {"statusCode": response.status if response else 200, "executedVersion": version}
    if response is not None and response.function_error:
        ctx["functionError"] = response.function_error
    return _encode({
        "version": "1.0",
        "timestamp": iso_now(now),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": json_value(payload),
        "responseContext": ctx,
        "responsePayload": json_value(response.body if response else None),
    })


def error_message(response: Response | None) -> str:
    """The dead-letter ``ErrorMessage``: the error's ``errorMessage`` (or ``message``), or
    the body itself; at most 1 KB."""
    if response is None:
        return ""
    text = response.body.decode("utf-8", "replace")
    try:
        obj = msgspec.json.decode(response.body)
        if isinstance(obj, dict):
            text = str(obj.get("errorMessage") or obj.get("message") or text)
    except msgspec.DecodeError:
        pass
    raw = text.encode("utf-8")
    if len(raw) > MAX_ERROR_MESSAGE:
        text = raw[:MAX_ERROR_MESSAGE].decode("utf-8", "ignore")
    return text


def dead_letter_attributes(request_id: str, response: Response | None) -> dict[str, Any]:
    return {
        "RequestID": request_id,
        "ErrorCode": response.status if response else 200,
        "ErrorMessage": error_message(response),
    }


def sqs_attributes(attributes: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Attributes as SQS ``MessageAttributes``: RequestID String, ErrorCode Number, ErrorMessage String."""
    return {
        k: {"DataType": "Number" if isinstance(v, int) else "String", "StringValue": str(v)}
        for k, v in attributes.items()
    }


def wrapped_dead_letter(payload: bytes, attributes: dict[str, Any]) -> bytes:
    return _encode({"body": json_value(payload), "attributes": attributes})


# -- HTTP ---------------------------------------------------------------------------------

HTTP_TIMEOUT = 10.0


async def post(session: Any, url: str, body: bytes) -> str | None:
    """POST ``body`` to ``url``; None when it was taken (2xx), else what went wrong."""
    import aiohttp

    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT),
        ) as resp:
            await resp.read()
            if 200 <= resp.status < 300:
                return None
            return f"HTTP {resp.status}"
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
