"""The built-in queues' and streams' journal in a cluster: every change in the JetStream
stream ``RAPID_QUEUES`` before it is acknowledged, a local SQLite copy beside it.

Theory of operation
-------------------
On one node, ``rapid.queues.store.Journal`` turns the cores' changes into SQL statements
and commits them to ``queues.db`` before the edge answers. In a cluster the node that owns
the queues (``queue_owner``) uses this subclass: the writer thread, for each group of
submissions, first publishes their statements (msgpack, one message per group, split to
fit NATS's ``max_payload``) to the stream, and only after JetStream's publish
acknowledgement applies them to its local copy ``queues-cluster.db`` and answers the
callers. So what a caller was told is done is in JetStream (replicated, on the NATS
servers' disks), whatever happens to the node.

Each publish names the stream sequence it expects to follow
(``Nats-Expected-Last-Sequence``): a second writer (a node that still believes it owns the
queues) cannot interleave its changes; its publish is refused and it gives ownership up.
Before publishing, the writer also checks its own lease deadline (``valid``), the same
argument as the reserved-concurrency leases (``lease_rules``). A refused or failed publish
answers every caller in the group with the error and tells the owner (``on_lost``): the
node's memory now holds changes the journal lacks, so it stops serving and the next owner
(maybe itself) rebuilds from the journal.

A new owner ``replay``s: an empty ``queues-cluster.db``, then every message of the stream
in order, applied with the same per-submission savepoints as the writer (a statement that
failed then fails again, the same way). The cores then load from it as at a restart.
Compaction: every ``snapshot_every`` journal messages the writer (which alone touches the local copy,
so it is consistent at ``last_seq``) publishes a snapshot, every row of every table as
INSERT statements, in parts marked with the header ``Rapid-Snapshot`` (``N`` or ``N/last``),
and once the last part is acknowledged purges everything before the first part. A replay
keeps the parts of a snapshot until its last one arrives, then empties the tables and
applies them: a snapshot cut short (the owner died before its last part) is ignored, and
the history before it, not yet purged, stands.

A replay runs on a worker thread and can take seconds; a node that stops meanwhile (or
loses the lease) calls ``stop_replay`` from its loop: the wait for the stream's next
batch is cancelled, the replay ends with ``Fenced`` at once, and the caller waits for the
worker to be done with the database before it closes it (``rapid.cluster.owned_queues``).
``close`` itself does the same (a SQLite connection closed under a statement another
thread is running on it crashes the process: SIGSEGV), whichever thread calls it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from concurrent.futures import CancelledError, Future
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from rapid.cluster.link import Link
from rapid.queues.store import Journal

STREAM = "RAPID_QUEUES"
SUBJECT = "rapid.queues.journal"
DB_NAME = "queues-cluster.db"
REPLAY_BATCH = 256
SNAPSHOT_EVERY = 10000  # journal messages between two snapshots (each a compaction of the stream)
SNAPSHOT = "Rapid-Snapshot"
TABLES = ("sqs_queues", "sqs_messages", "sqs_dedup", "sqs_imported", "kinesis_streams", "kinesis_records")

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


class Fenced(Exception):
    """This node no longer owns the queues: its change was not journaled."""


async def open_stream(link: Link) -> Any:
    from nats.js import api

    config = api.StreamConfig(name=STREAM, subjects=[SUBJECT], retention=api.RetentionPolicy.LIMITS,
                              storage=api.StorageType.FILE, num_replicas=link.replicas)
    try:
        return await link.js.add_stream(config)
    except Exception:  # noqa: BLE001 - made by another node
        return await link.js.stream_info(STREAM)


class ClusterJournal(Journal):
    def __init__(self, data_dir: str | os.PathLike[str], link: Link, valid: Callable[[], bool],
                 on_lost: Callable[[str], None]) -> None:
        for tail in ("", "-wal", "-shm"):  # a copy from an earlier ownership is stale: rebuilt
            Path(data_dir, DB_NAME + tail).unlink(missing_ok=True)
        super().__init__(data_dir, DB_NAME)
        self.link = link
        self.valid = valid
        self.on_lost = on_lost
        self.last_seq = 0  # the stream sequence of the last change applied here
        self.published = 0
        self.replayed = 0
        self.lost = False
        self.snapshot_every = SNAPSHOT_EVERY
        self.since_snapshot = 0
        self.snapshots = 0
        self._stop_replay = threading.Event()
        self._waiting: Future[Any] | None = None  # the replay's wait on the link's loop
        self._replaying = threading.Lock()  # held by the thread replaying: close() waits for it

    def __repr__(self) -> str:
        return (f"<ClusterJournal {STREAM} last={self.last_seq} replayed={self.replayed} "
                f"published={self.published}{' lost' if self.lost else ''}>")

    # -- rebuilding (a worker thread, before the writer starts) ----------------------------

    def replay(self) -> int:
        """Apply every journaled change in order; the number of messages read."""
        with self._replaying:
            return self._replay()

    def close(self) -> None:
        """From any thread: a replay under way stops, and is waited for, before the database closes."""
        self.stop_replay()
        with self._replaying:
            super().close()

    def _replay(self) -> int:
        info = self._wait(open_stream(self.link))
        last = int(info.state.last_seq)
        if int(info.state.messages) == 0:
            self.last_seq = last
            return 0
        sub = self._wait(self._subscribe())
        parts: list[bytes] = []
        try:
            while self.last_seq < last:
                batch = self._wait(self._next(sub, last), timeout=60)
                if not batch:
                    raise Fenced(f"{STREAM}: replay stopped at {self.last_seq} of {last}")
                self.db.execute("BEGIN IMMEDIATE")
                for seq, data, part in batch:
                    if part is not None:
                        parts = [] if part.partition("/")[0] == "0" else parts
                        parts.append(data)
                        if part.endswith("/last"):  # complete: it replaces everything before it
                            for table in TABLES:
                                self.db.execute(f"DELETE FROM {table}")
                            for chunk in parts:
                                for statements in _decode(chunk):
                                    self._replay_one(statements)
                            parts = []
                    else:
                        parts = []  # a snapshot cut short: ignored
                        for statements in _decode(data):
                            self._replay_one(statements)
                    self.last_seq = seq
                    self.replayed += 1
                self.db.execute("COMMIT")
        finally:
            self.link.call(self._unsubscribe(sub))
        return self.replayed

    def _wait(self, coro: Any, timeout: float | None = None) -> Any:
        """The replay's wait for the link's loop; ``Fenced`` once ``stop_replay`` was called."""
        if self._stop_replay.is_set():
            coro.close()
            raise Fenced(f"{STREAM}: replay stopped: the node gives the queues up")
        fut = self._waiting = self.link.submit(coro)
        if self._stop_replay.is_set():  # called between the check and the submit
            fut.cancel()
        try:
            return fut.result(timeout if timeout is not None else self.link.timeout + 5)
        except CancelledError:
            raise Fenced(f"{STREAM}: replay stopped: the node gives the queues up") from None
        finally:
            self._waiting = None

    def stop_replay(self) -> None:
        """From any thread: the replay under way ends (``Fenced``) at its next wait, at once."""
        self._stop_replay.set()
        fut = self._waiting
        if fut is not None:
            fut.cancel()

    def _replay_one(self, statements: list[list[Any]]) -> None:
        db = self.db
        db.execute("SAVEPOINT op")
        try:
            for sql, params in statements:
                db.execute(sql, params)
            db.execute("RELEASE op")
        except sqlite3.Error:  # it failed when it was written too
            db.execute("ROLLBACK TO op")
            db.execute("RELEASE op")

    async def _subscribe(self) -> Any:
        from nats.js import api

        return await self.link.js.subscribe(SUBJECT, stream=STREAM, ordered_consumer=True,
                                            deliver_policy=api.DeliverPolicy.ALL)

    async def _next(self, sub: Any, last: int) -> list[tuple[int, bytes, str | None]]:
        out: list[tuple[int, bytes, str | None]] = []
        while len(out) < REPLAY_BATCH:
            try:
                msg = await sub.next_msg(timeout=10 if not out else 0.05)
            except Exception:  # noqa: BLE001 - nothing more for now
                break
            seq = int(msg.metadata.sequence.stream)
            out.append((seq, bytes(msg.data), (msg.headers or {}).get(SNAPSHOT)))
            if seq >= last:
                break
        return out

    async def _unsubscribe(self, sub: Any) -> None:
        try:
            await sub.unsubscribe()
        except Exception:  # noqa: BLE001
            pass

    # -- the writer thread ------------------------------------------------------------------

    def _look_in_inbox(self) -> None:
        """Nothing: in a cluster the records of the async destinations reach the owner through
        JetStream (``rapid.events.jetstream_records``, ``QueueOwner.take_records``), not
        through this node's ``events.db``."""

    def _apply(self, group: list[Any]) -> None:
        forget = [item for item in group if item[0] == "forget"]
        ops = [item for item in group if item[0] != "forget"]
        limit = max(4096, int(getattr(self.link.nc, "max_payload", 1048576) or 1048576) - 4096)
        chunks: list[list[Any]] = []
        size = 0
        for op in ops:
            n = sum(len(sql) + _size(params) for sql, params in op[0]) + 16
            if not chunks or size + n > limit:
                chunks.append([])
                size = 0
            chunks[-1].append(op)
            size += n
        for chunk in chunks:
            problem = self._publish(_encode([[list(s) for s in statements] for statements, _ in chunk]))
            if problem is not None:
                assert self._loop is not None
                for _, done in chunk:
                    self._loop.call_soon_threadsafe(done, problem)
                continue
            super()._apply(chunk)
            self.since_snapshot += 1
        if forget:
            super()._apply(forget)
        if self.since_snapshot >= self.snapshot_every and not self.lost:
            self._snapshot(limit)

    def _snapshot(self, limit: int) -> None:
        """Every row as INSERTs, in parts; then the stream before the first part is purged."""
        chunks: list[list[list[Any]]] = [[]]
        size = 0
        for table in TABLES:
            cursor = self.db.execute(f"SELECT * FROM {table}")
            columns = ", ".join(d[0] for d in cursor.description)
            for row in cursor:
                sql = f"INSERT OR REPLACE INTO {table}({columns}) VALUES ({', '.join('?' * len(row))})"
                n = len(sql) + _size(row) + 16
                if chunks[-1] and size + n > limit:
                    chunks.append([])
                    size = 0
                chunks[-1].append([[sql, list(row)]])
                size += n
        first = None
        for i, chunk in enumerate(chunks):
            mark = f"{i}/last" if i == len(chunks) - 1 else str(i)
            if self._publish(_encode(chunk), {SNAPSHOT: mark}) is not None:
                return  # ownership lost: the next owner replays without it
            first = first if first is not None else self.last_seq
        self.since_snapshot = 0
        self.snapshots += 1
        try:
            self.link.call(self.link.js.purge_stream(STREAM, seq=first))
        except Exception:  # noqa: BLE001 - the next snapshot purges more
            pass

    def _publish(self, payload: bytes, extra: dict[str, str] | None = None) -> BaseException | None:
        if self.lost:
            return Fenced("this node no longer owns the built-in queues")
        if not self.valid():
            return self._lose("the queues' lease lapsed before the change was journaled")
        try:
            ack = self.link.call(self.link.js.publish(
                SUBJECT, payload, stream=STREAM,
                headers={"Nats-Expected-Last-Sequence": str(self.last_seq), **(extra or {})}))
        except Exception as exc:  # noqa: BLE001 - refused (another writer) or NATS away
            return self._lose(f"the change could not be journaled in JetStream: {exc or type(exc).__name__}")
        self.last_seq = int(ack.seq)
        self.published += 1
        return None

    def _lose(self, why: str) -> BaseException:
        self.lost = True
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.on_lost, why)
        return Fenced(why)


def _size(params: Any) -> int:
    return sum(len(p) if isinstance(p, (str, bytes, bytearray)) else 8 for p in params)
