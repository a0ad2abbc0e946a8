"""Kinesis's JSON 1.1 protocol on rapid's port: ``POST /`` with
``X-Amz-Target: Kinesis_20131202.<Op>`` and ``Content-Type: application/x-amz-json-1.1``.

Errors: HTTP 400, ``{"__type": "<Code>", "message": ...}`` and ``x-amzn-ErrorType``, as
Kinesis answers them. A write (CreateStream, PutRecord(s), DeleteStream, a retention change)
is answered once it is committed to ``queues.db``; reads are answered at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from typing import Any

import msgspec

from rapid.queues.store import Journal, Statement
from rapid.streams.kinesis import KinesisError, Record, Service, Shard, Stream, check_entry, make_shards

CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_PUT_RECORDS = 500
MAX_PUT_RECORDS_BYTES = 5 * 1024 * 1024
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def statements(changes: list[tuple[Any, ...]]) -> list[Statement]:
    out: list[Statement] = []
    for change in changes:
        kind = change[0]
        if kind == "stream":
            s: Stream = change[1]
            body = json.dumps({"shards": len(s.shards), "created": s.created, "retention": s.retention_hours,
                               "mode": s.mode})
            out.append(("INSERT OR REPLACE INTO kinesis_streams(name, body) VALUES (?, ?)", (s.name, body)))
        elif kind == "drop":
            out.append(("DELETE FROM kinesis_streams WHERE name = ?", (change[1],)))
            out.append(("DELETE FROM kinesis_records WHERE stream = ?", (change[1],)))
        elif kind == "record":
            s, shard, r = change[1], change[2], change[3]
            out.append(("INSERT INTO kinesis_records(stream, shard, seq, partition_key, data, arrival) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (s.name, shard.index, str(r.seq), r.partition_key, r.data,
                                                      r.arrival)))
        elif kind == "trim":
            s, shard, cutoff = change[1], change[2], change[3]
            out.append(("DELETE FROM kinesis_records WHERE stream = ? AND shard = ? AND arrival <= ?",
                        (s.name, shard.index, cutoff)))
    return out


def load(journal: Journal, service: Service) -> None:
    for name, body in journal.load("SELECT name, body FROM kinesis_streams"):
        meta = json.loads(body)
        service.streams[name] = Stream(name, meta["created"], meta["retention"],
                                       make_shards(meta["shards"], meta["created"]), meta.get("mode", "PROVISIONED"))
    rows = journal.load("SELECT stream, shard, seq, partition_key, data, arrival FROM kinesis_records")
    rows.sort(key=lambda r: (r[0], r[1], int(r[2])))
    for stream, index, seq, key, data, arrival in rows:
        s = service.streams.get(stream)
        if s is not None and index < len(s.shards):
            shard = s.shards[index]
            shard.records.append(Record(int(seq), key, bytes(data), arrival))
            shard.seqs.append(int(seq))


class KinesisAPI:
    def __init__(self, journal: Journal, region: str, account: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        from rapid.http.message import Response

        self._Response = Response
        self.journal, self.clock = journal, clock
        self.service = Service(region, account)
        load(journal, self.service)
        self._loop = asyncio.get_running_loop()
        self.on_commit: list[Callable[[], None]] = []  # after each committed write (pollers wake)
        self._ops = {name: getattr(self, "op_" + name) for name in (
            "CreateStream", "DescribeStream", "DescribeStreamSummary", "ListShards", "ListStreams", "PutRecord",
            "PutRecords", "GetShardIterator", "GetRecords", "DeleteStream", "IncreaseStreamRetentionPeriod",
            "DecreaseStreamRetentionPeriod")}

    def __repr__(self) -> str:
        return f"<KinesisAPI {len(self.service.streams)} streams>"

    def __call__(self, req: Any, rid: str) -> Any:
        op = req.headers.get("x-amz-target", "").partition(".")[2]
        try:
            handler = self._ops.get(op)
            if handler is None:
                raise KinesisError("UnknownOperationException", f"Operation {op} is not supported.")
            try:
                body = _decode(req.body) if req.body else {}
            except msgspec.DecodeError:
                raise KinesisError("SerializationException", "The request body is not valid JSON.") from None
            if not isinstance(body, dict):
                raise KinesisError("SerializationException", "The request body must be a JSON object.")
            try:
                result = handler(body, self.clock())
            except (TypeError, AttributeError, KeyError, ValueError) as exc:  # a member of the wrong type
                raise KinesisError("SerializationException", f"A member of the request does not have the type "
                                   f"{op} expects ({type(exc).__name__}: {exc}).") from None
        except KinesisError as exc:
            self.service.changes.clear()
            return self._error(exc, rid)
        return self._commit(result, rid)

    def _headers(self, rid: str) -> list[tuple[str, str]]:
        return [("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", rid)]

    def _error(self, exc: KinesisError, rid: str) -> Any:
        return self._Response(exc.status, _encode({"__type": exc.code, "message": exc.message}),
                              [*self._headers(rid), ("x-amzn-ErrorType", exc.code)])

    def _commit(self, obj: dict[str, Any], rid: str) -> Any:
        changes, self.service.changes = self.service.changes, []
        if not changes:
            return self._Response(200, _encode(obj), self._headers(rid))
        fut = self._loop.create_future()

        def done(exc: BaseException | None) -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_result(self._error(KinesisError("InternalFailure", f"The stream store failed: {exc}", 500),
                                           rid))
            else:
                fut.set_result(self._Response(200, _encode(obj), self._headers(rid)))
                for wake in self.on_commit:
                    wake()

        self.journal.submit(statements(changes), done)
        return fut

    def _stream(self, body: dict[str, Any]) -> Stream:
        return self.service.get(self.service.name_of(body))

    def _shard_view(self, shard: Shard) -> dict[str, Any]:
        return {"ShardId": shard.id,
                "HashKeyRange": {"StartingHashKey": str(shard.start_hash), "EndingHashKey": str(shard.end_hash)},
                "SequenceNumberRange": {"StartingSequenceNumber": str(shard.base)}}

    def _common(self, s: Stream) -> dict[str, Any]:
        return {"StreamName": s.name, "StreamARN": self.service.arn(s.name), "StreamStatus": "ACTIVE",
                "StreamModeDetails": {"StreamMode": s.mode}, "RetentionPeriodHours": s.retention_hours,
                "StreamCreationTimestamp": s.created, "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
                "EncryptionType": "NONE"}

    # -- operations -----------------------------------------------------------------------

    def op_CreateStream(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        mode = (body.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
        if mode not in ("PROVISIONED", "ON_DEMAND"):
            raise KinesisError("ValidationException", "1 validation error detected: Value at "
                               "'streamModeDetails.streamMode' failed to satisfy constraint: Member must satisfy "
                               "enum value set: [ON_DEMAND, PROVISIONED]")
        count = body.get("ShardCount", 4 if mode == "ON_DEMAND" else None)  # on demand starts with 4 shards
        if count is None:
            raise KinesisError("InvalidArgumentException", "ShardCount is required for a PROVISIONED stream.")
        self.service.create(body.get("StreamName"), count, now, mode)
        return {}

    def op_DeleteStream(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        self.service.delete(self._stream(body))
        return {}

    def op_DescribeStream(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        s = self._stream(body)
        return {"StreamDescription": {**self._common(s), "Shards": [self._shard_view(sh) for sh in s.shards],
                                      "HasMoreShards": False}}

    def op_DescribeStreamSummary(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        s = self._stream(body)
        return {"StreamDescriptionSummary": {**self._common(s), "OpenShardCount": len(s.shards), "ConsumerCount": 0}}

    def op_ListShards(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        return {"Shards": [self._shard_view(sh) for sh in self._stream(body).shards]}

    def op_ListStreams(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        names = sorted(self.service.streams)
        start = body.get("ExclusiveStartStreamName")
        if start:
            names = [n for n in names if n > start]
        limit = body.get("Limit") or 100
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise KinesisError("ValidationException", "1 validation error detected: Value at 'limit' failed to "
                               "satisfy constraint: Member must have value between 1 and 10000")
        page = names[:limit]
        return {"StreamNames": page, "HasMoreStreams": len(names) > len(page), "StreamSummaries": [
            {"StreamName": n, "StreamARN": self.service.arn(n), "StreamStatus": "ACTIVE",
             "StreamModeDetails": {"StreamMode": self.service.streams[n].mode},
             "StreamCreationTimestamp": self.service.streams[n].created} for n in page]}

    def op_PutRecord(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        shard, r = self.service.put(self._stream(body), body, now)
        return {"ShardId": shard.id, "SequenceNumber": str(r.seq), "EncryptionType": "NONE"}

    def op_PutRecords(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        s = self._stream(body)
        entries = body.get("Records")
        if not isinstance(entries, list) or not entries:
            raise KinesisError("ValidationException", "1 validation error detected: Value at 'records' failed to "
                                                      "satisfy constraint: Member must have length greater than or "
                                                      "equal to 1")
        if len(entries) > MAX_PUT_RECORDS:
            raise KinesisError("ValidationException", f"1 validation error detected: Value at 'records' failed to "
                                                      f"satisfy constraint: Member must have length less than or "
                                                      f"equal to {MAX_PUT_RECORDS}")
        size = sum(len(str(e.get("Data", ""))) * 3 // 4 + len(str(e.get("PartitionKey", ""))) for e in entries
                   if isinstance(e, dict))
        if size > MAX_PUT_RECORDS_BYTES:
            raise KinesisError("InvalidArgumentException",
                               f"Records size exceeds {MAX_PUT_RECORDS_BYTES // 1024 // 1024} MB limit")
        for e in entries:  # a malformed entry fails the whole request, as Kinesis validates first
            if not isinstance(e, dict):
                raise KinesisError("SerializationException", "Each record must be an object.")
            check_entry(e)
        out = []
        for e in entries:
            shard, r = self.service.put(s, e, now)
            out.append({"SequenceNumber": str(r.seq), "ShardId": shard.id})
        return {"FailedRecordCount": 0, "Records": out, "EncryptionType": "NONE"}

    def op_GetShardIterator(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        return {"ShardIterator": self.service.iterator(self._stream(body), body, now)}

    def op_GetRecords(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        _, _, records, nxt, behind = self.service.records(body.get("ShardIterator"), body.get("Limit"), now)
        return {"Records": [{"SequenceNumber": str(r.seq), "ApproximateArrivalTimestamp": round(r.arrival, 3),
                             "Data": base64.b64encode(r.data).decode(), "PartitionKey": r.partition_key}
                            for r in records],
                "NextShardIterator": nxt, "MillisBehindLatest": behind}

    # -- in-process, for the event source mapping pollers -------------------------------

    def read(self, stream: str, shard_id: str, after: int, limit: int) -> tuple[list[Record], int]:
        """Records of one shard after sequence number ``after`` (the poller's checkpoint;
        ``shard.base`` of ``Service.shard`` for TRIM_HORIZON) and the lag behind the tip in
        ms. Raises ``KinesisError`` (``ResourceNotFoundException``) for a missing stream or
        shard. What retention trimmed is written in the background."""
        s = self.service.get(stream)
        got = self.service.read(s, self.service.shard(s, shard_id), after, limit, self.clock())
        if self.service.changes:
            changes, self.service.changes = self.service.changes, []
            self.journal.submit(statements(changes), lambda exc: None)
        return got

    def op_IncreaseStreamRetentionPeriod(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        self.service.set_retention(self._stream(body), body.get("RetentionPeriodHours"), True)
        return {}

    def op_DecreaseStreamRetentionPeriod(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        self.service.set_retention(self._stream(body), body.get("RetentionPeriodHours"), False)
        return {}
