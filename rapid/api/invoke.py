"""The Lambda Invoke API, as boto3 and the AWS CLI call it.

``POST /2015-03-31/functions/{name}/invocations[?Qualifier=]`` and the legacy
``POST /2014-11-13/functions/{name}/invoke-async/``; ``GET /healthz`` for readiness; the
event-invoke-config API and ``GET /metrics`` (``rapid.events.api``); ``rapid.api.app``
routes to them. Each handler checks its request, builds an ``Invocation`` and hands it to
the function (``Host.resolve`` picks the version: an alias by weight); a synchronous
invoke returns a future that the invocation's ``on_settled`` resolves, so no task is
created per request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import msgspec

from rapid.core import constraints
from rapid.core.errors import (
    MAX_ASYNC_REQUEST,
    MAX_SYNC_REQUEST,
    ServiceError,
    request_too_large,
    shutting_down,
    validation,
)
from rapid.core.invocation import Invocation
from rapid.core.naming import Target, function_arn, parse_function_name, trace_id
from rapid.api.errors import render as _error
from rapid.api.event_answer import answer
from rapid.events.api import EventsAPI
from rapid.events.dispatcher import Dispatcher
from rapid.host.function import Function
from rapid.host.host import Host
from rapid.http.message import JOINED_BODY, Request, Response
from rapid.http.reply import Reply

if TYPE_CHECKING:
    from rapid.cluster.forwarding import Placement

_TAIL_BYTES = 4096
_INVOCATION_TYPES = ("Event", "RequestResponse", "DryRun")  # in the order AWS lists them
_LOG_TYPES = ("None", "Tail")
_MAX_CLIENT_CONTEXT = 3583
_FUNCTION_ERROR = "X-Amz-Function-Error: Unhandled\r\n"
_KEPT_TARGETS = 4096  # function names parsed and kept (their validation passed); past it, start again


class InvokeAPI:
    def __init__(self, host: Host, ready: Callable[[], bool], events: Dispatcher | None = None) -> None:
        self.host = host
        self.ready = ready
        self.events = events  # durable async invocation (rapid.events); None: Event is refused
        self.events_api = EventsAPI(host, events) if events is not None else None
        self._loop = asyncio.get_running_loop()
        # In a cluster (rapid.cluster.forwarding): asked before a sync invocation is queued
        # here; None runs it here, a future is its answer from elsewhere.
        self.placement: Placement | None = None
        # (name, qualifier) -> its parsed Target: an invoker names the same few functions
        # over and over (the region and account are the host's, fixed for its life).
        self._targets: dict[tuple[str, str | None], Target] = {}

    def invoke(
        self, name: str, req: Request, rid: str, forced_type: str | None
    ) -> Response | asyncio.Future[Response]:
        host = self.host
        if host.stopping:
            raise shutting_down()
        query = req.query
        qualifier = constraints.qualifier(parse_qs(query).get("Qualifier", [None])[0]) if query else None
        target = self._targets.get((name, qualifier))
        if target is None:
            target = parse_function_name(name, qualifier, host.region, host.config.account_id)
            if len(self._targets) >= _KEPT_TARGETS:
                self._targets.clear()
            self._targets[(name, qualifier)] = target
        headers = req.headers
        kind = forced_type or headers.get("x-amz-invocation-type") or "RequestResponse"
        if kind not in _INVOCATION_TYPES:
            constraints.enum("invocationType", kind, _INVOCATION_TYPES)  # raises AWS's validation error
        log_type = headers.get("x-amz-log-type") or "None"
        if log_type not in _LOG_TYPES:
            constraints.enum("logType", log_type, _LOG_TYPES)
        fn = host.resolve(target)

        limit = MAX_ASYNC_REQUEST if kind == "Event" else MAX_SYNC_REQUEST
        body = req.body
        if req.too_large or len(body) > limit:
            raise request_too_large(limit)
        if not body:
            body = b"{}"  # an invoke with no payload gives the function an empty object
        else:
            constraints.json_payload(body)
        client_context = None
        raw_context = req.headers.get("x-amz-client-context")
        if raw_context and kind != "Event":
            client_context = _client_context(raw_context)
        if kind == "DryRun":
            return Response(204, b"", [("X-Amz-Executed-Version", fn.version), ("x-amzn-RequestId", rid)])

        if kind == "Event":
            if self.events is None:
                raise shutting_down()
            # Durable: answered 202 once the event is on disk (rapid.events).
            return answer(self.events.accept(fn, target.qualifier, rid, bytes(body),
                                             req.headers.get("x-amzn-trace-id")), rid)

        if self.placement is not None:
            placed = self.placement.place(fn, req, rid, lambda: self._run_here(
                host.resolve(target), target, req, rid, bytes(body), client_context, log_type == "Tail"))
            if placed is not None:
                return placed
        return self._run_here(fn, target, req, rid, bytes(body), client_context, log_type == "Tail")

    def _run_here(self, fn: Function, target: Target, req: Request, rid: str, body: bytes,
                  client_context: str | None, tail: bool) -> asyncio.Future[Response]:
        inv = sync_invocation(self.host, fn, target, req, rid, body, client_context, tail)
        # A Reply: the invoker's answer is written the moment the invocation settles, before
        # the runtime's 202 (rapid.http.reply); callers that await it still can.
        fut = Reply(self._loop)
        version = fn.version

        logs = self.host.logs

        def settled(inv: Invocation) -> None:
            logs.flush()  # whatever the platform wrote for it (INIT_REPORT too) is on stdout first
            fut.answer(_answer(inv, version))

        inv.on_settled = settled
        fn.submit(inv)
        return fut


def sync_invocation(
    host: Host, fn: Function, target: Target, req: Request, rid: str, payload: bytes, client_context: str | None,
    tail: bool,
) -> Invocation:
    """A synchronous invocation of ``fn`` as an invoker asked for it (Invoke, and
    InvokeWithResponseStream): the payload checked, the request's trace and identity."""
    inv = Invocation(
        request_id=rid,
        payload=payload,
        function_arn=function_arn(host.region, host.config.account_id, fn.name, target.qualifier),
        timeout=fn.timeout,
        trace_id=req.headers.get("x-amzn-trace-id") or trace_id(),
        client_context=client_context,
        cognito_identity=req.headers.get("x-amz-cognito-identity"),
        tail_log=tail,
    )
    if tail:
        inv.log_lines = []
    return inv


