"""The dashboard's edge: the page, its JSON, and its live stream, under ``/_rapid/``.

- ``GET /_rapid/`` the single page (plain HTML, JS and CSS from ``rapid/dashboard/static``,
  no build step); ``GET /_rapid/static/NAME`` its files.
- ``GET /_rapid/api/host`` functions and their instances; ``/invocations`` the recent
  invocations (``?function=&limit=``); ``/logs`` log lines (``?requestId=&function=
  &contains=&limit=``); ``/minutes?function=`` per-minute invocations, errors and
  throttles for the last hour; ``/async`` the queue depth and oldest event age per function.
- ``GET /_rapid/api/events`` Server-Sent Events: one ``batch`` event every 250 ms while
  anything happened, ``{"invocations": [[...]], "logs": [[...]], "throttles": [[function,
  count, time]], "dropped": N}``, rows in the field order of ``fields`` (sent first, in a
  ``fields`` event). A client whose socket buffer passes 1 MB is dropped: it can never slow
  the invoke path.
- ``POST /_rapid/api/invoke/NAME`` invokes as the Invoke API does (it is the Invoke API's
  own handler) and answers its status, payload and log tail as JSON.

Only loopback clients are served: the dashboard reads and runs everything.
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import msgspec

from rapid.core.errors import ServiceError, unknown_operation
from rapid.dashboard.feed import INVOCATION_FIELDS, LINE_FIELDS, Batch, Feed
from rapid.dashboard.views import host_view
from rapid.http.message import Request, Response
from rapid.http.protocol import HttpConnection

if TYPE_CHECKING:
    from rapid.api.invoke import InvokeAPI
    from rapid.events.dispatcher import Dispatcher
    from rapid.host.host import Host

PREFIX = "/_rapid"
STATIC = Path(__file__).resolve().parent.parent / "dashboard" / "static"
_encode = msgspec.json.Encoder().encode
_MAX_BUFFERED = 1 << 20  # bytes an SSE client may fall behind before it is dropped
_PING_SECONDS = 15.0


def is_loopback(peer: tuple[str, int] | None) -> bool:
    if not peer:
        return False
    host = peer[0]
    return host.startswith("127.") or host == "::1" or host.startswith("::ffff:127.")


def forbidden() -> ServiceError:
    return ServiceError(
        403, "AccessDeniedException",
        "The dashboard is served to loopback clients only: connect from this machine.",
    )


class DashboardAPI:
    def __init__(self, host: Host, invoke: InvokeAPI, events: Dispatcher | None) -> None:
        self.host = host
        self.feed: Feed = host.feed
        self.invoke_api = invoke
        self.events = events
        self._loop = asyncio.get_running_loop()
        self._static = {p.name: p for p in STATIC.iterdir() if p.is_file()}

    def __call__(self, req: Request, conn: HttpConnection, rid: str) -> Response | asyncio.Future[Response]:
        """Raises ``ServiceError`` for the caller to render."""
        if not is_loopback(conn.peer):
            raise forbidden()
        path = req.path[len(PREFIX):]
        query = {k: v[-1] for k, v in parse_qs(req.query).items()} if req.query else {}
        if req.method == "GET":
            if path in ("", "/"):
                if path == "":
                    return Response(301, b"", [("Location", PREFIX + "/")])
                return self._file("index.html")
            if path.startswith("/static/"):
                return self._file(path[8:])
            if path == "/api/host":
                return Response.json(200, host_view(self.host))
            if path == "/api/invocations":
                return Response.json(200, self.feed.recent(query.get("function"), _limit(query, 100, 1000)))
            if path == "/api/logs":
                lines = self.feed.log_lines(
                    query.get("requestId"), query.get("function"), query.get("contains"), _limit(query, 500, 5000)
                )
                return Response.json(200, lines)
            if path == "/api/minutes":
                fn = query.get("function", "")
                return Response.json(200, {"function": fn, "minutes": self.feed.minutes(fn)})
            if path == "/api/async":
                return self._async()
            if path == "/api/events":
                return EventStream(self.feed, conn, self._loop).future
        if req.method == "POST" and path.startswith("/api/invoke/"):
            return self._invoke(unquote(path[12:]), req, conn, rid)
        raise unknown_operation()

    def _file(self, name: str) -> Response:
        path = self._static.get(name)
        if path is None:
            raise unknown_operation()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        return Response(200, path.read_bytes(), [("Content-Type", kind), ("Cache-Control", "no-cache")])

    def _async(self) -> Response | asyncio.Future[Response]:
        if self.events is None:
            return Response.json(200, {})
        out: asyncio.Future[Response] = self._loop.create_future()

        def done(snap: asyncio.Future[Any]) -> None:
            if out.done():
                return
            if snap.exception() is not None:
                out.set_result(Response.json(200, {}))
                return
            s = snap.result()
            names = set(s.depth) | set(s.oldest)
            out.set_result(Response.json(200, {
                f: {"depth": s.depth.get(f, 0), "running": s.running.get(f, 0),
                    "oldestAgeSeconds": round(max(0.0, s.now - s.oldest[f]), 3) if f in s.oldest else None}
                for f in sorted(names)
            }))

        self.events.snapshot().add_done_callback(done)
        return out

    def _invoke(self, name: str, req: Request, conn: HttpConnection, rid: str) -> Response | asyncio.Future[Response]:
        inner = Request("POST", f"/2015-03-31/functions/{name}/invocations")
        inner.body = req.body
        inner.headers = {"x-amz-log-type": "Tail"}
        try:
            answer = self.invoke_api.invoke(name, inner, rid, None)
        except ServiceError as exc:
            return Response.json(200, {"status": exc.status, "error": exc.code, "message": exc.message})
        if isinstance(answer, Response):
            return _summary(answer)
        out: asyncio.Future[Response] = self._loop.create_future()

        def done(fut: asyncio.Future[Response]) -> None:
            if not out.done():
                out.set_result(_summary(fut.result()))

        answer.add_done_callback(done)
        return out


def _summary(resp: Response) -> Response:
    headers = {k.lower(): v for k, v in resp.headers}
    tail = headers.get("x-amz-log-result")
    return Response.json(200, {
        "status": resp.status,
        "requestId": headers.get("x-amzn-requestid"),
        "executedVersion": headers.get("x-amz-executed-version"),
        "functionError": headers.get("x-amz-function-error"),
        "payload": bytes(resp.body).decode("utf-8", "replace"),
        "log": base64.b64decode(tail).decode("utf-8", "replace") if tail else "",
    })


def _limit(query: dict[str, str], default: int, most: int) -> int:
    try:
        return max(1, min(most, int(query.get("limit", default))))
    except ValueError:
        return default


class EventStream:
    """One SSE client: the head is written at once, then each batch of the feed as it is
    flushed. The future stands for the open stream; it is cancelled when the client goes,
    and the subscription ends with it."""

    __slots__ = ("conn", "future", "_ping", "_loop", "_unsubscribe")

    def __init__(self, feed: Feed, conn: HttpConnection, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = conn
        self._loop = loop
        self.future: asyncio.Future[Response] = loop.create_future()
        self.future.add_done_callback(self._closed)
        fields = _encode({"invocations": INVOCATION_FIELDS, "logs": LINE_FIELDS})
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                b"Connection: close\r\n\r\nretry: 2000\n\nevent: fields\ndata: " + fields + b"\n\n")
        self._write(head)
        self._unsubscribe = feed.subscribe(self.send)
        self._ping = loop.call_later(_PING_SECONDS, self._keepalive)

    def send(self, batch: Batch) -> None:
        self._write(b"event: batch\ndata: " + _encode(batch) + b"\n\n")

    def _keepalive(self) -> None:
        self._write(b": ping\n\n")
        self._ping = self._loop.call_later(_PING_SECONDS, self._keepalive)

    def _write(self, data: bytes) -> None:
        transport = self.conn.transport
        if transport is None or transport.is_closing():
            self._end()
            return
        if transport.get_write_buffer_size() > _MAX_BUFFERED:
            transport.close()  # too far behind: dropped, the page reconnects and reloads
            self._end()
            return
        transport.write(data)

    def _end(self) -> None:
        if not self.future.done():
            self.future.cancel()

    def _closed(self, _fut: asyncio.Future[Response]) -> None:
        self._unsubscribe()
        self._ping.cancel()
