"""The Runtime API edge (2018-06-01): route each request to its instance, render errors.

One small handler per endpoint, each a guard on a state transition of the instance that
owns this server (``rapid.host.instance``). Every instance has its own server, so a
request here can only ever reach this instance's invocations.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote

import msgspec

from rapid.core.errors import RuntimeAPIError
from rapid.http.message import Request, Response
from rapid.http.protocol import HttpConnection

if TYPE_CHECKING:
    from rapid.host.instance import Instance

_PREFIX = "/2018-06-01/runtime/"
_NOT_FOUND = {"errorMessage": "Not Found", "errorType": "NotFound"}
_FORBIDDEN = {
    "errorMessage": "Only the runtime of this instance may use its Runtime API",
    "errorType": "AccessDenied",
}


def _method_not_allowed() -> Response:
    return Response.json(405, {"errorMessage": "Method Not Allowed", "errorType": "MethodNotAllowed"})


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
                    return inst.respond(request_id, req)
                return inst.error(request_id, req)
            if rest == "init/error":
                return inst.init_error(req) if req.method == "POST" else _method_not_allowed()
        except RuntimeAPIError as exc:
            return Response.json(exc.status, exc.body())
        return Response.json(404, _NOT_FOUND)


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
        else:  # runs before the connection's own callback writes the answer
            result.add_done_callback(
                lambda fut: tap.answered(record, None if fut.cancelled() or fut.exception() else fut.result())
            )
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
