"""The public listener: timeouts for slow and idle clients, and a cap on connections.

The Invoke API faces whoever can reach the port; its connections must not be able to hold
the daemon's descriptors or buffers hostage. ``Listener`` keeps every connection it
accepted and, twice a second, ticks a coarse clock and sweeps them:

- a request being read must keep arriving: no byte for ``header_timeout`` seconds, or
  headers still incomplete that long after the first byte, and it is answered 408 and
  closed;
- a keep-alive connection with nothing to do for ``idle_timeout`` seconds is closed;
- a connection that is owed an answer (an invocation running) is never timed out here:
  the function's own timeout bounds it.

At most ``max_connections`` are kept. When a new client would pass that, the connections
that have waited longest without being owed anything (idle or dawdling) are dropped to make
room, a tenth at a time; if every one is owed an answer the newcomer is refused. So a flood
of idle or half-sent clients costs only themselves, and the descriptors the runtimes need
(kept out of ``max_connections`` by the daemon) are never taken.

The instances' Runtime API servers do not use this: a runtime's held ``/next`` must stay
open as long as it likes (``rapid.http.protocol.serve``).
"""

from __future__ import annotations

import asyncio
import contextlib

from rapid.http.protocol import App, Clock, HttpConnection, Limits

_SWEEP_SECONDS = 0.5


class Listener:
    def __init__(self, app: App, max_body: int, limits: Limits, max_connections: int) -> None:
        self.app = app
        self.max_body = max_body
        self.limits = limits
        self.max_connections = max_connections
        self.clock = Clock()
        self.connections: set[HttpConnection] = set()
        self.dropped = 0  # connections closed to make room
        self.server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.clock.now = loop.time()
        self.server = await loop.create_server(self._connection, host, port, backlog=1024)
        self._sweeper = loop.create_task(self._sweep())

    @property
    def sockets(self) -> tuple[object, ...]:
        assert self.server is not None
        return tuple(self.server.sockets)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()

    # -- connections ----------------------------------------------------------------------

    def _connection(self) -> HttpConnection:
        if len(self.connections) >= self.max_connections:
            self._make_room()
        conn = HttpConnection(self.app, self.max_body, self.limits, self.clock, self._forget)
        if len(self.connections) >= self.max_connections:
            asyncio.get_running_loop().call_soon(conn.abort)  # every one is owed an answer
        else:
            self.connections.add(conn)
        return conn

    def _forget(self, conn: HttpConnection) -> None:
        self.connections.discard(conn)

    def _make_room(self) -> None:
        spare = sorted((c for c in self.connections if not c.busy), key=lambda c: c.last_io)
        for conn in spare[: max(1, len(self.connections) // 10)]:
            self.connections.discard(conn)
            conn.abort()
            self.dropped += 1

    # -- timeouts -------------------------------------------------------------------------

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_SWEEP_SECONDS)
            now = self.clock.now = loop.time()
            for conn in list(self.connections):
                if conn.busy or conn.closed:
                    continue
                if expired(conn, now, self.limits):
                    conn.time_out()

    def __repr__(self) -> str:
        return (f"<Listener connections={len(self.connections)}/{self.max_connections} dropped={self.dropped} "
                f"{self.limits!r}>")


def expired(conn: HttpConnection, now: float, limits: Limits) -> bool:
    """Whether a connection owed nothing has dawdled past its limits."""
    if conn.reading:
        t = limits.header_timeout
        if t is None:
            return False
        return now - conn.last_io > t or (not conn.headers_done and now - conn.began_at > t)
    t = limits.idle_timeout
    return t is not None and now - conn.last_io > t


async def listen(app: App, host: str, port: int, max_body: int, limits: Limits, max_connections: int) -> Listener:
    listener = Listener(app, max_body, limits, max_connections)
    try:
        await listener.start(host, port)
    except BaseException:
        with contextlib.suppress(Exception):
            listener.close()
        raise
    return listener
