"""The Runtime API edge (2018-06-01): route each request to its instance, render errors.

One small handler per endpoint, each a guard on a state transition of the instance that
owns this server (``rapid.host.instance``) plus rendering: the handlers parse the request
(headers, trailers, the body) and hand the instance plain values; the instance never sees
HTTP, and the ``/next`` answer with its ``Lambda-Runtime-*`` headers is rendered here
(``next_response``). Every instance has its own server, so a request here can only ever
reach this instance's invocations.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote

import msgspec

from rapid.api import extensions, telemetry
from rapid.core.errors import (
    FunctionError,
    RuntimeAPIError,
    normalise_error_type,
    payload_too_large,
    response_too_large,
)
from rapid.core.invocation import Invocation, InvocationEvent, function_failure, platform_failure, success
from rapid.core.runtime_state import RuntimeEvent
from rapid.http.message import JOINED_BODY, Request, Response
from rapid.http.protocol import HttpConnection
from rapid.http.reply import Reply

if TYPE_CHECKING:
    from rapid.host.instance import Instance

_PREFIX = "/2018-06-01/runtime/"
_NOT_FOUND = {"errorMessage": "Not Found", "errorType": "NotFound"}
_FORBIDDEN = {
    "errorMessage": "Only the runtime of this instance may use its Runtime API",
    "errorType": "AccessDenied",
}


_ACCEPTED = Response.fixed(202, b'{"status":"OK"}', [("Content-Type", "application/json")])
_encode = msgspec.json.Encoder().encode
_RESPONSE, _RESPOND = RuntimeEvent.RESPONSE, InvocationEvent.RESPOND  # (read per invoke: see rapid.host.slots)


def _method_not_allowed() -> Response:
    return Response.json(405, {"errorMessage": "Method Not Allowed", "errorType": "MethodNotAllowed"})


def next_response(inv: Invocation) -> Response:
    """``GET /next``'s answer: the event, and the invocation's ``Lambda-Runtime-*`` headers.

    Without the optional identity headers (the common case) its bytes are also rendered
    here from one template (``Response.wire``, the same bytes ``head(True)`` and the body
    make): one format instead of the generic join over the header list."""
    deadline = str(inv.deadline_epoch_ms)
    headers = [
        ("Content-Type", "application/json"),
        ("Lambda-Runtime-Aws-Request-Id", inv.request_id),
        ("Lambda-Runtime-Deadline-Ms", deadline),
        ("Lambda-Runtime-Invoked-Function-Arn", inv.function_arn),
        ("Lambda-Runtime-Trace-Id", inv.trace_id),
    ]
    resp = Response(200, inv.payload, headers)
    if inv.client_context or inv.cognito_identity:
        if inv.client_context:
            headers.append(("Lambda-Runtime-Client-Context", inv.client_context))
        if inv.cognito_identity:
            headers.append(("Lambda-Runtime-Cognito-Identity", inv.cognito_identity))
    elif inv.payload.__class__ is bytes and len(inv.payload) < JOINED_BODY:
        resp.wire = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {inv.request_id}"
            f"\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: {inv.function_arn}"
            f"\r\nLambda-Runtime-Trace-Id: {inv.trace_id}\r\nContent-Length: {len(inv.payload)}\r\n\r\n"
        ).encode("latin-1") + inv.payload
    return resp


def response(inst: Instance, request_id: str, req: Request) -> Response:
    """``POST /invocation/{id}/response``: the function's answer."""
    stream = inst.take_stream(request_id) if req.streamed else None
    mode = req.headers.get("lambda-runtime-function-response-mode")
    inv = inst.answering(request_id, _RESPONSE)
    if mode is not None and mode.lower() != "streaming":
        inst.fail(inv, FunctionError("Runtime.InvalidResponseModeHeader", "Invalid function response mode"))
        return Response.json(400, {"errorMessage": "Invalid function response mode",
                                   "errorType": "InvalidFunctionResponseMode"})
    if stream is not None:
        event, outcome, answer = stream.outcome(req, inv.request_id)
        inst.finish(inv, event, outcome)
        return answer
    if req.too_large:
        inst.finish(inv, InvocationEvent.FAIL, platform_failure(response_too_large(), inv.request_id, _encode))
        err = payload_too_large()
        return Response.json(err.status, err.body())
    failed = trailer_error(req)  # the Go client reports a failure mid-body in trailers
    if failed is not None:
        inst.finish(inv, InvocationEvent.FAIL, function_failure(failed[1], normalise_error_type(failed[0])))
    else:
        inst.finish(inv, _RESPOND, success(bytes(req.body), req.headers.get("content-type")))
    return _ACCEPTED


def error(inst: Instance, request_id: str, req: Request) -> Response:
    """``POST /invocation/{id}/error``: the function failed."""
    inv = inst.answering(request_id, RuntimeEvent.ERROR)
    body = bytes(req.body) if not req.too_large else b""
    inst.finish(inv, InvocationEvent.FAIL, function_failure(body, normalise_error_type(posted_error_type(req))))
    return _ACCEPTED


def init_error(inst: Instance, req: Request) -> Response:
    """``POST /init/error``: init failed; answered first, then the instance ends it."""
    inst.init_error(bytes(req.body), normalise_error_type(posted_error_type(req)))
    return _ACCEPTED


