"""The HTTP/1.1 connection: parse with httptools, hand each request to an app, write back.

An *app* is a callable ``app(request, conn) -> Response | Future[Response]``. Handlers that
can answer at once return a ``Response`` (no task, no coroutine: the hot path); handlers
that must wait return a future, which is how ``/next`` long-polls without a task (a
``rapid.http.reply.Reply`` is written the moment it is answered, any other future from its
done callback). Requests
on one connection are answered in order; a client that pipelines waits its turn. When the
peer goes away while a future is pending, the future is cancelled so its owner knows
nobody is listening any more.

Two paths stream instead of collecting. An app may offer a ``body_sink(request, conn)``: asked
when a request's headers are complete, it may return a sink whose ``data(bytes)`` receives
the body as it arrives (the request then reaches the app with ``streamed`` set and an empty
body; ``pause_body``/``resume_body`` let the sink stop reading while its consumer is full).
And a handler may answer with a ``StreamingResponse``: the head goes out at once, the body
in chunks as the producer writes them, and requests pipelined behind it wait until it ends.

Every buffer is bounded: a body past ``max_body`` is read and dropped (the request is
marked ``too_large``); a request line plus headers past ``Limits.max_head`` is answered 431
and the connection closed; a client that pipelines more than a few requests is not read
from until it has been answered. Where ``Limits.answer_after_eof`` says so (the Invoke API),
a client that half-closes (``shutdown(SHUT_WR)``) after its requests still gets every
answer before the connection is closed. Timeouts and the
connection cap are the listener's (``rapid.http.server``): a connection only records when
it last made progress and what it is doing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Union

import httptools

from rapid.http.limits import BAD_REQUEST, DEFAULT_LIMITS, Clock, Limits, refusal
from rapid.http.message import JOINED_BODY, Request, Response, StreamingResponse
from rapid.http.reply import Reply

__all__ = ["App", "Clock", "DEFAULT_LIMITS", "HttpConnection", "Limits", "serve"]

App = Callable[[Request, "HttpConnection"], Union[Response, "asyncio.Future[Response]"]]

_PIPELINE_DEPTH = 16  # requests queued behind a pending answer before reading pauses
_LINGER_SECONDS = 2.0  # after a 431, how long to drain what the client still sends
# Header names as they came -> decoded and lowercased: clients send the same few names on
# every request, so one lookup replaces a decode and a lower per field.
_NAMES: dict[bytes, str] = {}
_NAMES_KEPT = 1024


_STOPPED = Clock()  # for connections nobody sweeps


def _name(raw: bytes) -> str:
    """A header name as ``on_header`` keys it (lowercased), kept for the next request."""
    key = raw.decode("latin-1").lower()
    if len(_NAMES) < _NAMES_KEPT:
        _NAMES[raw] = key
    return key


class HttpConnection(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_clock",
        "_close_after",
        "_closed",
        "_closing",
        "_eof",
        "_fail_after",
        "_fields",
        "_fail_status",
        "_head",
        "_in_headers",
        "_on_close",
        "_opener",
        "_paused",
        "_pending",
        "_req",
        "_sink",
        "_size",
        "_stream",
        "_stream_keep_alive",
        "_url",
        "_waiting",
        "_waiting_keep_alive",
        "app",
        "began_at",
        "last_io",
        "limits",
        "max_body",
        "parser",
        "peer",
        "reading",
        "tag",
        "transport",
    )

    def __init__(
        self, app: App, max_body: int, limits: Limits = DEFAULT_LIMITS, clock: Clock = _STOPPED,
        on_close: Callable[[HttpConnection], None] | None = None,
    ) -> None:
        self.app = app
        self._opener = getattr(app, "body_sink", None)  # apps that take some bodies as they arrive
        self.max_body = max_body
        self.limits = limits
        self._clock = clock
        self._on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self._req: Request | None = None
        self._url = b""
        self._fields: dict[str, str] = {}  # where on_header puts a field: the headers, then the trailers
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
        self._fail_status = 400
        self._eof = False  # the peer half-closed: answer what it sent, then close
        self._paused = False  # too many pipelined requests: not reading until answered
        self._head = 0  # bytes of the request line and headers received so far
        self._sink: object = None  # where this request's body goes as it arrives, if anywhere
        self._stream: StreamingResponse | None = None  # a response being written as produced
        self._stream_keep_alive = True
        self.reading = False  # a request has begun and is not complete
        self.began_at = clock.now
        self.last_io = clock.now
        self.peer: tuple[str, int] | None = None
        self.tag: object = None  # for the app: e.g. whether this peer was checked

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")

    def data_received(self, data: bytes) -> None:
        if self._closing or self._fail_after:
            return
        self.last_io = self._clock.now
        body_before = self._size
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserUpgrade, httptools.HttpParserError):
            self._fail()
            return
        # httptools buffers a header (or trailer) until it is whole: bound what is not body
        # here, as it grows. Chunk framing counts too (some 8 bytes a chunk). (A request
        # that completed in this read has nothing left to bound.)
        if self.reading:
            self._head += len(data) - max(0, self._size - body_before)
            if self._head > self.limits.max_head:
                self._fail(431)

    def eof_received(self) -> bool:
        """The peer will send nothing more: answer what it asked, then close."""
        self._eof = True
        if not self.limits.answer_after_eof or (self._waiting is None and not self._pending):
            return False  # the transport closes; connection_lost cancels what was pending
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._waiting is not None and not self._waiting.done():
            self._waiting.cancel()
        if self._stream is not None:
            self._stream.closed = True
            self._stream = None
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.lost()  # type: ignore[attr-defined]
        self._pending.clear()
        if self._on_close is not None:
            self._on_close(self)

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._fields = {}  # the next request's headers (its Request is made when they are complete)
        self._body = []
        self._size = 0
        self._head = 0
        self._in_headers = True
        self.reading = True
        self.began_at = self._clock.now

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp reports trailer fields through the same callback after the headers are
        # complete: ``_fields`` is then this request's trailers, never the next request's.
        fields = self._fields
        key = _NAMES.get(name)
        if key is None:
            key = _name(name)
        if key in fields:  # a repeated field is the list of its values (RFC 9110 5.3; cookies: RFC 6265 5.4)
            fields[key] += ("; " if key == "cookie" else ",") + value.decode("latin-1")
        else:
            fields[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        req = self._req = Request(self.parser.get_method().decode(), self._url.decode("latin-1"), self._fields)
        self._fields = req.trailers
        self._in_headers = False
        # curl sends `Expect: 100-continue` with bodies over 1 MiB and waits a second for
        # the interim answer before sending the body: answer at once, as Go's server does.
        expect = req.headers.get("expect")
        if expect is not None and expect.lower() == "100-continue" and self.transport is not None:
            if self._waiting is None and not self._pending and not self._closing:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        opener = self._opener
        if opener is not None and self._waiting is None and not self._pending and self._stream is None:
            self._sink = opener(req, self)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._sink is not None:
            self._sink.data(body)  # type: ignore[attr-defined]
            return
        if self._size > self.max_body:
            # Keep reading (so the connection stays usable) but keep nothing.
            self._req.too_large = True  # type: ignore[union-attr]
            self._body = []
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        self.reading = False
        req = self._req
        self._req = None
        if req is None:
            return
        if self._sink is not None:
            self._sink = None
            req.streamed = True
        body = self._body
        if len(body) == 1:
            req.body = body[0]
        elif body:
            req.body = b"".join(body)
        self._body = []
        req.keep_alive = self.parser.should_keep_alive()
        if self._waiting is None and not self._pending and self._stream is None:
            self._handle(req)
        else:
            self._pending.append(req)
            if len(self._pending) >= _PIPELINE_DEPTH and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()

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
            if result.__class__ is Reply:  # written the moment it is answered (rapid.http.reply)
                result.when_answered(self._on_done)  # type: ignore[attr-defined]
            else:
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
        if self._pending or self._paused or self._fail_after:  # (nothing else to go on with)
            self._continue()

    def _continue(self) -> None:
        """An answer is out: handle what was pipelined behind it."""
        while self._pending and self._waiting is None and self._stream is None and not self._closed:
            self._handle(self._pending.popleft())
        if self._paused and len(self._pending) < _PIPELINE_DEPTH // 2 and not self._closed:
            self._paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]
        if self._fail_after and self._waiting is None and not self._pending:
            self._fail_after = False
            self._fail(self._fail_status)

    def _write(self, resp: Response, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or self._closed:
            if isinstance(resp, StreamingResponse):
                resp.closed = True
            return
        if isinstance(resp, StreamingResponse):
            transport.write(resp.head(keep_alive))
            self.last_io = self._clock.now
            self._stream = resp
            self._stream_keep_alive = keep_alive
            resp.bind(self)
            return
        wire = resp.wire
        if wire is not None and keep_alive:
            transport.write(wire)
            self.last_io = self._clock.now
            if self._close_after or (self._eof and not self._pending and self._waiting is None):
                self._closing = True
                transport.close()
            return
        head = resp.head(keep_alive)
        if len(resp.body) < JOINED_BODY:
            transport.write(head + resp.body)
        else:
            transport.writelines((head, resp.body))
        self.last_io = self._clock.now
        if not keep_alive or self._close_after or (self._eof and not self._pending and self._waiting is None):
            self._closing = True
            transport.close()

    # -- a streaming response (StreamingResponse calls these) ---------------------------

    def stream_write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or self._closed:
            return
        transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        self.last_io = self._clock.now

    def stream_end(self) -> None:
        resp, self._stream = self._stream, None
        transport = self.transport
        if resp is None or transport is None or self._closed:
            return
        transport.write(b"0\r\n\r\n")
        if not self._stream_keep_alive or self._close_after or (self._eof and not self._pending):
            self._closing = True
            transport.close()
            return
        self._continue()

    def pause_writing(self) -> None:
        if self._stream is not None and callable(self._stream.on_pause):
            self._stream.on_pause()

    def resume_writing(self) -> None:
        if self._stream is not None and callable(self._stream.on_resume):
            self._stream.on_resume()

    def pause_body(self) -> None:
        if self.transport is not None and not self._closed:
            self.transport.pause_reading()

    def resume_body(self) -> None:
        if self.transport is not None and not self._closed and not self._paused:
            self.transport.resume_reading()

    def _fail(self, status: int = 400) -> None:
        """Refuse the request being read (400 malformed, 408 too slow, 431 head too large)
        and hang up."""
        if self._closing:
            return
        self._fail_status = status
        if self._waiting is not None or self._pending:
            # Answer what came before the bad bytes first; then refuse and hang up
            # (data_received drops whatever else arrives meanwhile).
            self._fail_after = True
            return
        self._closing = True
        transport = self.transport
        if transport is not None and not self._closed:
            resp = BAD_REQUEST if status == 400 else refusal(status, self.limits.max_head)
            transport.write(resp.head(False) + resp.body)
            if status == 431 and transport.can_write_eof():
                # The client is most likely still sending its head: closing now would reset
                # the connection before it reads the answer. Send ours, keep reading (and
                # dropping: data_received ignores a closing connection), close in a while.
                transport.write_eof()
                asyncio.get_running_loop().call_later(_LINGER_SECONDS, transport.close)
            else:
                transport.close()

    @property
    def headers_done(self) -> bool:
        return not self._in_headers

    @property
    def busy(self) -> bool:
        """Whether an answer is owed (a handler is working, or requests wait their turn)."""
        return self._waiting is not None or bool(self._pending) or self._stream is not None

    def time_out(self) -> None:
        """The listener's verdict: too slow. Mid-request: 408; idle: just close."""
        if self.reading:
            self._fail(408)
        elif not self._closing and self.transport is not None:
            self._closing = True
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (the listener needs the descriptor back)."""
        self._closing = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def closed(self) -> bool:
        return self._closed

    def close_after_response(self) -> None:
        """Answer the request being handled, then hang up (for refused peers)."""
        self._close_after = True

    def __repr__(self) -> str:
        return f"<HttpConnection peer={self.peer} waiting={self._waiting is not None} closed={self._closed}>"


async def serve(app: App, host: str, port: int, max_body: int) -> asyncio.Server:
    """A listener with no timeouts and no cap (an instance's Runtime API: its runtime's
    held ``/next`` must never time out). ``rapid.http.server.Listener`` adds both."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HttpConnection(app, max_body), host, port, backlog=1024)
