#!/usr/bin/env python3
"""The floor: an HTTP/1.1 echo server with no host in between.

    python benchmarks/floor_server.py PORT

It answers every POST with 200 and the request's body, over keep-alive connections, on
one asyncio protocol (uvloop when installed) with a hand-written parser for the requests
the load client sends (Content-Length bodies). The same load client against it gives the
floor: what the client, the loopback and a minimal Python server cost without a Lambda
host and its runtime, so every host figure can be read as "what the host adds".
"""

from __future__ import annotations

import asyncio
import signal
import sys

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


class Echo(asyncio.Protocol):
    """Echoes each request's body; a large body is passed on as the chunks it arrived in
    (``writelines``), never joined or copied in Python."""

    __slots__ = ("have", "head", "need", "parts", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.need = -1  # body length while reading a body, -1 while reading a head
        self.parts: list[bytes | memoryview] = []
        self.have = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.need < 0:
                head = self.head
                head += view
                end = head.find(b"\r\n\r\n")
                if end < 0:
                    return
                view = memoryview(bytes(head[end + 4 :]))
                lower = bytes(head[:end]).lower()
                head.clear()
                at = lower.find(b"\r\ncontent-length:")
                if at < 0:
                    self.need = 0
                else:
                    stop = lower.find(b"\r\n", at + 17)
                    self.need = int(lower[at + 17 : stop if stop >= 0 else len(lower)])
                self.parts, self.have = [], 0
            take = min(self.need - self.have, len(view))
            if take:
                self.parts.append(view[:take])
                self.have += take
                view = view[take:]
            if self.have == self.need:
                assert self.transport is not None
                self.transport.writelines([_HEAD % self.need, *self.parts])
                self.need, self.parts = -1, []


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    try:
        from uvloop import new_event_loop
    except ImportError:
        from asyncio import new_event_loop
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main(int(sys.argv[1])))
