"""Event source mappings as the registry keeps them, and the Kinesis checkpoints they make.

A mapping is one immutable ``Mapping`` record under kind ``mapping`` (key: its UUID),
replaced whole on every change; a Kinesis shard's checkpoint is the last sequence number
the mapping has finished with, under kind ``checkpoint`` (key ``UUID/shardId``), with the
shard's open tumbling window and its state beside it when the mapping has one (one record,
so the state and the position it belongs to are written together), and the last sequence
number of the read in flight (so a restart can count the records it sends again). Both are written
through the registry's store before the API answers or the poller reads on, so a restart
resumes every mapping in its last state and every shard where it stopped, window and all.
A mapping's counters (``rapid.sources.stats``) are kept under kind ``mapping-stats`` (key:
its UUID), written by the pollers once a second while they change and when they stop.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

from rapid.registry.model import encode
from rapid.registry.store import RegistryStore


class Mapping(Struct, frozen=True, kw_only=True):
    uuid: str
    function: str  # the function's name
    qualifier: str | None  # a version or an alias; None: $LATEST
    source_arn: str
    kind: str  # "sqs" | "kinesis"
    batch_size: int
    window: int = 0  # MaximumBatchingWindowInSeconds
    enabled: bool = True
    state: str = "Creating"  # Creating | Enabled | Disabled | Updating | Deleting | Enabling | Disabling
    filters: tuple[str, ...] = ()  # FilterCriteria patterns, as given
    response_types: tuple[str, ...] = ()  # FunctionResponseTypes
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency (SQS)
    starting_position: str | None = None  # Kinesis: TRIM_HORIZON | LATEST | AT_TIMESTAMP
    starting_timestamp: float | None = None
    bisect: bool = False
    max_retries: int = -1
    max_age: int = -1
    parallelization: int = 1
    tumbling_window: int = 0
    on_failure: str | None = None  # DestinationConfig.OnFailure.Destination
    modified: float = 0.0  # epoch seconds (LastModified)
    last_result: str = "No records processed"


class MappingStore:
    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self.mappings: dict[str, Mapping] = {}

    def load(self) -> None:
        dec = msgspec.json.Decoder(Mapping)
        for key, body in self.store.load("mapping"):
            self.mappings[key] = dec.decode(body)

    def put(self, m: Mapping) -> None:
        self.store.put("mapping", m.uuid, encode(m))
        self.mappings[m.uuid] = m

    def delete(self, uuid: str) -> None:
        self.store.delete("mapping", uuid)
        self.store.delete_prefix("checkpoint", f"{uuid}/")
        self.store.delete("mapping-stats", uuid)
        self.mappings.pop(uuid, None)

    def positions(self, uuid: str) -> dict[str, tuple[int, dict[str, Any] | None, int | None]]:
        """shardId -> (the last sequence number done, the open tumbling window or None, the
        last sequence number of the read that was in flight or None)."""
        out: dict[str, tuple[int, dict[str, Any] | None, int | None]] = {}
        for key, body in self.store.load("checkpoint"):
            if key.startswith(f"{uuid}/"):
                out[key.partition("/")[2]] = _position(bytes(body))
        return out

    def checkpoints(self, uuid: str) -> dict[str, int]:
        """shardId -> the last sequence number done."""
        return {shard: seq for shard, (seq, _, _) in self.positions(uuid).items()}

    def checkpoint(self, uuid: str, shard_id: str, seq: int, window: dict[str, Any] | None = None,
                   inflight: int | None = None) -> None:
        if window is None and inflight is None:
            body = str(seq).encode()
        else:
            body = msgspec.json.encode({"seq": str(seq), "window": window,
                                        "inflight": str(inflight) if inflight is not None else None})
        self.store.put("checkpoint", f"{uuid}/{shard_id}", body)

    def stats(self) -> dict[str, bytes]:
        """UUID -> the mapping's counters as last written (``rapid.sources.stats``)."""
        return {key: bytes(body) for key, body in self.store.load("mapping-stats")}

    def put_stats(self, uuid: str, body: bytes) -> None:
        if uuid in self.mappings:
            self.store.put("mapping-stats", uuid, body)

    def __repr__(self) -> str:
        return f"<MappingStore {len(self.mappings)} mappings>"


def _position(body: bytes) -> tuple[int, dict[str, Any] | None, int | None]:
    if body.startswith(b"{"):
        record = msgspec.json.decode(body)
        inflight = record.get("inflight")
        return int(record["seq"]), record.get("window"), int(inflight) if inflight is not None else None
    return int(body), None, None
