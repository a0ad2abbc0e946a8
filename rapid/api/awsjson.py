"""The AWS JSON protocol's way in, shared by every service rapid serves that way
(Application Auto Scaling, CodeDeploy, CloudWatch Logs, Kinesis).

A request names its operation in ``X-Amz-Target: <Service>.<Operation>`` and carries one
JSON object. An unknown operation is ``UnknownOperationException``, a body that is not a
JSON object ``SerializationException``, both 400 with ``{"__type", "message"}`` and the
code in ``x-amzn-ErrorType``, as botocore reads them. Each API keeps its own error type
(its refusals have their own codes and statuses); ``read`` raises that type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

from rapid.http.message import Request, Response

H = TypeVar("H")
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def read(req: Request, ops: Mapping[str, H], error: Callable[[str, str], Exception]) -> tuple[str, H, dict[str, Any]]:
    """``(operation, its handler, the body)``, or ``error(code, message)`` raised."""
    op = req.headers.get("x-amz-target", "").partition(".")[2]
    handler = ops.get(op)
    if handler is None:
        raise error("UnknownOperationException", f"Operation {op} is not supported.")
    try:
        body = _decode(req.body) if req.body else {}
    except msgspec.DecodeError:
        raise error("SerializationException", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise error("SerializationException", "The request body must be a JSON object.")
    return op, handler, body


def answer(result: object, rid: str, content_type: str) -> Response:
    return Response(200, _encode(result), [("Content-Type", content_type), ("x-amzn-RequestId", rid)])


def refusal(code: str, message: str, rid: str, content_type: str, status: int = 400) -> Response:
    return Response(status, _encode({"__type": code, "message": message}),
                    [("Content-Type", content_type), ("x-amzn-RequestId", rid), ("x-amzn-ErrorType", code)])
