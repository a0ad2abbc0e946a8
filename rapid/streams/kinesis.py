"""Streams, shards and records: a pure core, the clock (``now``, epoch seconds) passed in.

Theory of operation
-------------------
A stream of N shards splits the 128-bit hash key space evenly: shard i holds
``[i * 2**128 // N, (i + 1) * 2**128 // N - 1]`` (the last one ends at ``2**128 - 1``), as
Kinesis splits it. A record goes to the shard holding the MD5 of its partition key read as
a 128-bit integer (or its ``ExplicitHashKey``). Sequence numbers are 56-digit decimals that
increase within a shard: ``49``, the shard's index (5 digits), the stream's creation time in
ms (13), a per-shard counter (36). A shard iterator names a position ("after sequence
number s") and the time it was issued; it expires after 5 minutes. Records older than the
retention period (24 h by default) are trimmed when the shard is read or written.

Changes for the store are appended to ``Service.changes``: ``("stream", s)``,
``("drop", name)``, ``("record", s, shard, r)``, ``("trim", s, shard, cutoff)``.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

HASH_SPACE = 2**128
MAX_RECORD = 1024 * 1024
MAX_GET_BYTES = 10 * 1024 * 1024  # GetRecords answers at most 10 MiB of data
ITERATOR_LIFETIME = 300.0
_NAME_RE = re.compile(r"[a-zA-Z0-9_.-]{1,128}")


class KinesisError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status

    def __repr__(self) -> str:
        return f"<KinesisError {self.code}: {self.message}>"


def invalid(message: str) -> KinesisError:
    return KinesisError("InvalidArgumentException", message)


def validation(field_name: str, constraint: str) -> KinesisError:
    return KinesisError("ValidationException", f"1 validation error detected: Value at '{field_name}' failed to "
                                               f"satisfy constraint: {constraint}")


@dataclass(slots=True)
class Record:
    seq: int
    partition_key: str
    data: bytes
    arrival: float


@dataclass(slots=True, eq=False)
class Shard:
    index: int
    start_hash: int
    end_hash: int
    base: int  # the sequence number with counter 0
    records: list[Record] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"shardId-{self.index:012d}"

    def next_seq(self) -> int:
        return (self.seqs[-1] if self.seqs else self.base) + 1

    def __repr__(self) -> str:
        return f"<Shard {self.id} {len(self.records)} records>"


@dataclass(slots=True, eq=False)
class Stream:
    name: str
    created: float
    retention_hours: int
    shards: list[Shard]
    mode: str = "PROVISIONED"

    def shard_for(self, hash_key: int) -> Shard:
        for s in self.shards:
            if s.start_hash <= hash_key <= s.end_hash:
                return s
        raise AssertionError("the shards cover the hash key space")

    def __repr__(self) -> str:
        return f"<Stream {self.name} {len(self.shards)} shards>"


def make_shards(count: int, created: float) -> list[Shard]:
    step = HASH_SPACE // count
    shards = []
    for i in range(count):
        end = HASH_SPACE - 1 if i == count - 1 else (i + 1) * step - 1
        shards.append(Shard(i, i * step, end, int(f"49{i:05d}{int(created * 1000):013d}{0:036d}")))
    return shards


def hash_key(partition_key: str) -> int:
    return int(hashlib.md5(partition_key.encode("utf-8")).hexdigest(), 16)


def check_entry(entry: dict[str, Any]) -> tuple[str, bytes, int]:
    """A record to put, checked: its partition key, data and hash key."""
    data_b64, key = entry.get("Data"), entry.get("PartitionKey")
    if not isinstance(key, str) or not 1 <= len(key) <= 256:
        raise validation("partitionKey", "Member must have length between 1 and 256")
    if not isinstance(data_b64, str):
        raise validation("data", "Member must not be null")
    try:
        data = base64.b64decode(data_b64, validate=True)
    except ValueError:
        raise KinesisError("SerializationException", "Data is not valid base64") from None
    if len(data) > MAX_RECORD:
        raise validation("data", f"Member must have length less than or equal to {MAX_RECORD}")
    if len(data) + len(key.encode("utf-8")) > MAX_RECORD:
        raise invalid(f"The size of the record, including the partition key, exceeds {MAX_RECORD} bytes.")
    explicit = entry.get("ExplicitHashKey")
    if explicit is not None:
        try:
            h = int(explicit)
            if not 0 <= h < HASH_SPACE or not str(explicit).isdigit():
                raise ValueError
        except ValueError:
            raise invalid(f"Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. "
                          f"Specified value was {explicit}") from None
    else:
        h = hash_key(key)
    return key, data, h


class Service:
    def __init__(self, region: str, account: str) -> None:
        self.region, self.account = region, account
        self.streams: dict[str, Stream] = {}
        self.changes: list[tuple[Any, ...]] = []

    def __repr__(self) -> str:
        return f"<kinesis.Service {self.region} {len(self.streams)} streams>"

    def arn(self, name: str) -> str:
        return f"arn:aws:kinesis:{self.region}:{self.account}:stream/{name}"

    def name_of(self, body: dict[str, Any]) -> str:
        name, arn = body.get("StreamName"), body.get("StreamARN")
        if isinstance(arn, str) and arn:
            name = arn.rsplit("/", 1)[-1]
        if not isinstance(name, str) or not name:
            raise invalid("Either StreamName or StreamARN should be provided.")
        return name

    def get(self, name: str) -> Stream:
        s = self.streams.get(name)
        if s is None:
            raise KinesisError("ResourceNotFoundException", f"Stream {name} under account {self.account} not found.")
        return s

    def shard(self, s: Stream, shard_id: Any) -> Shard:
        for sh in s.shards:
            if sh.id == shard_id:
                return sh
        raise KinesisError("ResourceNotFoundException",
                           f"Shard {shard_id} in stream {s.name} under account {self.account} does not exist")

    def create(self, name: Any, shard_count: Any, now: float, mode: str = "PROVISIONED") -> Stream:
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise validation("streamName", "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
        if isinstance(shard_count, bool) or not isinstance(shard_count, int) or not 1 <= shard_count <= 500:
            raise validation("shardCount", "Member must have value between 1 and 500")
        if name in self.streams:
            raise KinesisError("ResourceInUseException", f"Stream {name} under account {self.account} already exists.")
        s = Stream(name, now, 24, make_shards(shard_count, now), mode)
        self.streams[name] = s
        self.changes.append(("stream", s))
        return s

    def delete(self, s: Stream) -> None:
        del self.streams[s.name]
        self.changes.append(("drop", s.name))

    def set_retention(self, s: Stream, hours: Any, increase: bool) -> None:
        if isinstance(hours, bool) or not isinstance(hours, int) or not 24 <= hours <= 8760:
            raise invalid(f"Minimum allowed retention period is 24 hours. Maximum allowed retention period is 8760 "
                          f"hours. Requested retention period ({hours} hours) is too "
                          f"{'short' if isinstance(hours, int) and hours < 24 else 'long'}.")
        if increase and hours < s.retention_hours:
            raise invalid(f"Requested retention period ({hours} hours) for stream {s.name} can not be shorter than "
                          f"existing retention period ({s.retention_hours} hours). Use DecreaseRetentionPeriod API.")
        if not increase and hours > s.retention_hours:
            raise invalid(f"Requested retention period ({hours} hours) for stream {s.name} can not be longer than "
                          f"existing retention period ({s.retention_hours} hours). Use IncreaseRetentionPeriod API.")
        s.retention_hours = hours
        self.changes.append(("stream", s))

    def trim(self, s: Stream, shard: Shard, now: float) -> None:
        cutoff = now - s.retention_hours * 3600
        n = 0
        while n < len(shard.records) and shard.records[n].arrival <= cutoff:
            n += 1
        if n:
            del shard.records[:n], shard.seqs[:n]
            self.changes.append(("trim", s, shard, cutoff))

    def put(self, s: Stream, entry: dict[str, Any], now: float) -> tuple[Shard, Record]:
        key, data, h = check_entry(entry)
        shard = s.shard_for(h)
        self.trim(s, shard, now)
        r = Record(shard.next_seq(), key, data, now)
        shard.records.append(r)
        shard.seqs.append(r.seq)
        self.changes.append(("record", s, shard, r))
        return shard, r

    # -- reading --------------------------------------------------------------------------

    def iterator(self, s: Stream, body: dict[str, Any], now: float) -> str:
        shard = self.shard(s, body.get("ShardId"))
        kind = body.get("ShardIteratorType")
        seq_text = body.get("StartingSequenceNumber")
        if kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            if not isinstance(seq_text, str) or not seq_text.isdigit():
                raise invalid(f"StartingSequenceNumber must be provided for ShardIteratorType {kind}." if not seq_text
                              else f"StartingSequenceNumber {seq_text} used in GetShardIterator on shard {shard.id} "
                              f"in stream {s.name} under account {self.account} is invalid.")
            seq = int(seq_text)
            if not str(seq).startswith("49") or len(seq_text) != 56 or seq // 10**49 % 10**5 != shard.index:
                raise invalid(f"Invalid StartingSequenceNumber. It encodes {seq_text}, while it was used in a call "
                              f"to a shard with {shard.id}")
            after = seq - 1 if kind == "AT_SEQUENCE_NUMBER" else seq
        elif kind == "TRIM_HORIZON":
            after = shard.base
        elif kind == "LATEST":
            after = shard.next_seq() - 1
        elif kind == "AT_TIMESTAMP":
            ts = body.get("Timestamp")
            if not isinstance(ts, (int, float)):
                raise invalid("Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. "
                              "Current request has no timestamp parameter.")
            first = next((r for r in shard.records if r.arrival >= ts), None)
            after = first.seq - 1 if first is not None else shard.next_seq() - 1
        else:
            raise validation("shardIteratorType", "Member must satisfy enum value set: [AT_SEQUENCE_NUMBER, "
                             "AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP, AT_CUSTOM_SEQUENCE]")
        return encode_iterator(s, shard, after, now)

    def records(self, token: Any, limit: Any, now: float) -> tuple[Stream, Shard, list[Record], str, int]:
        """GetRecords: the records after the iterator's position (at most ``limit``), the
        next iterator, and how far behind the tip the answer is, in ms."""
        if limit is None:
            limit = 10000
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise validation("limit", "Member must have value between 1 and 10000")
        name, index, after, issued, created = decode_iterator(token)
        if now - issued > ITERATOR_LIFETIME:
            raise KinesisError("ExpiredIteratorException",
                               f"Iterator expired. The iterator was created at time {_ms_text(issued)} while right "
                               f"now it is {_ms_text(now)} which is further in the future than the tolerated delay "
                               f"of {int(ITERATOR_LIFETIME * 1000)} milliseconds.")
        s = self.get(name)
        if index >= len(s.shards) or created != int(s.created * 1000):  # another stream of that name
            raise invalid("Invalid ShardIterator.")
        shard = s.shards[index]
        got, behind = self.read(s, shard, after, limit, now)
        position = got[-1].seq if got else after
        return s, shard, got, encode_iterator(s, shard, position, now), behind

    def read(self, s: Stream, shard: Shard, after: int, limit: int, now: float) -> tuple[list[Record], int]:
        """The records after sequence number ``after`` (at most ``limit``, at most 10 MiB of
        data but at least one), and how far behind the tip that leaves the reader, in ms.
        (GetRecords, and a poller in the daemon that keeps its own checkpoint.)"""
        self.trim(s, shard, now)
        start = bisect.bisect_right(shard.seqs, after)
        got = shard.records[start:start + limit]
        total = 0
        for n, r in enumerate(got):
            total += len(r.data)
            if total > MAX_GET_BYTES and n:
                got = got[:n]
                break
        rest = shard.records[start + len(got):]
        return got, max(0, int((now - rest[0].arrival) * 1000)) if rest else 0


def encode_iterator(s: Stream, shard: Shard, after: int, now: float) -> str:
    raw = json.dumps([s.name, shard.index, str(after), round(now, 3), int(s.created * 1000)]).encode()
    return base64.b64encode(raw).decode()


def decode_iterator(token: Any) -> tuple[str, int, int, float, int]:
    if not isinstance(token, str) or not token:
        raise validation("shardIterator", "Member must not be null")
    try:
        name, index, after, issued, created = json.loads(base64.b64decode(token, validate=True))
        return str(name), int(index), int(after), float(issued), int(created)
    except (ValueError, TypeError):
        raise invalid("Invalid ShardIterator.") from None


def _ms_text(t: float) -> str:
    return str(int(t * 1000))
