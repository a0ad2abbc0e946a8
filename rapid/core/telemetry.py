"""Telemetry API (2022-07-01) and Logs API (2020-08-15) subscriptions, and their buffers.

Theory of operation
-------------------
An extension subscribes with ``PUT /2022-07-01/telemetry`` (or the older ``PUT
/2020-08-15/logs``): which types it wants (``platform``, ``function``, ``extension``), how
to batch (``maxItems``, ``maxBytes``, ``timeoutMs``, within AWS's bounds) and where to send
(an HTTP URI, or a TCP port, inside the execution environment: ``sandbox.localdomain`` is
loopback here). ``parse_subscription`` checks all that and answers AWS's 400s.

Each subscriber has a ``Buffer``: events go in as encoded JSON (each ``{time, type,
record}``), and ``batch()`` takes out what one delivery carries. The buffer is bounded: past
``QUEUE_FACTOR`` times ``maxBytes`` (or as many items) of undelivered events, a new event is
dropped and counted, and the next event that fits is preceded by one
``platform.logsDropped`` record saying how much was lost. So a slow or absent subscriber
costs a bounded amount of memory and never slows the invoke path. ``due`` says whether a
batch should go now (full) or may wait for the timeout. No I/O, no clock: the caller passes
the time in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

from rapid.core.errors import RuntimeAPIError

TELEMETRY_SCHEMAS = ("2022-07-01", "2022-12-13", "2025-01-29")
LOGS_SCHEMAS = ("2020-08-15", "2021-03-18")
TYPES = ("platform", "function", "extension")
# (low, high, default) as AWS bounds them.
MAX_ITEMS = (1000, 10000, 1000)
MAX_BYTES = (262144, 1048576, 262144)
TIMEOUT_MS = (25, 30000, 1000)
LOGS_MAX_ITEMS = (1000, 10000, 10000)
QUEUE_FACTOR = 4  # undelivered events kept per subscriber, in multiples of one batch
# Names that mean "this execution environment" in a destination.
LOCAL_HOSTS = ("sandbox.localdomain", "sandbox", "localhost", "127.0.0.1")
DROPPED_REASON = "Some logs were dropped because the downstream consumer is slower than the logs production rate"


def _invalid(message: str) -> RuntimeAPIError:
    return RuntimeAPIError(400, "ValidationError", message)


class _Destination(msgspec.Struct):
    protocol: str
    URI: str | None = None
    port: int | None = None


class _Buffering(msgspec.Struct):
    maxItems: int | None = None
    maxBytes: int | None = None
    timeoutMs: int | None = None


class _Body(msgspec.Struct):
    destination: _Destination
    types: list[str]
    schemaVersion: str | None = None
    buffering: _Buffering | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    api: str  # "telemetry" | "logs"
    schema: str
    types: frozenset[str]
    protocol: str  # HTTP | TCP
    host: str
    port: int
    path: str
    max_items: int
    max_bytes: int
    timeout_ms: int


def _bounded(name: str, value: int | None, bounds: tuple[int, int, int]) -> int:
    low, high, default = bounds
    if value is None:
        return default
    if not low <= value <= high:
        raise _invalid(f"buffering.{name} must be between {low} and {high}, got {value}")
    return value


def parse_subscription(body: bytes, api: str) -> Subscription:
    """A subscribe request's body, checked; 400 ``ValidationError`` as AWS words it."""
    try:
        parsed = msgspec.json.decode(body, type=_Body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _invalid(str(exc)) from None
    schemas = TELEMETRY_SCHEMAS if api == "telemetry" else LOGS_SCHEMAS
    schema = parsed.schemaVersion or (None if api == "telemetry" else "2020-08-15")
    if schema is None or schema not in schemas:
        raise _invalid(f"schemaVersion must be one of {', '.join(schemas)}")
    if not parsed.types:
        raise _invalid("types should not be empty")
    for t in parsed.types:
        if t not in TYPES:
            raise _invalid(f"types: unknown type {t!r}; expected platform, function or extension")
    buffering = parsed.buffering or _Buffering()
    max_items = _bounded("maxItems", buffering.maxItems, MAX_ITEMS if api == "telemetry" else LOGS_MAX_ITEMS)
    max_bytes = _bounded("maxBytes", buffering.maxBytes, MAX_BYTES)
    timeout_ms = _bounded("timeoutMs", buffering.timeoutMs, TIMEOUT_MS)
    dest = parsed.destination
    protocol = dest.protocol.upper()
    if protocol == "HTTP":
        if not dest.URI:
            raise _invalid("destination.URI is required for protocol HTTP")
        url = urlsplit(dest.URI)
        if url.scheme != "http":
            raise _invalid("destination.URI must be an http:// address")
        if url.hostname not in LOCAL_HOSTS:
            raise _invalid("destination.URI must be inside the execution environment (sandbox.localdomain)")
        try:
            port = url.port
        except ValueError:
            port = None
        if port is None:
            raise _invalid("URI port is not provided")
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
    elif protocol == "TCP" and api == "telemetry":
        if dest.port is None or not 0 < dest.port < 65536:
            raise _invalid("destination.port is required for protocol TCP")
        port, path = dest.port, ""
    else:
        raise _invalid(f"destination.protocol {dest.protocol!r} is not supported")
    return Subscription(api, schema, frozenset(parsed.types), protocol, "127.0.0.1", port, path, max_items,
                        max_bytes, timeout_ms)


class Buffer:
    """One subscriber's undelivered events, oldest first, bounded."""

    __slots__ = ("bytes", "dropped_bytes", "dropped_records", "events", "first_at", "max_bytes", "max_items")

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.events: deque[bytes] = deque()
        self.bytes = 0
        self.first_at: float | None = None  # when the oldest undelivered event arrived
        self.dropped_records = 0
        self.dropped_bytes = 0

    def add(self, event: bytes, now: float, dropped_notice: bytes | None = None) -> bool:
        """Queue ``event``; False if it was dropped (the buffer is full). ``dropped_notice``
        is what to put first when earlier events were dropped: built by the caller from
        ``dropped()`` (it knows the clock and the envelope)."""
        size = len(event)
        if len(self.events) >= self.max_items * QUEUE_FACTOR or self.bytes + size > self.max_bytes * QUEUE_FACTOR:
            self.dropped_records += 1
            self.dropped_bytes += size
            return False
        if dropped_notice is not None:
            self._push(dropped_notice, now)
            self.dropped_records = self.dropped_bytes = 0
        self._push(event, now)
        return True

    def _push(self, event: bytes, now: float) -> None:
        if not self.events:
            self.first_at = now
        self.events.append(event)
        self.bytes += len(event)

    def note_dropped(self, notice: bytes, now: float) -> None:
        """Room again after drops (a batch was taken): queue the notice of what was lost."""
        if self.dropped_records and len(self.events) < self.max_items * QUEUE_FACTOR:
            self._push(notice, now)
            self.dropped_records = self.dropped_bytes = 0

    def dropped(self) -> tuple[int, int] | None:
        """(records, bytes) dropped since the last notice, or None."""
        return (self.dropped_records, self.dropped_bytes) if self.dropped_records else None

    def due(self, now: float, timeout_ms: int) -> bool:
        if not self.events:
            return False
        if len(self.events) >= self.max_items or self.bytes >= self.max_bytes:
            return True
        return self.first_at is not None and (now - self.first_at) * 1000.0 >= timeout_ms

    def batch(self, now: float) -> list[bytes]:
        """Take the oldest events for one delivery: at most ``max_items`` and about
        ``max_bytes`` (always at least one)."""
        out: list[bytes] = []
        size = 0
        while self.events and len(out) < self.max_items:
            nxt = len(self.events[0])
            if out and size + nxt > self.max_bytes:
                break
            event = self.events.popleft()
            out.append(event)
            size += nxt
            self.bytes -= nxt
        self.first_at = now if self.events else None
        return out

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        return f"<Buffer {len(self.events)} events {self.bytes}B dropped={self.dropped_records}>"


def http_body(batch: list[bytes]) -> bytes:
    """An HTTP delivery: one JSON array."""
    return b"[" + b",".join(batch) + b"]"


def tcp_body(batch: list[bytes]) -> bytes:
    """A TCP delivery: newline-delimited JSON."""
    return b"".join(e + b"\n" for e in batch)


def subscription_line(api: str, name: str, types: frozenset[str]) -> str:
    """The platform's text line for a subscription, as Lambda writes it."""
    word = "TELEMETRY" if api == "telemetry" else "LOGS"
    listed = ", ".join(t.capitalize() for t in TYPES if t in types)
    return f"{word}\tName: {name}\tState: Subscribed\tTypes: [{listed}]"
