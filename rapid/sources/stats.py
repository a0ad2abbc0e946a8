"""What one event source mapping has done, for ``/metrics`` and ``rapid queue``: counters and
the latest ages. The pollers keep them in the registry's store (``encode`` / ``decode``), so
they count across restarts."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec


@dataclass(slots=True)
class Stats:
    batches: int = 0  # invocations with a batch
    records: int = 0  # records in them
    errors: int = 0  # batches that failed, whole or in part
    failed_records: int = 0  # records that came back (SQS) or were retried (Kinesis)
    filtered: int = 0  # records FilterCriteria dropped
    throttles: int = 0  # throttled submissions, each waited out
    redelivered: int = 0  # possible duplicates: SQS messages received before; stream records sent before a restart
    given_up: int = 0  # Kinesis records sent to OnFailure (or dropped without one)
    oldest_age_ms: int = 0  # SQS: age of the oldest message of the last batch
    iterator_age_ms: int = 0  # Kinesis: how far behind the tip the last read left a shard
    last_result: str = "No records processed"

    def __repr__(self) -> str:
        return f"<Stats {self.batches} batches {self.records} records {self.errors} errors>"


def encode(stats: Stats) -> bytes:
    return msgspec.json.encode(stats)


def decode(body: bytes) -> Stats:
    """A stored record (fields it lacks keep their defaults; unknown ones are ignored)."""
    try:
        return msgspec.json.decode(body, type=Stats)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return Stats()
