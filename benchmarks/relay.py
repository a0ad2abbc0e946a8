#!/usr/bin/env python3
"""The relay floor: the smallest host a Lambda runtime can run under, for the benchmark.

    python benchmarks/relay.py PORT BOOTSTRAP [RUNTIMES]

One invoke port (PORT), one Runtime API port (a free one), one runtime (BOOTSTRAP, spawned
at start with ``AWS_LAMBDA_RUNTIME_API`` pointing at it; RUNTIMES of them for the
concurrent scenario, all on the same Runtime API port). An invoke's body is handed to
the runtime's parked ``GET /next``; the runtime's ``POST .../response`` body goes back to
the invoker. Nothing else: no logs, no timers, no real request ids (a counter), no
deadline arithmetic, no memory reads, no isolation, no freeze, no checks of who calls.

It answers "what do two HTTP exchanges cost in Python on uvloop on this machine?": the
same load client against rapid and against the relay gives what rapid's features cost
(``rapid / relay``). Both sides speak only what the echo bootstrap and the load client
send: Content-Length bodies, keep-alive, one invocation per runtime at a time (an invoke
that finds no runtime at ``/next`` queues until one comes back).

On SIGTERM or SIGINT it kills the runtime and exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import deque

_INVOKE_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_NEXT_OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: %d\r\n"
            b"Lambda-Runtime-Deadline-Ms: 9999999999999\r\n"
            b"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:relay\r\n"
            b"Content-Length: %d\r\n\r\n")
_ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}"


class Relay:
    """The runtimes' state: their parked ``/next`` calls and the invokers waiting their turn."""

    __slots__ = ("counter", "parked", "queued", "waiting")

    def __init__(self) -> None:
        self.parked: list[asyncio.Transport] = []  # the runtimes' connections holding /next
        self.queued: deque[tuple[asyncio.Transport, bytes]] = deque()  # invokes nobody took yet
        self.waiting: dict[int, asyncio.Transport] = {}  # request id -> its invoker
        self.counter = 0

    def invoke(self, invoker: asyncio.Transport, body: bytes) -> None:
        if not self.parked:
            self.queued.append((invoker, body))
            return
        self._hand(self.parked.pop(), invoker, body)

    def next(self, runtime: asyncio.Transport) -> None:
        if self.queued:
            invoker, body = self.queued.popleft()
            self._hand(runtime, invoker, body)
        else:
            self.parked.append(runtime)

    def _hand(self, runtime: asyncio.Transport, invoker: asyncio.Transport, body: bytes) -> None:
        self.counter += 1
        self.waiting[self.counter] = invoker
        runtime.write(_NEXT_OK % (self.counter, len(body)) + body)

    def response(self, runtime: asyncio.Transport, line: bytes, body: bytes) -> None:
        runtime.write(_ACCEPTED)
        # POST /2018-06-01/runtime/invocation/<id>/response HTTP/1.1
        invoker = self.waiting.pop(int(line.split(b"/", 5)[4]), None)
        if invoker is not None:
            if len(body) < 16384:
                invoker.write(_INVOKE_OK % len(body) + body)
            else:
                invoker.writelines((_INVOKE_OK % len(body), body))


class Conn(asyncio.Protocol):
    """Reads requests with Content-Length bodies; hands each complete one to ``on_request``."""

    __slots__ = ("head", "need", "parts", "have", "line", "transport", "relay", "runtime_side")

    def __init__(self, relay: Relay, runtime_side: bool) -> None:
        self.relay, self.runtime_side = relay, runtime_side
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.need = -1
        self.parts: list[bytes] = []
        self.have = 0
        self.line = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        while data:
            if self.need < 0:
                head = self.head
                head += data
                end = head.find(b"\r\n\r\n")
                if end < 0:
                    return
                data = bytes(head[end + 4 :])
                raw = bytes(head[:end])
                head.clear()
                self.line = raw[: raw.find(b"\r\n")] if b"\r\n" in raw else raw
                lower = raw.lower()
                at = lower.find(b"\r\ncontent-length:")
                if at < 0:
                    self.need = 0
                else:
                    stop = lower.find(b"\r\n", at + 17)
                    self.need = int(lower[at + 17 : stop if stop >= 0 else len(lower)])
                self.parts, self.have = [], 0
            take = min(self.need - self.have, len(data))
            if take:
                self.parts.append(data[:take] if take < len(data) else data)
                self.have += take
                data = data[take:]
            if self.have == self.need:
                body = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
                self.need, self.parts = -1, []
                self.on_request(body)

    def on_request(self, body: bytes) -> None:
        relay, transport = self.relay, self.transport
        assert transport is not None
        if not self.runtime_side:
            relay.invoke(transport, body)
        elif self.line.startswith(b"GET"):
            relay.next(transport)
        else:
            relay.response(transport, self.line, body)


async def main(port: int, bootstrap: str, runtimes: int = 1) -> None:
    loop = asyncio.get_running_loop()
    relay = Relay()
    api = await loop.create_server(lambda: Conn(relay, True), "127.0.0.1", 0)
    api_port = api.sockets[0].getsockname()[1]
    env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api_port}"}
    procs = [subprocess.Popen([bootstrap], env=env, stdin=subprocess.DEVNULL) for _ in range(runtimes)]
    invoke = await loop.create_server(lambda: Conn(relay, False), "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        invoke.close()
        api.close()
        for runtime in procs:
            runtime.kill()
            runtime.wait()


if __name__ == "__main__":
    try:
        from uvloop import new_event_loop
    except ImportError:
        from asyncio import new_event_loop
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1))
