"""Telemetry delivery for one instance: events in, batches out to each subscriber.

Theory of operation
-------------------
The instance calls ``emit(category, kind, record)`` at each point of its life (init start
and end, start, runtime done, report, extension registered, subscriptions) and for every
line its runtime and extensions write; the records are those of ``rapid.core.report``, the
same the JSON log format writes. ``emit`` encodes the event once and appends it to the
``Buffer`` of each subscriber that wants it: that is all the invoke path pays, and nothing
at all when nobody subscribed and init is over.

Events of the init phase are also kept (bounded) until init ends, so an extension that
subscribes during init still receives ``platform.initStart`` and what came before its
subscription, as on Lambda.

Each subscriber has one sender task: it waits until its buffer is due (full, or its oldest
event is ``timeoutMs`` old, or a flush was asked for at shutdown), takes a batch and POSTs
it (a JSON array, over one keep-alive connection; NDJSON for TCP), retrying with a
back-off while the listener is missing. Meanwhile events keep arriving into the bounded
buffer; past its bound they are dropped and counted (``platform.logsDropped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import TYPE_CHECKING

from rapid.core import report
from rapid.core.errors import RuntimeAPIError
from rapid.core.telemetry import DROPPED_REASON, Buffer, Subscription, http_body, subscription_line, tcp_body
from rapid.wake import wait_set

if TYPE_CHECKING:
    from rapid.core.invocation import Invocation, Outcome

_BACKLOG_ITEMS = 1000
_BACKLOG_BYTES = 1 << 20
# What the older Logs API sends of the platform's events (it has no init or restore records).
_LOGS_PLATFORM = frozenset({
    "platform.start", "platform.end", "platform.report", "platform.extension", "platform.logsSubscription",
    "platform.logsDropped", "platform.fault",
})
_TELEMETRY_ONLY_NOT = frozenset({"platform.end", "platform.logsSubscription", "platform.fault"})


class Subscriber:
    def __init__(self, name: str, sub: Subscription) -> None:
        self.name = name
        self.sub = sub
        self.buffer = Buffer(sub.max_items, sub.max_bytes)
        self.wake = asyncio.Event()
        self.flushing = False
        self.task: asyncio.Task[None] | None = None
        self.delivered = 0  # batches

    def wants(self, category: str, kind: str) -> bool:
        if category not in self.sub.types:
            return False
        if category != "platform":
            return True
        if self.sub.api == "logs":
            return kind in _LOGS_PLATFORM or (kind == "platform.runtimeDone" and self.sub.schema == "2021-03-18")
        return kind not in _TELEMETRY_ONLY_NOT

    def _notice(self) -> bytes | None:
        dropped = self.buffer.dropped()
        if dropped is None:
            return None
        return report.encode("platform.logsDropped", report.logs_dropped_record(*dropped, DROPPED_REASON))

    def offer(self, data: bytes, now: float) -> None:
        self.buffer.add(data, now, self._notice())
        if len(self.buffer) == 1 or self.buffer.due(now, self.sub.timeout_ms):
            self.wake.set()

    def __repr__(self) -> str:
        return f"<Subscriber {self.name} {self.sub.api} {self.sub.protocol}:{self.sub.port} {self.buffer!r}>"


class Telemetry:
    def __init__(self) -> None:
        self.subscribers: dict[str, Subscriber] = {}  # by extension name
        self._recording = True  # init: keep events for late subscribers
        # Whether anything would be kept or sent (recording, or a subscriber): a plain field
        # the invoke path reads before it builds any record.
        self.listening = True
        self._backlog: deque[tuple[str, str, bytes]] = deque()
        self._backlog_bytes = 0
        self._loop = asyncio.get_running_loop()

    # -- events in ------------------------------------------------------------------------

    def emit(self, category: str, kind: str, record: object) -> None:
        if not self._recording and not self.subscribers:
            return
        self.emit_encoded(category, kind, report.encode(kind, record))

    def emit_encoded(self, category: str, kind: str, data: bytes) -> None:
        if self._recording and len(self._backlog) < _BACKLOG_ITEMS and self._backlog_bytes < _BACKLOG_BYTES:
            self._backlog.append((category, kind, data))
            self._backlog_bytes += len(data)
        if self.subscribers:
            now = self._loop.time()
            for sub in self.subscribers.values():
                if sub.wants(category, kind):
                    sub.offer(data, now)

    def line(self, category: str, text: str, json_object: bool) -> None:
        """A line of the runtime's (``function``) or an extension's output."""
        if not self._recording and not self.subscribers:
            return
        record: object = text
        if json_object:
            with contextlib.suppress(ValueError):
                import msgspec

                record = msgspec.json.decode(text)
        self.emit(category, category, record)

    # -- the platform's events, from rapid.core.report's records ------------------------

    def init_start(self, init_type: str, phase: str, name: str, version: str, instance: str, memory: int) -> None:
        if self.listening:
            self.emit("platform", "platform.initStart",
                      report.init_start_record(init_type, phase, name, version, instance, memory))

    def init_done(self, init_type: str, phase: str, status: str, error_type: str | None, ms: float) -> None:
        """platform.initRuntimeDone and platform.initReport (sent for every init)."""
        if self.listening:
            self.emit("platform", "platform.initRuntimeDone",
                      report.init_runtime_done_record(init_type, phase, status, error_type))
            self.emit("platform", "platform.initReport",
                      report.init_report_record(ms, phase, status, error_type, init_type))

    def start(self, inv: Invocation, version: str) -> None:
        if self.listening:
            self.emit("platform", "platform.start",
                      report.start_record(inv.request_id, version, inv.function_arn, inv.trace_id))

    def runtime_done(self, inv: Invocation, outcome: Outcome) -> None:
        if self.listening:
            ms = (time.monotonic() - inv.started) * 1000.0 if inv.started else 0.0
            failed = outcome.status != "success"
            produced = outcome.produced if outcome.produced is not None else len(outcome.body)
            self.emit("platform", "platform.runtimeDone", report.runtime_done_record(
                inv.request_id, outcome.status, outcome.error_type if failed else None, ms, produced))

    def report(self, r: report.Report) -> None:
        if self.listening:
            self.emit("platform", "platform.end", {"requestId": r.request_id})  # the Logs API's only
            self.emit("platform", "platform.report", report.report_record(r))

    def init_over(self) -> None:
        self._recording = False
        self.listening = bool(self.subscribers)
        self._backlog.clear()
        self._backlog_bytes = 0

    # -- subscribers ----------------------------------------------------------------------

    def subscribe(self, name: str, sub: Subscription) -> str:
        """Subscribe extension ``name``; the text line to log. Subscribing again replaces
        the subscription; using both APIs is refused, as on Lambda."""
        old = self.subscribers.get(name)
        if old is not None and old.sub.api != sub.api:
            raise RuntimeAPIError(
                400, "ValidationError", "An extension can subscribe to the Telemetry API or the Logs API, not both"
            )
        if old is not None:
            self._stop(old)
        subscriber = Subscriber(name, sub)
        self.subscribers[name] = subscriber
        self.listening = True
        now = self._loop.time()
        for category, kind, data in self._backlog:
            if subscriber.wants(category, kind):
                subscriber.offer(data, now)
        subscriber.task = self._loop.create_task(self._send(subscriber))
        types = sorted(sub.types, key=("platform", "function", "extension").index)
        kind = "platform.telemetrySubscription" if sub.api == "telemetry" else "platform.logsSubscription"
        self.emit("platform", kind, report.subscription_record(name, types))
        return subscription_line(sub.api, name, sub.types)

    def flush(self) -> None:
        """Deliver everything now (the shutdown phase)."""
        for sub in self.subscribers.values():
            sub.flushing = True
            sub.wake.set()

    def close(self) -> None:
        for sub in list(self.subscribers.values()):
            self._stop(sub)
        self.subscribers.clear()
        self._backlog.clear()
        self.listening = self._recording

    def _stop(self, sub: Subscriber) -> None:
        if sub.task is not None:
            sub.task.cancel()
            sub.task = None

    # -- delivery -------------------------------------------------------------------------

    async def _send(self, sub: Subscriber) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                now = self._loop.time()
                if not (sub.buffer.due(now, sub.sub.timeout_ms) or (sub.flushing and len(sub.buffer))):
                    sub.wake.clear()
                    wait = None
                    if sub.buffer.first_at is not None:
                        wait = max(0.0, sub.buffer.first_at + sub.sub.timeout_ms / 1000.0 - now)
                    await wait_set(sub.wake, wait)
                    continue
                batch = sub.buffer.batch(now)
                notice = sub._notice()
                if notice is not None:  # room again: say what was lost, even if nothing follows
                    sub.buffer.note_dropped(notice, now)
                delay = 0.05
                while True:
                    try:
                        conn = await self._deliver(sub.sub, batch, conn)
                        sub.delivered += 1
                        break
                    except (OSError, asyncio.IncompleteReadError, ValueError):
                        if conn is not None:
                            conn[1].close()
                            conn = None
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 1.0)
        finally:
            if conn is not None:
                conn[1].close()

    async def _deliver(
        self, sub: Subscription, batch: list[bytes], conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        if conn is None or conn[1].is_closing():
            conn = await asyncio.open_connection(sub.host, sub.port)
        reader, writer = conn
        if sub.protocol == "TCP":
            writer.write(tcp_body(batch))
            await writer.drain()
            return conn
        body = http_body(batch)
        head = (
            f"POST {sub.path} HTTP/1.1\r\nHost: sandbox.localdomain:{sub.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        writer.write(head + body)
        await writer.drain()
        status_line = await reader.readuntil(b"\r\n")
        parts = status_line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError("not an HTTP answer")
        length, close, chunked = 0, False, False
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value == "close":
                close = True
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
        if chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2) if size else None
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
        elif length:
            await reader.readexactly(length)
        if close or status_line.startswith(b"HTTP/1.0"):
            writer.close()
            return None
        return conn

    def __repr__(self) -> str:
        return f"<Telemetry {list(self.subscribers.values())!r} recording={self._recording}>"
