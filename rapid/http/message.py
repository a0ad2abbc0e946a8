"""Requests and responses: plain objects, and the bytes of a response."""

from __future__ import annotations

from http import HTTPStatus

import msgspec

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_encode_json = msgspec.json.Encoder().encode
# A body shorter than this goes out joined to its head in one bytes (one copy, one write);
# a longer one beside it (``writelines``: no copy of the body).
JOINED_BODY = 16384
_STATUS_LINES = {s: f"HTTP/1.1 {s} {_REASONS[s]}\r\n" for s in (200, 202, 400, 403, 404, 413, 429, 500)}


class Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "path", "streamed", "target", "too_large", "trailers")

    def __init__(self, method: str, target: str, headers: dict[str, str] | None = None) -> None:
        self.method = method
        self.target = target  # path and query, undecoded
        self.path = target.partition("?")[0]  # read by every router on the way: made once
        # names lowercased; a repeated header's values joined by commas
        self.headers: dict[str, str] = {} if headers is None else headers
        self.trailers: dict[str, str] = {}
        self.body: bytes | bytearray = b""
        self.too_large = False  # the body passed the protocol's limit and was dropped
        self.keep_alive = True
        self.streamed = False  # the body went to a sink as it arrived (``body`` is empty)

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} {len(self.body)}B>"


class Response:
    __slots__ = ("body", "headers", "status", "wire")

    def __init__(
        self, status: int, body: bytes | bytearray | memoryview = b"", headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []
        # Its bytes on a keep-alive connection, when made ahead: a fixed answer's, or one
        # rendered from a template (always ``head(True) + body``; the connection writes them).
        self.wire: bytes | None = None

    @classmethod
    def fixed(cls, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> Response:
        """An answer sent often and never changed (``202 {"status":"OK"}``): its bytes are
        made once. Do not modify it."""
        r = cls(status, body, headers)
        r.wire = r.head(True) + body
        return r

    @classmethod
    def json(cls, status: int, obj: object, headers: list[tuple[str, str]] | None = None) -> Response:
        h = [("Content-Type", "application/json")]
        if headers:
            h.extend(headers)
        return cls(status, _encode_json(obj), h)

    def head(self, keep_alive: bool) -> bytes:
        status = self.status
        line = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
        headers = self.headers
        fields = ""
        if headers:
            try:  # one C-level join for the header lines (no Python frame per header)
                fields = "\r\n".join(map(": ".join, headers)) + "\r\n"
            except TypeError:  # a value that is not a str (a number)
                fields = "".join(f"{name}: {value}\r\n" for name, value in headers)
        if status != 204 and status != 304:
            end = (f"Content-Length: {len(self.body)}\r\n\r\n" if keep_alive
                   else f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n")
        else:
            end = "\r\n" if keep_alive else "Connection: close\r\n\r\n"
        return (line + fields + end).encode("latin-1")

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)}B>"


class StreamingResponse(Response):
    """A response whose body is written as it is produced (chunked transfer coding).

    The handler's future resolves with it before the body exists; the producer then calls
    ``write`` for each piece and ``end`` once. Writes before the connection has sent the
    head are kept and flushed when it does. ``closed`` turns true if the client goes away;
    ``on_pause``/``on_resume`` (set by the producer) say when the client's socket is full
    and when it drained, so the producer can stop reading from its own source."""

    __slots__ = ("_conn", "_early", "_ended", "closed", "on_pause", "on_resume")

    def __init__(self, status: int, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(status, b"", headers)
        self._conn: object = None
        self._early: list[bytes] = []
        self._ended = False
        self.closed = False
        self.on_pause: object = None
        self.on_resume: object = None

    def head(self, keep_alive: bool) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Unknown')}\r\n"]
        for name, value in self.headers:
            lines.append(f"{name}: {value}\r\n")
        lines.append("Transfer-Encoding: chunked\r\n")
        if not keep_alive:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    def write(self, data: bytes) -> None:
        if not data or self._ended or self.closed:
            return
        if self._conn is None:
            self._early.append(data)
        else:
            self._conn.stream_write(data)  # type: ignore[attr-defined]

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._conn is not None and not self.closed:
            self._conn.stream_end()  # type: ignore[attr-defined]

    def bind(self, conn: object) -> None:
        """The connection sent the head: flush what was written meanwhile."""
        self._conn = conn
        early, self._early = self._early, []
        for data in early:
            conn.stream_write(data)  # type: ignore[attr-defined]
        if self._ended:
            conn.stream_end()  # type: ignore[attr-defined]

    @property
    def ended(self) -> bool:
        return self._ended

    def __repr__(self) -> str:
        return f"<StreamingResponse {self.status} ended={self._ended} closed={self.closed}>"