def _answer(inv: Invocation, version: str) -> Response:
    outcome = inv.outcome
    assert outcome is not None
    if outcome.service_error is not None:
        return _error(outcome.service_error, inv.request_id)
    headers = [
        ("Content-Type", "application/json"),
        ("X-Amz-Executed-Version", version),
        ("x-amzn-RequestId", inv.request_id),
    ]
    if outcome.function_error:
        headers.append(("X-Amz-Function-Error", "Unhandled"))
    if inv.log_lines is not None:
        tail = ("\n".join(inv.log_lines) + "\n").encode("utf-8", "replace")[-_TAIL_BYTES:]
        headers.append(("X-Amz-Log-Result", base64.b64encode(tail).decode("ascii")))
        return Response(200, outcome.body, headers)
    resp = Response(200, outcome.body, headers)
    body = outcome.body
    if body.__class__ is bytes and len(body) < JOINED_BODY:  # its bytes from one template (= head(True) + body)
        resp.wire = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Amz-Executed-Version: {version}\r\n"
            f"x-amzn-RequestId: {inv.request_id}\r\n{_FUNCTION_ERROR if outcome.function_error else ''}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1") + body
    return resp


def _client_context(raw: str) -> str:
    if len(raw) > _MAX_CLIENT_CONTEXT:
        raise validation(
            "1 validation error detected: Value at 'clientContext' failed to satisfy constraint: "
            f"Member must have length less than or equal to {_MAX_CLIENT_CONTEXT}"
        )
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
        msgspec.json.decode(text)
    except (binascii.Error, UnicodeDecodeError, msgspec.DecodeError):
        raise ServiceError(
            400, "InvalidRequestContentException", "Client context must be a valid Base64-encoded JSON object."
        ) from None
    return text
