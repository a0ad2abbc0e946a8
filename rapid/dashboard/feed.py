"""What the dashboard shows of the recent past, kept in bounded memory.

Theory of operation
-------------------
The host tells the feed three things, each a constant-time append on the invoke path:
every finished invocation (``invocation``: what its REPORT line says), every log line with
the request it belongs to (``line``), and every throttle (``throttle``). The feed keeps the
last ``max_invocations`` invocations and ``max_lines`` lines in rings, and per-minute
counts of invocations, errors and throttles per function for the last hour. Nothing in it
grows with time.

Live views subscribe (``subscribe``): a subscriber is a callable given a batch, a dict
of what came since the last one: ``invocations`` and ``logs`` as the very tuples the rings
hold (fields in ``INVOCATION_FIELDS`` and ``LINE_FIELDS`` order: no dict is built per
event), ``throttles``, and ``dropped``. The feed never calls a subscriber from the invoke
path; an append while anybody listens only adds the tuple to the batch, and a timer hands
the batch over every ``interval`` seconds. A subscriber that cannot keep up is the subscriber's problem: the SSE edge drops
a client whose socket buffer is full (``rapid.api.dashboard``), so a slow browser can never
slow an invoke.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

Batch = dict[str, Any]
Subscriber = Callable[[Batch], None]

INVOCATION_FIELDS = ("seq", "time", "function", "version", "requestId", "durationMs", "billedDurationMs",
                     "initDurationMs", "maxMemoryUsedMB", "status", "errorType")
LINE_FIELDS = ("seq", "time", "function", "requestId", "text")

_MINUTES = 60  # per-minute counters kept
_MAX_BATCH = 5000  # live events held between two flushes


class Feed:
    def __init__(self, max_invocations: int = 1000, max_lines: int = 5000, interval: float = 0.25) -> None:
        self.invocations: deque[tuple[Any, ...]] = deque(maxlen=max_invocations)
        self.lines: deque[tuple[Any, ...]] = deque(maxlen=max_lines)
        # function -> minute (epoch // 60) -> [invocations, errors, throttles]
        self.per_minute: dict[str, dict[int, list[int]]] = {}
        self.interval = interval
        self._subscribers: set[Subscriber] = set()
        self._pending: Batch = _empty()
        self._held = 0  # items in the pending batch
        self._flush: asyncio.TimerHandle | None = None
        self._seq = 0

    # -- what the host reports ------------------------------------------------------------

    def invocation(
        self, function: str, version: str, request_id: str, duration_ms: float, billed_ms: int,
        init_ms: float | None, peak_mb: int, status: str, error_type: str | None, now: float | None = None,
    ) -> None:
        """A finished invocation (``now``: the epoch time of its REPORT, if the caller read it)."""
        if now is None:
            now = time.time()
        self._seq += 1
        record = (self._seq, now, function, version, request_id, duration_ms, billed_ms, init_ms, peak_mb,
                  status, error_type)
        self.invocations.append(record)
        bucket = self._bucket(function, now)
        bucket[0] += 1
        if status != "success":
            bucket[1] += 1
        if self._subscribers:
            self._publish("invocations", record)

    def line(self, function: str, request_id: str | None, text: str, now: float | None = None) -> None:
        """Called for every line the host writes: a tuple appended, nothing more."""
        self._seq += 1
        entry = (self._seq, time.time() if now is None else now, function, request_id, text)
        self.lines.append(entry)
        if self._subscribers:
            self._publish("logs", entry)

    def many_lines(self, function: str, request_id: str | None, texts: tuple[str, ...], now: float) -> None:
        """``line`` for several lines written at ``now`` (an invocation's END and REPORT)."""
        for text in texts:
            self._seq += 1
            entry = (self._seq, now, function, request_id, text)
            self.lines.append(entry)
            if self._subscribers:
                self._publish("logs", entry)

    def throttle(self, function: str, count: int = 1, version: str = "") -> None:
        bucket = self._bucket(function)
        bucket[2] += count
        if self._subscribers:
            self._publish("throttles", (function, count, time.time(), version))

    def _bucket(self, function: str, now: float | None = None) -> list[int]:
        minute = int((time.time() if now is None else now) // 60)
        minutes = self.per_minute.setdefault(function, {})
        bucket = minutes.get(minute)
        if bucket is None:
            bucket = minutes[minute] = [0, 0, 0]
            for old in [m for m in minutes if m <= minute - _MINUTES]:
                del minutes[old]
        return bucket

    # -- what views read ------------------------------------------------------------------

    def recent(self, function: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest invocations first."""
        out = []
        for record in reversed(self.invocations):
            if function is None or record[2] == function:
                out.append(_invocation(record))
                if len(out) >= limit:
                    break
        return out

    def log_lines(
        self, request_id: str | None = None, function: str | None = None, contains: str | None = None,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        """Matching lines, oldest first (at most ``limit``, the newest ones)."""
        out = []
        for entry in reversed(self.lines):
            if request_id is not None and entry[3] != request_id:
                continue
            if function is not None and entry[2] != function:
                continue
            if contains and contains not in entry[4]:
                continue
            out.append(_line(entry))
            if len(out) >= limit:
                break
        out.reverse()
        return out

    def minutes(self, function: str, now: float | None = None) -> list[list[int]]:
        """[minute, invocations, errors, throttles] for the last hour, oldest first."""
        current = int((time.time() if now is None else now) // 60)
        counts = self.per_minute.get(function, {})
        return [[m, *counts.get(m, (0, 0, 0))] for m in range(current - _MINUTES + 1, current + 1)]

    # -- live -----------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.add(subscriber)
        return lambda: self._subscribers.discard(subscriber)

    def _publish(self, kind: str, item: tuple[Any, ...]) -> None:
        if self._held >= _MAX_BATCH:
            self._pending["dropped"] += 1  # the live view says so; the rings still hold everything
            return
        self._held += 1
        self._pending[kind].append(item)
        if self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._flush = loop.call_later(self.interval, self._deliver)

    def _deliver(self) -> None:
        self._flush = None
        batch, self._pending, self._held = self._pending, _empty(), 0
        for subscriber in list(self._subscribers):
            subscriber(batch)

    def __repr__(self) -> str:
        return (f"<Feed invocations={len(self.invocations)} lines={len(self.lines)} "
                f"subscribers={len(self._subscribers)}>")


def _empty() -> Batch:
    return {"invocations": [], "logs": [], "throttles": [], "dropped": 0}


def _invocation(r: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "seq": r[0], "time": r[1], "function": r[2], "version": r[3], "requestId": r[4],
        "durationMs": round(r[5], 2), "billedDurationMs": r[6], "initDurationMs": None if r[7] is None else round(r[7], 2),
        "maxMemoryUsedMB": r[8], "status": r[9], "errorType": r[10],
    }


def _line(e: tuple[Any, ...]) -> dict[str, Any]:
    return {"seq": e[0], "time": e[1], "function": e[2], "requestId": e[3], "text": e[4]}


def error_type_of(body: bytes, fallback: str) -> str:
    """The ``errorType`` the function's error body names (``ValueError``), which says more
    to a person than the REPORT line's normalised one (``Runtime.Unknown``). Error path only."""
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return fallback
    t = value.get("errorType") if isinstance(value, dict) else None
    return t if isinstance(t, str) and t else fallback
