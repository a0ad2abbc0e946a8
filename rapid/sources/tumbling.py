"""A Kinesis shard's tumbling window (TumblingWindowInSeconds): which records belong to the
open window, the fields Lambda adds to the event, and the state the function hands back.
Pure: times are passed in.

Windows are fixed, back to back, aligned to the epoch (``[k*W, (k+1)*W)``), and a record
belongs to the window of its approximate arrival time. A batch never spans two windows.
Each invocation gets ``window`` (start and end, ISO 8601), ``state`` (what the function
returned last in this window, ``{}`` at first), ``shardId``, ``eventSourceARN``,
``isFinalInvokeForWindow`` and ``isWindowTerminatedEarly``; the function answers
``{"state": {...}}`` (with ``batchItemFailures`` if it reports them). ``read`` judges an
answer as Lambda does:

=======================================================  ===================================
the answer                                               what follows
=======================================================  ===================================
``{"state": {...}}``, the state within 1 MB              kept for the next invocation
no ``state`` object (not JSON, no key, not an object)    a failed invocation (AWS's rule)
a state over 1 MB (``MAX_STATE``, as JSON)               the window is terminated early
=======================================================  ===================================

Once the window has ended (its end has passed, or a record of a later window is read) a
final invocation, with no records and ``isFinalInvokeForWindow: true``, hands the function
the window's last state; the next window starts with ``{}``. A window terminated early
gets its final invocation at once, with ``isWindowTerminatedEarly: true`` too and the state
that outgrew the cap; later batches of the same window carry on with a fresh ``{}``.

``saved`` / ``restore`` are what the poller writes beside the shard's checkpoint, so an
open window and its state survive a restart.
"""

from __future__ import annotations

import json
import math
from typing import Any

from rapid.core.report import iso_now
from rapid.streams.kinesis import Record

MAX_STATE = 1024 * 1024  # bytes of JSON: Lambda's cap on a shard's window state


class Window:
    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.start: float | None = None  # the open window's start (epoch seconds)
        self.state: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<Window {self.seconds}s start={self.start} state={len(self.state)} keys>"

    def bucket(self, t: float) -> float:
        return math.floor(t / self.seconds) * self.seconds

    def ended_by(self, records: list[Record]) -> bool:
        """The open window is over: ``records`` start in a later one."""
        return self.start is not None and bool(records) and self.bucket(records[0].arrival) > self.start

    def take(self, records: list[Record]) -> list[Record]:
        """The leading records of the open window (opening one at the first record)."""
        if not records:
            return []
        if self.start is None:
            self.start = self.bucket(records[0].arrival)
        n = 0
        while n < len(records) and self.bucket(records[n].arrival) <= self.start:
            n += 1
        return records[:n]

    def due(self, now: float) -> bool:
        return self.start is not None and now >= self.start + self.seconds

    def fields(self, shard_id: str, source_arn: str, final: bool, early: bool = False) -> dict[str, Any]:
        start = self.start or 0.0
        return {"window": {"start": iso_now(start), "end": iso_now(start + self.seconds)}, "state": self.state,
                "shardId": shard_id, "eventSourceARN": source_arn, "isFinalInvokeForWindow": final,
                "isWindowTerminatedEarly": early}

    def read(self, body: bytes | None) -> str:
        """Judge a successful invocation's answer (the table above): ``"ok"`` (its state is
        kept), ``"missing"`` (no state object: the invocation failed) or ``"early"`` (the
        state is kept but outgrew the cap: the window must end now)."""
        try:
            answer = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            return "missing"
        if not isinstance(answer, dict) or not isinstance(answer.get("state"), dict):
            return "missing"
        self.state = answer["state"]
        if len(json.dumps(self.state, separators=(",", ":")).encode()) > MAX_STATE:
            return "early"
        return "ok"

    def absorb(self, body: bytes | None) -> None:
        """Keep the ``state`` of an answer, if it has one (``read`` without the verdict)."""
        self.read(body)

    def terminate_early(self) -> None:
        """After the early final invocation: the same window goes on with a fresh state."""
        self.state = {}

    def close(self) -> None:
        self.start, self.state = None, {}

    def saved(self) -> dict[str, Any] | None:
        """The open window, as the checkpoint keeps it (None when no window is open)."""
        if self.start is None:
            return None
        return {"start": self.start, "state": self.state}

    def restore(self, saved: dict[str, Any] | None) -> None:
        if saved:
            self.start = float(saved["start"])
            self.state = dict(saved.get("state") or {})
