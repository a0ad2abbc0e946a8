"""Requests and responses: plain objects, and the bytes of a response."""

from __future__ import annotations

from http import HTTPStatus

import msgspec

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_encode_json = msgspec.json.Encoder().encode


class Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "target", "too_large", "trailers")

    def __init__(self, method: str, target: str) -> None:
        self.method = method
        self.target = target  # path and query, undecoded
        self.headers: dict[str, str] = {}  # names lowercased; a repeated header keeps the last
        self.trailers: dict[str, str] = {}
        self.body: bytes | bytearray = b""
        self.too_large = False  # the body passed the protocol's limit and was dropped
        self.keep_alive = True

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} {len(self.body)}B>"


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: int, body: bytes | bytearray | memoryview = b"", headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []

    @classmethod
    def json(cls, status: int, obj: object, headers: list[tuple[str, str]] | None = None) -> Response:
        h = [("Content-Type", "application/json")]
        if headers:
            h.extend(headers)
        return cls(status, _encode_json(obj), h)

    def head(self, keep_alive: bool) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Unknown')}\r\n"]
        for name, value in self.headers:
            lines.append(f"{name}: {value}\r\n")
        if self.status not in (204, 304):
            lines.append(f"Content-Length: {len(self.body)}\r\n")
        if not keep_alive:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)}B>"
