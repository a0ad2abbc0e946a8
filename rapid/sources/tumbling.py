"""A Kinesis shard's tumbling window (TumblingWindowInSeconds): which records belong to the
open window, the fields Lambda adds to the event, and the state the function hands back.
Pure: times are passed in.

Windows are fixed, back to back, aligned to the epoch (``[k*W, (k+1)*W)``), and a record
belongs to the window of its approximate arrival time. A batch never spans two windows.
Each invocation gets ``window`` (start and end, ISO 8601), ``state`` (what the function
returned last in this window, ``{}`` at first), ``shardId``, ``eventSourceARN``,
``isFinalInvokeForWindow`` and ``isWindowTerminatedEarly`` (always false here: rapid does
not cap the state's size); the function answers ``{"state": {...}}`` (with
``batchItemFailures`` if it reports them). Once the window has ended (its end has passed, or
a record of a later window is read) a final invocation, with no records and
``isFinalInvokeForWindow: true``, hands the function the window's last state; the next
window starts with ``{}``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from rapid.core.report import iso_now
from rapid.streams.kinesis import Record


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

    def fields(self, shard_id: str, source_arn: str, final: bool) -> dict[str, Any]:
        start = self.start or 0.0
        return {"window": {"start": iso_now(start), "end": iso_now(start + self.seconds)}, "state": self.state,
                "shardId": shard_id, "eventSourceARN": source_arn, "isFinalInvokeForWindow": final,
                "isWindowTerminatedEarly": False}

    def absorb(self, body: bytes | None) -> None:
        """Keep the ``state`` of a successful answer (an answer without one keeps the last)."""
        try:
            answer = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            return
        if isinstance(answer, dict) and isinstance(answer.get("state"), dict):
            self.state = answer["state"]

    def close(self) -> None:
        self.start, self.state = None, {}
