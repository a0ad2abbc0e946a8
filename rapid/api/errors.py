"""Service errors rendered once, in AWS's REST-JSON shape: the status, ``x-amzn-ErrorType``
(boto3 and the JS SDK read the code there), ``x-amzn-RequestId``, and a body with ``Type``
and ``message`` (``Reason`` on a 429; ``Retry-After`` as a header)."""

from __future__ import annotations

from rapid.core.errors import ServiceError
from rapid.http.message import Response


def render(exc: ServiceError, rid: str) -> Response:
    headers = [("x-amzn-ErrorType", exc.code), ("x-amzn-RequestId", rid)]
    if exc.retry_after is not None:
        headers.append(("Retry-After", str(exc.retry_after)))
    return Response.json(exc.status, exc.body(), headers)