class RuntimeAPI:
    __slots__ = ("instance",)

    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    def __call__(self, req: Request, conn: HttpConnection) -> Response | asyncio.Future[Response]:
        inst = self.instance
        if not inst.owns(conn):
            conn.close_after_response()
            return Response.json(403, _FORBIDDEN)
        path = req.path
        while path.startswith("//"):  # a client joining "/" + "/2018-06-01/..." still works
            path = path[1:]
        if not path.startswith(_PREFIX):
            if path.startswith(extensions.PREFIX):
                return extensions.handle(inst, path[len(extensions.PREFIX):], req)
            api = telemetry.PATHS.get(path)
            if api is not None:
                return telemetry.subscribe(inst, api, req)
            return Response.json(404, _NOT_FOUND)
        rest = path[len(_PREFIX):]
        try:
            if rest == "invocation/next":
                return inst.next() if req.method == "GET" else _method_not_allowed()
            if rest.startswith("invocation/"):
                request_id, _, action = rest[11:].rpartition("/")
                if action not in ("response", "error"):
                    return Response.json(404, _NOT_FOUND)
                if req.method != "POST":
                    return _method_not_allowed()
                if "%" in request_id:  # the Node client URL-encodes the id
                    request_id = unquote(request_id)
                if action == "response":
                    return response(inst, request_id, req)
                return error(inst, request_id, req)
            if rest == "init/error":
                return init_error(inst, req) if req.method == "POST" else _method_not_allowed()
            if rest == "restore/next":  # SnapStart's restore phase (rapid.host.snap_template)
                return inst.restore_next() if req.method == "GET" else _method_not_allowed()
            if rest == "restore/error":
                if req.method != "POST":
                    return _method_not_allowed()
                return inst.restore_error(bytes(req.body), normalise_error_type(posted_error_type(req)))
        except RuntimeAPIError as exc:
            return Response.json(exc.status, exc.body())
        return Response.json(404, _NOT_FOUND)

    def body_sink(self, req: Request, conn: HttpConnection) -> object:
        """Where a streaming ``/response`` body goes as it arrives (rapid.host.response_stream);
        None for every other request, whose body is collected whole."""
        mode = req.headers.get("lambda-runtime-function-response-mode")
        if mode is None or mode.lower() != "streaming" or req.method != "POST":
            return None
        path = req.path.lstrip("/")
        prefix = _PREFIX[1:] + "invocation/"
        if not path.startswith(prefix) or not path.endswith("/response"):
            return None
        inst = self.instance
        if not inst.owns(conn):
            return None
        request_id = unquote(path[len(prefix):-len("/response")])
        return inst.open_stream(request_id, conn, req.headers.get("content-type") or "application/octet-stream")


class RuntimeTap(Protocol):
    """Something that sees every Runtime API request of every instance and its answer
    (``rapid check`` and ``rapid bench`` record what a runtime sent through one)."""

    def request(self, instance: Instance, req: Request, conn: HttpConnection) -> object: ...

    def answered(self, record: object, response: Response | None) -> None: ...


class TappedRuntimeAPI(RuntimeAPI):
    """The Runtime API with a tap: the tap sees each request as it arrives and its answer
    as it goes out (``None`` when the runtime hung up first). Used only when a tap is set
    on the host, so the plain edge pays nothing for it."""

    __slots__ = ("tap",)

    def __init__(self, instance: Instance, tap: RuntimeTap) -> None:
        super().__init__(instance)
        self.tap = tap

    def __call__(self, req: Request, conn: HttpConnection) -> Response | asyncio.Future[Response]:
        tap = self.tap
        record = tap.request(self.instance, req, conn)
        result = RuntimeAPI.__call__(self, req, conn)
        if isinstance(result, Response):
            tap.answered(record, result)
        else:  # runs before the connection's own callback writes the answer (added after this)
            listen = result.when_answered if isinstance(result, Reply) else result.add_done_callback
            listen(lambda fut: tap.answered(record, None if fut.cancelled() or fut.exception() else fut.result()))
        return result


def runtime_api_for(instance: Instance) -> RuntimeAPI:
    """The Runtime API app for ``instance``'s server: tapped if its host has a tap."""
    tap: RuntimeTap | None = instance.function.host.runtime_tap
    return RuntimeAPI(instance) if tap is None else TappedRuntimeAPI(instance, tap)


def posted_error_type(req: Request) -> str | None:
    """The error type a runtime reported: its header, else the body's ``errorType``
    (most clients send only the body)."""
    header = req.headers.get("lambda-runtime-function-error-type")
    if header:
        return header
    try:
        value = msgspec.json.decode(req.body)
    except msgspec.DecodeError:
        return None
    t = value.get("errorType") if isinstance(value, dict) else None
    return t if isinstance(t, str) else None


def trailer_error(req: Request) -> tuple[str, bytes] | None:
    """(error type, error body) from a response's error trailers, or None.

    The Go client declares both trailers on every POST and fills them only when the
    io.Reader it was streaming failed; a streaming runtime does the same mid-stream."""
    error_type = req.trailers.get("lambda-runtime-function-error-type")
    if not error_type:
        return None
    try:
        body = base64.b64decode(req.trailers.get("lambda-runtime-function-error-body", ""), validate=True)
        msgspec.json.decode(body)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        body = msgspec.json.encode({"errorType": error_type, "errorMessage": ""})
    return error_type, body
