"""A streaming ``/response`` (``Lambda-Runtime-Function-Response-Mode: streaming``), from
the runtime's connection to the invoker as it arrives.

Theory of operation
-------------------
When the headers of such a POST are complete, the Runtime API opens a ``RuntimeStream``
for the invocation it names and the HTTP layer hands it each piece of the body as it is
read. If the invoker asked for a stream (InvokeWithResponseStream), the invocation carries
a consumer (``Invocation.stream``): each piece goes straight on to it, and while the
invoker's socket is full the runtime's connection is not read (so memory stays bounded
whatever the sizes). Up to ``MAX_STREAM`` bytes (200 MB) are forwarded; past that the rest
is dropped and the invocation ends with ``Function.ResponseSizeTooLarge``. AWS's bandwidth
cap past the first 6 MB is not applied. A plain Invoke of a streaming function gets the
body whole, as on AWS, up to the buffered limit (6 MB).

The body's end is the ordinary ``/response`` request, which settles the invocation: with
the error in the trailers (``Lambda-Runtime-Function-Error-Type``/``-Body``) if the
runtime failed mid-stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from rapid.api.runtime import trailer_error
from rapid.core.errors import MAX_RUNTIME_RESPONSE, normalise_error_type, payload_too_large, response_too_large
from rapid.core.invocation import InvocationEvent, Outcome, function_failure, platform_failure, success
from rapid.http.message import Request, Response

if TYPE_CHECKING:
    from rapid.core.invocation import Invocation
    from rapid.http.protocol import HttpConnection

MAX_STREAM = 200 * 1024 * 1024
_encode = msgspec.json.Encoder().encode
_ACCEPTED = Response(202, b'{"status":"OK"}', [("Content-Type", "application/json")])


class RuntimeStream:
    __slots__ = ("buffer", "consumer", "conn", "inv", "lost_connection", "produced", "too_large")

    def __init__(self, inv: Invocation, conn: HttpConnection, content_type: str) -> None:
        self.inv = inv
        self.conn = conn
        self.produced = 0
        self.too_large = False
        self.lost_connection = False
        self.consumer = inv.stream
        self.buffer: list[bytes] | None = None if self.consumer is not None else []
        if self.consumer is not None:
            self.consumer.begin(content_type, conn.pause_body, conn.resume_body)

    @property
    def limit(self) -> int:
        return MAX_STREAM if self.consumer is not None else MAX_RUNTIME_RESPONSE

    def data(self, chunk: bytes) -> None:
        self.produced += len(chunk)
        if self.too_large:
            return
        if self.produced > self.limit:
            self.too_large = True
            self.buffer = None
            return
        if self.consumer is not None:
            self.consumer.chunk(chunk)
        elif self.buffer is not None:
            self.buffer.append(chunk)

    def lost(self) -> None:
        """The runtime hung up mid-body: the process's exit or the timeout settles it."""
        self.lost_connection = True

    def outcome(self, req: Request, request_id: str) -> tuple[InvocationEvent, Outcome, Response]:
        """The body ended (``req`` is the finished request, with its trailers): how the
        invocation settles, and what the runtime is answered."""
        failed = trailer_error(req)
        answer = _ACCEPTED
        if self.too_large:
            outcome = platform_failure(response_too_large(), request_id, _encode)
            if self.consumer is None:
                err = payload_too_large()
                answer = Response.json(err.status, err.body())
        elif failed is not None:
            outcome = function_failure(failed[1], normalise_error_type(failed[0]))
        else:
            outcome = success(self.body(), req.headers.get("content-type"))
        outcome.produced = self.produced
        event = InvocationEvent.RESPOND if outcome.status == "success" else InvocationEvent.FAIL
        return event, outcome, answer

    def body(self) -> bytes:
        return b"".join(self.buffer) if self.buffer else b""

    def __repr__(self) -> str:
        to = "invoker" if self.consumer is not None else "buffer"
        return f"<RuntimeStream {self.inv.request_id} {self.produced}B to {to}{' too large' if self.too_large else ''}>"
