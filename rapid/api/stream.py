"""InvokeWithResponseStream: ``POST /2021-11-15/functions/{name}/response-streaming-invocations``.

The request is checked as Invoke checks it (``rapid.api.invoke``); the answer is AWS's
``application/vnd.amazon.eventstream`` (``rapid.core.eventstream``): ``PayloadChunk``
events carrying the function's bytes, then one ``InvokeComplete`` with ``ErrorCode`` and
``ErrorDetails`` when it failed and ``LogResult`` when the tail was asked for.

A ``StreamAnswer`` is the invocation's consumer. A streaming runtime calls ``begin`` when
its body starts: the HTTP answer's head goes out then, each piece as one PayloadChunk as
it arrives, and the invoker's back-pressure reaches the runtime's socket. A buffered
answer (or an error) arrives whole at settle time and goes out as one PayloadChunk. Errors
of the service itself (unknown function, throttling) are ordinary JSON errors, before any
stream begins. In a cluster, an invocation this node has no room for is run by another
node and its stream relayed unchanged (``rapid.cluster.stream_forwarding``).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import msgspec

from rapid.api.errors import render
from rapid.core import constraints
from rapid.core.errors import MAX_SYNC_REQUEST, request_too_large, shutting_down
from rapid.core.eventstream import invoke_complete, payload_chunk
from rapid.core.invocation import Invocation
from rapid.core.naming import parse_function_name
from rapid.http.message import Request, Response, StreamingResponse

if TYPE_CHECKING:
    from rapid.api.invoke import InvokeAPI
    from rapid.core.naming import Target
    from rapid.host.function import Function

_TAIL_BYTES = 4096


class StreamAnswer:
    __slots__ = ("fut", "inv", "resp", "version")

    def __init__(self, fut: asyncio.Future[Response], version: str) -> None:
        self.fut = fut
        self.version = version
        self.resp: StreamingResponse | None = None
        self.inv: Invocation | None = None

    def begin(self, content_type: str, pause: Callable[[], None] | None = None,
              resume: Callable[[], None] | None = None) -> None:
        if self.resp is not None:
            return
        assert self.inv is not None
        resp = StreamingResponse(200, [
            ("Content-Type", "application/vnd.amazon.eventstream"),
            ("X-Amz-Executed-Version", self.version),
            ("x-amzn-RequestId", self.inv.request_id),
        ])
        resp.on_pause, resp.on_resume = pause, resume
        self.resp = resp
        if not self.fut.done():
            self.fut.set_result(resp)
        else:
            resp.closed = True  # the invoker went away before anything came

    def chunk(self, data: bytes) -> None:
        if self.resp is not None:
            self.resp.write(payload_chunk(data))

    def settled(self, inv: Invocation) -> None:
        outcome = inv.outcome
        assert outcome is not None
        if outcome.service_error is not None and self.resp is None:
            if not self.fut.done():
                self.fut.set_result(render(outcome.service_error, inv.request_id))
            return
        streamed = self.resp is not None
        self.begin(outcome.content_type)
        resp = self.resp
        assert resp is not None
        code = details = None
        if outcome.function_error:
            code, details = _error_fields(outcome.body, outcome.error_type)
        elif not streamed and outcome.body:
            resp.write(payload_chunk(outcome.body))
        log = None
        if inv.log_lines is not None:
            tail = ("\n".join(inv.log_lines) + "\n").encode("utf-8", "replace")[-_TAIL_BYTES:]
            log = base64.b64encode(tail).decode("ascii")
        resp.write(invoke_complete(code, details, log))
        resp.end()


def _error_fields(body: bytes, fallback: str | None) -> tuple[str, str]:
    """ErrorCode and ErrorDetails from a function error's JSON body."""
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        value = None
    if isinstance(value, dict):
        code = value.get("errorType")
        message = value.get("errorMessage")
        return (code if isinstance(code, str) and code else fallback or "Unhandled",
                message if isinstance(message, str) else body.decode("utf-8", "replace"))
    return fallback or "Unhandled", body.decode("utf-8", "replace")


def invoke(api: InvokeAPI, name: str, req: Request, rid: str) -> Response | asyncio.Future[Response]:
    from rapid.api.invoke import _client_context

    host = api.host
    if host.stopping:
        raise shutting_down()
    qualifier = constraints.qualifier(parse_qs(req.query).get("Qualifier", [None])[0] if req.query else None)
    target = parse_function_name(name, qualifier, host.region, host.config.account_id)
    kind = constraints.enum(
        "invocationType", req.headers.get("x-amz-invocation-type") or "RequestResponse", ("RequestResponse", "DryRun")
    )
    log_type = constraints.enum("logType", req.headers.get("x-amz-log-type") or "None", ("None", "Tail"))
    fn = host.resolve(target)
    body = req.body
    if req.too_large or len(body) > MAX_SYNC_REQUEST:
        raise request_too_large(MAX_SYNC_REQUEST)
    if not body:
        body = b"{}"
    else:
        constraints.json_payload(body)
    raw_context = req.headers.get("x-amz-client-context")
    client_context = _client_context(raw_context) if raw_context else None
    if kind == "DryRun":
        return Response(204, b"", [("X-Amz-Executed-Version", fn.version), ("x-amzn-RequestId", rid)])
    tail = log_type == "Tail"
    placement = api.placement
    if placement is not None and placement.streams is not None:  # a cluster: maybe another node runs it
        placed = placement.place(fn, req, rid, lambda: _submit(api, host.resolve(target), target, req, rid,
                                                               bytes(body), client_context, tail),
                                 ask=placement.streams.asker("invoke"))
        if placed is not None:
            return placed
    return _submit(api, fn, target, req, rid, bytes(body), client_context, tail)


def _submit(api: InvokeAPI, fn: Function, target: Target, req: Request, rid: str, body: bytes,
            client_context: str | None, tail: bool) -> asyncio.Future[Response]:
    from rapid.api.invoke import sync_invocation

    inv = sync_invocation(api.host, fn, target, req, rid, body, client_context, tail)
    fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    answer = StreamAnswer(fut, fn.version)
    answer.inv = inv
    inv.stream = answer
    inv.on_settled = answer.settled
    fn.submit(inv)
    return fut
