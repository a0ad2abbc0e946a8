"""The HTTP/1.1 connection: parse with httptools, hand each request to an app, write back.

An *app* is a callable ``app(request, conn) -> Response | Future[Response]``. Handlers that
can answer at once return a ``Response`` (no task, no coroutine: the hot path); handlers
that must wait return a future, which is how ``/next`` long-polls without a task. Requests
on one connection are answered in order; a client that pipelines waits its turn. When the
peer goes away while a future is pending, the future is cancelled so its owner knows
nobody is listening any more.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Union

import httptools

from rapid.http.message import Request, Response

App = Callable[[Request, "HttpConnection"], Union[Response, "asyncio.Future[Response]"]]

_BAD_REQUEST = Response(400, b'{"message":"Bad Request"}', [("Content-Type", "application/json")])


class HttpConnection(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_close_after",
        "_closed",
        "_closing",
        "_fail_after",
        "_in_headers",
        "_pending",
        "_req",
        "_size",
        "_url",
        "_waiting",
        "_waiting_keep_alive",
        "app",
        "max_body",
        "parser",
        "peer",
        "tag",
        "transport",
    )

    def __init__(self, app: App, max_body: int) -> None:
        self.app = app
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self._req: Request | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._size = 0
        self._in_headers = True
        self._pending: deque[Request] = deque()
        self._waiting: asyncio.Future[Response] | None = None
        self._waiting_keep_alive = True
        self._closed = False
        self._close_after = False
        self._closing = False  # a response with Connection: close went out; write nothing more
        self._fail_after = False  # bad bytes arrived behind a pending answer: 400 after it
        self.peer: tuple[str, int] | None = None
        self.tag: object = None  # for the app: e.g. whether this peer was checked

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")

    def data_received(self, data: bytes) -> None:
        if self._closing or self._fail_after:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail()
        except httptools.HttpParserError:
            self._fail()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._waiting is not None and not self._waiting.done():
            self._waiting.cancel()
        self._pending.clear()

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []
        self._size = 0
        self._in_headers = True

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._req is None:
            self._req = Request(self.parser.get_method().decode(), self._url.decode("latin-1"))
        # llhttp reports trailer fields through the same callback after the headers are
        # complete: they belong to this request's trailers, never to the next request.
        target = self._req.headers if self._in_headers else self._req.trailers
        target[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self._req is None:
            self._req = Request(self.parser.get_method().decode(), self._url.decode("latin-1"))
        self._in_headers = False
        # curl sends `Expect: 100-continue` with bodies over 1 MiB and waits a second for
        # the interim answer before sending the body: answer at once, as Go's server does.
        if self._req.headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            if self._waiting is None and not self._pending and not self._closing:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self.max_body:
            # Keep reading (so the connection stays usable) but keep nothing.
            self._req.too_large = True  # type: ignore[union-attr]
            self._body = []
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        req = self._req
        self._req = None
        if req is None:
            return
        body = self._body
        if len(body) == 1:
            req.body = body[0]
        elif body:
            req.body = b"".join(body)
        self._body = []
        req.keep_alive = self.parser.should_keep_alive()
        if self._waiting is None and not self._pending:
            self._handle(req)
        else:
            self._pending.append(req)

    # -- answering ------------------------------------------------------------------------

    def _handle(self, req: Request) -> None:
        try:
            result = self.app(req, self)
        except Exception:  # a bug in a handler must not take the connection's peers with it
            import traceback

            traceback.print_exc()
            result = Response(500, b'{"message":"Internal error"}', [("Content-Type", "application/json")])
        if isinstance(result, Response):
            self._write(result, req.keep_alive)
        else:
            self._waiting = result
            self._waiting_keep_alive = req.keep_alive
            result.add_done_callback(self._on_done)

    def _on_done(self, fut: asyncio.Future[Response]) -> None:
        self._waiting = None
        if fut.cancelled() or self._closed:
            return
        exc = fut.exception()
        if exc is not None:
            import traceback

            traceback.print_exception(exc)
            self._write(Response(500, b'{"message":"Internal error"}', [("Content-Type", "application/json")]), False)
        else:
            self._write(fut.result(), self._waiting_keep_alive)
        while self._pending and self._waiting is None and not self._closed:
            self._handle(self._pending.popleft())
        if self._fail_after and self._waiting is None and not self._pending:
            self._fail_after = False
            self._fail()

    def _write(self, resp: Response, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or self._closed:
            return
        head = resp.head(keep_alive)
        if len(resp.body) < 16384:
            transport.write(head + resp.body)
        else:
            transport.writelines((head, resp.body))
        if not keep_alive or self._close_after:
            self._closing = True
            transport.close()

    def _fail(self) -> None:
        if self._closing:
            return
        if self._waiting is not None or self._pending:
            # Answer what came before the bad bytes first; then refuse and hang up
            # (data_received drops whatever else arrives meanwhile).
            self._fail_after = True
            return
        self._closing = True
        if self.transport is not None and not self._closed:
            self.transport.write(_BAD_REQUEST.head(False) + _BAD_REQUEST.body)
            self.transport.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close_after_response(self) -> None:
        """Answer the request being handled, then hang up (for refused peers)."""
        self._close_after = True

    def __repr__(self) -> str:
        return f"<HttpConnection peer={self.peer} waiting={self._waiting is not None} closed={self._closed}>"


async def serve(app: App, host: str, port: int, max_body: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HttpConnection(app, max_body), host, port, backlog=1024)
