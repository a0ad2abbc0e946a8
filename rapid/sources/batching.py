"""Gathering records into batches: BatchSize, MaximumBatchingWindowInSeconds and the 6 MB
invocation payload cap, as Lambda's pollers apply them. Pure: the clock is passed in.

A ``Batcher`` holds the records gathered so far for one invocation. It hands back a full
batch when the next record would not fit under the payload cap (the batch goes without it,
the record starts the next one), when it holds ``BatchSize`` records, or, once the window
that opened with its first record has passed, on ``due(now)``. With a window of 0 a batch
is due as soon as the poll that filled it is done. The size counted is the event's: the
bytes of ``{"Records":[...]}`` with every record's JSON and the commas between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

MAX_PAYLOAD = 6 * 1024 * 1024
ENVELOPE = len(b'{"Records":[]}')

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Policy:
    batch_size: int
    window: float  # MaximumBatchingWindowInSeconds
    max_payload: int = MAX_PAYLOAD


class BatchingError(ValueError):
    """Settings Lambda refuses (``InvalidParameterValueException``), in its words."""


def sqs_policy(batch_size: int | None, window: int | None, fifo: bool) -> Policy:
    size = 10 if batch_size is None else batch_size
    win = 0 if window is None else window
    if not 0 <= win <= 300:
        raise BatchingError("MaximumBatchingWindowInSeconds must be between 0 and 300.")
    if fifo:
        if not 1 <= size <= 10:
            raise BatchingError("Batch size for FIFO queues must be between 1 and 10.")
        if win:
            raise BatchingError("Batching window is not supported for FIFO queues.")
    elif not 1 <= size <= 10000:
        raise BatchingError("BatchSize must be between 1 and 10000.")
    elif size > 10 and win < 1:
        raise BatchingError("Maximum batch window in seconds must be greater than 0 if maximum batch size is "
                            "greater than 10")
    return Policy(size, float(win))


def kinesis_policy(batch_size: int | None, window: int | None) -> Policy:
    size = 100 if batch_size is None else batch_size
    win = 0 if window is None else window
    if not 1 <= size <= 10000:
        raise BatchingError("BatchSize must be between 1 and 10000.")
    if not 0 <= win <= 300:
        raise BatchingError("MaximumBatchingWindowInSeconds must be between 0 and 300.")
    return Policy(size, float(win))


@dataclass(slots=True)
class Batch(Generic[T]):
    items: list[T] = field(default_factory=list)
    payload: int = ENVELOPE  # bytes of the event these items make
    opened: float | None = None


class Batcher(Generic[T]):
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.batch: Batch[T] = Batch()

    def __repr__(self) -> str:
        return f"<Batcher {len(self.batch.items)}/{self.policy.batch_size} {self.batch.payload}B>"

    def add(self, item: T, size: int, now: float) -> list[Batch[T]]:
        """Take one record (``size``: its JSON's bytes); the batches that are now full."""
        out: list[Batch[T]] = []
        b = self.batch
        extra = size + (1 if b.items else 0)
        if b.items and b.payload + extra > self.policy.max_payload:
            out.append(self._take())
            b, extra = self.batch, size
        if b.opened is None:
            b.opened = now
        b.items.append(item)
        b.payload += extra
        if len(b.items) >= self.policy.batch_size or b.payload >= self.policy.max_payload:
            out.append(self._take())
        return out

    def due(self, now: float) -> Batch[T] | None:
        """The batch, if its window has passed (at once with a window of 0)."""
        b = self.batch
        if b.items and b.opened is not None and now >= b.opened + self.policy.window:
            return self._take()
        return None

    def deadline(self) -> float | None:
        """When the open batch is due (None: nothing gathered)."""
        b = self.batch
        return None if not b.items or b.opened is None else b.opened + self.policy.window

    def fits_alone(self, size: int) -> bool:
        return ENVELOPE + size <= self.policy.max_payload

    def _take(self) -> Batch[T]:
        b, self.batch = self.batch, Batch()
        return b


def event_size(records: list[Any]) -> int:
    """The bytes of ``{"Records": records}`` as ``json.dumps`` compactly writes it."""
    import json

    return len(json.dumps({"Records": records}, separators=(",", ":")).encode())
