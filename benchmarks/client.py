"""The load client: raw HTTP/1.1 over keep-alive loopback sockets, cheap enough that the
host, not the client, is what the figures measure.

- ``Connection``: one blocking socket, one request at a time (sequential scenarios, cold
  starts, set-up).
- ``ConcurrentClient``: N keep-alive connections on one event loop (uvloop when
  installed), closed loop: each connection sends its next request from the callback that
  completes the previous one, no task or future per request.

Requests are prepared once as bytes (``request``); responses are parsed incrementally by
``ResponseParser`` (Content-Length, chunked with trailers, or until EOF).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"


def request(path: str, body: bytes = b"", headers: dict[str, str] | None = None, method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    if body:
        lines.append("Content-Type: application/json")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class ProtocolError(Exception):
    pass


class ResponseParser:
    """Feed bytes, get complete responses as (status, body, raw head) tuples."""

    __slots__ = ("buf", "chunks", "head", "need", "state", "status")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.state = 0  # 0 head, 1 sized body, 2 chunked body, 3 body until EOF
        self.need = 0
        self.status = 0
        self.head = b""
        self.chunks: list[bytes] = []

    def feed(self, data: bytes) -> list[tuple[int, bytes, bytes]]:
        buf = self.buf
        buf += data
        out: list[tuple[int, bytes, bytes]] = []
        while True:
            state = self.state
            if state == 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return out
                head = bytes(buf[:end])
                del buf[: end + 4]
                if not head.startswith(b"HTTP/1."):
                    raise ProtocolError(f"not an HTTP response: {head[:80]!r}")
                status = int(head[9:12])
                if 100 <= status < 200:
                    continue  # an interim answer (100 Continue)
                self.status, self.head = status, head
                if status in (204, 304):
                    out.append((status, b"", head))
                    continue
                lower = head.lower()
                at = lower.find(b"\r\ncontent-length:")
                if at >= 0:
                    stop = lower.find(b"\r\n", at + 17)
                    self.need = int(lower[at + 17 : stop if stop >= 0 else len(lower)])
                    self.state = 1
                elif b"chunked" in lower and b"transfer-encoding" in lower:
                    self.state = 2
                    self.chunks = []
                else:
                    self.state = 3
            elif state == 1:
                need = self.need
                if len(buf) < need:
                    return out
                body = bytes(buf[:need])
                del buf[:need]
                self.state = 0
                out.append((self.status, body, self.head))
            elif state == 2:
                line_end = buf.find(b"\r\n")
                if line_end < 0:
                    return out
                size = int(bytes(buf[:line_end]).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers (maybe none), then an empty line.
                    if buf[line_end + 2 : line_end + 4] == b"\r\n":
                        del buf[: line_end + 4]
                    else:
                        end = buf.find(b"\r\n\r\n", line_end)
                        if end < 0:
                            return out
                        del buf[: end + 4]
                    self.state = 0
                    out.append((self.status, b"".join(self.chunks), self.head))
                    self.chunks = []
                    continue
                if len(buf) < line_end + 2 + size + 2:
                    return out
                self.chunks.append(bytes(buf[line_end + 2 : line_end + 2 + size]))
                del buf[: line_end + 2 + size + 2]
            else:
                return out

    def feed_eof(self) -> list[tuple[int, bytes, bytes]]:
        if self.state == 3:
            self.state = 0
            body = bytes(self.buf)
            self.buf.clear()
            return [(self.status, body, self.head)]
        return []


def header(head: bytes, name: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode("latin-1")
    return None


class Connection:
    """One blocking keep-alive connection (opened again, once, if the server closed it
    between two requests)."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 60.0) -> None:
        self.address, self.timeout = (host, port), timeout
        self.reconnects = 0
        self._open()

    def _open(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.parser = ResponseParser()
        self.pending: list[tuple[int, bytes, bytes]] = []

    def roundtrip(self, req: bytes) -> tuple[int, bytes, bytes]:
        try:
            self.sock.sendall(req)
            return self.read()
        except ConnectionError:
            if self.parser.buf or self.parser.state:
                raise  # it closed in the middle of an answer: a real failure
            self.sock.close()
            self.reconnects += 1
            self._open()
            self.sock.sendall(req)
            return self.read()

    def read(self) -> tuple[int, bytes, bytes]:
        pending = self.pending
        while not pending:
            data = self.sock.recv(262144)
            if not data:
                pending.extend(self.parser.feed_eof())
                if not pending:
                    raise ConnectionError("the server closed the connection")
                break
            pending.extend(self.parser.feed(data))
        return pending.pop(0)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def call(port: int, req: bytes, timeout: float = 60.0) -> tuple[int, bytes, bytes]:
    """One request on a fresh connection."""
    with Connection(port, timeout=timeout) as conn:
        return conn.roundtrip(req)


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, in completion order
    wall: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    first_error: str = ""


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


class _Conn(asyncio.Protocol):
    def __init__(self, owner: ConcurrentClient) -> None:
        self.owner = owner
        self.parser = ResponseParser()
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, req: bytes) -> None:
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(req)

    def data_received(self, data: bytes) -> None:
        for status, body, _head in self.parser.feed(data):
            self.owner._completed(self, status, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for status, body, _head in self.parser.feed_eof():
            self.owner._completed(self, status, body)
        self.owner._lost(self, exc)


class ConcurrentClient:
    """``clients`` keep-alive connections driving a closed-loop load."""

    def __init__(self, port: int, clients: int) -> None:
        self.loop = new_loop()
        self.port = port
        self.conns: list[_Conn] = []
        self._fut: asyncio.Future[None] | None = None
        self._req = b""
        self._left = 0
        self._done = 0
        self._total = 0
        self._result = LoadResult()
        self._expect: tuple[int, ...] = (200,)
        self._keep = False
        self._bodies: list[bytes] = []
        for _ in range(clients):
            _t, proto = self.loop.run_until_complete(
                self.loop.create_connection(lambda: _Conn(self), "127.0.0.1", port)
            )
            self.conns.append(proto)

    def run(
        self, req: bytes, total: int, *, expect: tuple[int, ...] = (200,), timeout: float = 600.0,
        progress: Callable[[float], None] | None = None, keep_bodies: bool = False,
    ) -> LoadResult:
        """Send ``total`` requests, each connection sending its next as its last completes.
        A status outside ``expect`` is counted, and its first body kept as ``first_error``."""
        self._req, self._total, self._left, self._done = req, total, total, 0
        self._expect, self._keep, self._bodies = expect, keep_bodies, []
        result = self._result = LoadResult()
        result.latencies = []
        loop = self.loop
        self._fut = loop.create_future()
        ticker: asyncio.TimerHandle | None = None
        if progress is not None:
            def tick() -> None:
                nonlocal ticker
                progress(self._done / max(1, total))
                ticker = loop.call_later(0.25, tick)
            ticker = loop.call_later(0.25, tick)
        t0 = time.perf_counter()
        for conn in self.conns:
            if self._left <= 0:
                break
            self._left -= 1
            conn.send(req)
        try:
            loop.run_until_complete(asyncio.wait_for(self._fut, timeout))
        finally:
            if ticker is not None:
                ticker.cancel()
        result.wall = time.perf_counter() - t0
        return result

    @property
    def bodies(self) -> list[bytes]:
        return self._bodies

    def _completed(self, conn: _Conn, status: int, body: bytes) -> None:
        result = self._result
        result.latencies.append(time.perf_counter() - conn.sent_at)
        result.statuses[status] += 1
        if status not in self._expect and not result.first_error:
            result.first_error = f"HTTP {status}: {body[:300]!r}"
        if self._keep:
            self._bodies.append(body)
        self._done += 1
        if self._left > 0 and not conn.closed:
            self._left -= 1
            conn.send(self._req)
        elif self._done >= self._total and self._fut is not None and not self._fut.done():
            self._fut.set_result(None)

    def _lost(self, conn: _Conn, exc: Exception | None) -> None:
        fut = self._fut
        if fut is not None and not fut.done() and self._done < self._total:
            fut.set_exception(ConnectionError(f"connection lost after {self._done} responses: {exc}"))

    def close(self) -> None:
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.close()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fire(port: int, reqs: list[bytes], timeout: float = 120.0) -> list[tuple[int, bytes]]:
    """Send every request at once, each on its own connection; wait for every answer."""
    async def one(req: bytes) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(req)
            parser = ResponseParser()
            while True:
                data = await reader.read(65536)
                done = parser.feed(data) if data else parser.feed_eof()
                if done:
                    return done[0][0], done[0][1]
                if not data:
                    raise ConnectionError("closed before answering")
        finally:
            writer.close()

    async def all_of() -> list[tuple[int, bytes]]:
        return await asyncio.wait_for(asyncio.gather(*(one(r) for r in reqs)), timeout)

    loop = new_loop()
    try:
        return loop.run_until_complete(all_of())
    finally:
        loop.close()
