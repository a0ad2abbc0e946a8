"""The durable queue behind asynchronous invocation: SQLite in WAL mode, one writer thread.

SQLite implementation
---------------------
``events.db`` in the data dir, ``journal_mode=WAL``, ``synchronous=FULL``: a commit is on
disk (fsync'd WAL) when it returns. One thread owns the write connection and commits in
*groups*: it takes every operation queued since its last commit (up to ``MAX_BATCH``) and
applies them in one transaction, each under its own savepoint so that one bad operation
fails alone; the next group gathers while the current one fsyncs. No artificial delay is
added: at low load a group is one operation and its latency is one fsync; under load the
groups grow and the fsync is shared.

Why a thread, measured (``python -m benchmarks.events --store``, 2-core VM, 100 B events from
16 concurrent producers on one uvloop loop; two runs): one commit per event on the loop,
8,000-9,000 events/s with the loop blocked up to 0.6-3.7 ms; one commit per loop tick on the
loop, 70,000/s but the loop blocked up to 1.4-1.7 ms, for every fsync, during which no sync
invoke and no Runtime API call moves; the writer thread, 44,000-45,000/s (16 events per
commit) with the loop never blocked more than 0.05-0.11 ms. The whole daemon accepts
14,000-17,000 events/s over HTTP, so the thread costs no throughput that matters and keeps
fsync latency (much worse on many disks than here) off the event loop.

The tables, and what an operation writes in them: ``sqlite_db``.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import sqlite3
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from rapid.events import destinations as dest
from rapid.events.destinations import Response
from rapid.events.sqlite_db import (
    _SCHEMA,
    DB_NAME,
    SCHEMA_VERSION,
    _Batch,
    _bump,
    _encode,
    _finish,
    _insert_event,
    connect,
    read_snapshot,
)
from rapid.events.store import Delivery, Done, Entry, Finish, Recovery, StoreBusy, StoreError

LOCK_NAME = "events.lock"
MAX_BATCH = 4096


class _Op:
    """One operation for the writer: ``apply`` runs in the writer thread inside the group's
    transaction; ``done`` gets its result on the event loop after the commit."""

    __slots__ = ("apply", "done", "error", "result")

    def __init__(self, apply: Callable[[_Batch], Any], done: Done) -> None:
        self.apply = apply
        self.done = done
        self.result: Any = None
        self.error: BaseException | None = None


_STOP = object()


class SQLiteStore:
    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(data_dir)
        self.path = self.dir / DB_NAME
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0  # groups committed, and operations in them (for the benchmark)
        self.operations = 0

    # -- life -----------------------------------------------------------------------------

    def open(self) -> Recovery:
        """Take the data dir (one daemon at a time), create or migrate the db, and recover:
        events left running by a daemon that died are queued again and counted."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"data dir {self.dir}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreBusy(f"data dir {self.dir} is in use by another rapid daemon") from None
        self._lock_fd = fd
        try:
            return self._open()
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"{self.path}: cannot open the async queue: {exc}") from None

    def _open(self) -> Recovery:
        db = self._db = connect(self.path)
        db.executescript("BEGIN;" + _SCHEMA + "COMMIT;")  # one WAL sync, not one per statement
        db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
        db.execute("BEGIN IMMEDIATE")
        redelivered = dict(db.execute(
            "SELECT function, COUNT(*) FROM events WHERE state = 1 GROUP BY function").fetchall())
        if redelivered:
            db.execute("UPDATE events SET state = 0 WHERE state = 1")
            for function, n in redelivered.items():
                _bump(db, function, "redelivered", n)
        db.execute("COMMIT")
        entries = [
            Entry(*row) for row in db.execute(
                "SELECT id, request_id, function, qualifier, trace_id, enqueued_at, due_at, attempts, errors, "
                "throttles FROM events ORDER BY id")
        ]
        deliveries = [
            Delivery(*row) for row in db.execute(
                "SELECT id, function, target, body, created_at, due_at, expires_at, tries FROM deliveries ORDER BY id")
        ]
        configs = {
            (f, q): msgspec.json.decode(body) for f, q, body in db.execute("SELECT function, qualifier, body FROM configs")
        }
        return Recovery(entries, deliveries, configs, redelivered)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="rapid-events-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the writer once every queued operation is committed; release the data dir."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def idle(self) -> bool:
        return self._queue.empty()

    # -- the writer -----------------------------------------------------------------------

    def _submit(self, apply: Callable[[_Batch], Any], done: Done) -> None:
        self._queue.put(_Op(apply, done))

    def _run(self) -> None:
        db = self._db
        assert db is not None and self._loop is not None
        q = self._queue
        stop = False
        while not stop:
            first = q.get()
            if first is _STOP:
                break
            ops = [first]
            while len(ops) < MAX_BATCH:
                try:
                    op = q.get_nowait()
                except queue.Empty:
                    break
                if op is _STOP:
                    stop = True
                    break
                ops.append(op)
            self._commit(db, ops)
            try:
                self._loop.call_soon_threadsafe(_complete, ops)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return

    def _commit(self, db: sqlite3.Connection, ops: list[_Op]) -> None:
        batch = _Batch(db)
        try:
            db.execute("BEGIN IMMEDIATE")
            for op in ops:
                db.execute("SAVEPOINT op")
                batch.op_counters.clear()
                try:
                    op.result = op.apply(batch)
                    batch.counters.update(batch.op_counters)
                except Exception as exc:  # noqa: BLE001 - this operation fails alone, whatever it was
                    db.execute("ROLLBACK TO op")
                    op.error = exc
                db.execute("RELEASE op")
            for (function, name), n in batch.counters.items():
                _bump(db, function, name, n)
            batch.sync_files()
            db.execute("COMMIT")
            self.batches += 1
            self.operations += len(ops)
        except Exception as exc:  # noqa: BLE001 - the group failed: every operation is told
            traceback.print_exc()
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            try:
                batch.sync_files()
            except OSError:
                pass
            for op in ops:
                op.error = exc

    # -- operations -----------------------------------------------------------------------

    def enqueue(self, entry: Entry, payload: bytes, running: bool, done: Done) -> None:
        """Store a new event; ``running``: it is dispatched at once (its first attempt is
        counted in the same commit)."""
        def apply(b: _Batch) -> int:
            entry.id = _insert_event(b, entry, payload, running)
            return entry.id

        self._submit(apply, done)

    def mark_started(self, entries: list[Entry], done: Done) -> None:
        """Count an attempt for each entry and mark it running; the result is the payloads,
        in order (None for an event that is gone)."""
        def apply(b: _Batch) -> list[bytes | None]:
            out: list[bytes | None] = []
            for e in entries:
                row = b.db.execute(
                    "UPDATE events SET state = 1, attempts = attempts + 1 WHERE id = ? RETURNING payload", (e.id,)
                ).fetchone()
                out.append(row[0] if row else None)
            return out

        self._submit(apply, done)

    def reschedule(self, entry: Entry, due_at: float, reason: str, response: Response | None, done: Done) -> None:
        """Queue the event again for ``due_at`` with its counts, keeping the answer of this
        attempt for the record it may end in."""
        errors, throttles = entry.errors, entry.throttles

        def apply(b: _Batch) -> None:
            if response is not None:
                b.db.execute(
                    "UPDATE events SET state = 0, due_at = ?, errors = ?, throttles = ?, last_status = ?, "
                    "last_error = ?, last_body = ? WHERE id = ?",
                    (due_at, errors, throttles, response.status, response.function_error, response.body, entry.id),
                )
            else:
                b.db.execute("UPDATE events SET state = 0, due_at = ?, errors = ?, throttles = ? WHERE id = ?",
                             (due_at, errors, throttles, entry.id))
            b.count(entry.function, f"retries:{reason}")

        self._submit(apply, done)

    def release_running(self, cut: dict[str, int], done: Done) -> None:
        """Put every running event back in the queue, its attempt uncounted (shutdown).
        ``cut``: per function, attempts that had started and were cut short: they will run
        again, so they are counted as redeliveries (possible duplicates)."""
        def apply(b: _Batch) -> int:
            cur = b.db.execute("UPDATE events SET state = 0, attempts = MAX(attempts - 1, 0) WHERE state = 1")
            for function, n in cut.items():
                b.count(function, "redelivered", n)
            return cur.rowcount

        self._submit(apply, done)

    def finish(self, plan: Finish, done: Done) -> None:
        self._submit(lambda b: _finish(b, plan), done)

    def delivery_done(self, d: Delivery, done: Done) -> None:
        def apply(b: _Batch) -> None:
            b.db.execute("DELETE FROM deliveries WHERE id = ?", (d.id,))
            b.count(d.function, "destination_delivered")

        self._submit(apply, done)

    def delivery_failed(self, d: Delivery, drop: bool, done: Done) -> None:
        """Count a failed delivery attempt; keep the row for its next try, or drop it."""
        due, tries = d.due_at, d.tries

        def apply(b: _Batch) -> None:
            b.count(d.function, "destination_failures")
            if drop:
                b.db.execute("DELETE FROM deliveries WHERE id = ?", (d.id,))
                b.count(d.function, "destination_dropped")
            else:
                b.db.execute("UPDATE deliveries SET due_at = ?, tries = ? WHERE id = ?", (due, tries, d.id))

        self._submit(apply, done)

    def deliver_file(self, d: Delivery, done: Done) -> None:
        """Append an outbox row's body to its file and delete the row; the result is None,
        or the error's text (nothing is changed then)."""
        path = dest.parse_target(d.target, region="", account="").address

        def apply(b: _Batch) -> str | None:
            try:
                b.append(path, d.body)
            except OSError as exc:
                return f"{path}: {exc.strerror or exc}"
            b.db.execute("DELETE FROM deliveries WHERE id = ?", (d.id,))
            b.count(d.function, "destination_delivered")
            return None

        self._submit(apply, done)

    def add_delivery(self, d: Delivery, done: Done) -> None:
        """A new outbox row for ``d`` (a delivery taken over from another node, in a
        cluster); its id is set, and is the result."""
        def apply(b: _Batch) -> int:
            cur = b.db.execute(
                "INSERT INTO deliveries(function, target, body, created_at, due_at, expires_at, tries) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", (d.function, d.target, d.body, d.created_at, d.due_at,
                                                 d.expires_at, d.tries))
            assert cur.lastrowid is not None
            d.id = cur.lastrowid
            return d.id

        self._submit(apply, done)

    def forget_messages(self, rows: list[int], done: Done) -> None:
        """Delete built-in queue records from ``messages`` (in a cluster, once JetStream holds them)."""
        def apply(b: _Batch) -> None:
            b.db.executemany("DELETE FROM messages WHERE id = ?", [(r,) for r in rows])

        self._submit(apply, done)

    def put_config(self, function: str, qualifier: str, body: dict[str, Any] | None, done: Done) -> None:
        def apply(b: _Batch) -> None:
            if body is None:
                b.db.execute("DELETE FROM configs WHERE function = ? AND qualifier = ?", (function, qualifier))
            else:
                b.db.execute("INSERT OR REPLACE INTO configs(function, qualifier, body) VALUES (?, ?, ?)",
                             (function, qualifier, _encode(body).decode()))

        self._submit(apply, done)

    def snapshot(self, done: Done) -> None:
        """The figures behind /metrics, read in the writer's order (after earlier writes)."""
        self._submit(lambda b: read_snapshot(b.db), done)


def _complete(ops: list[_Op]) -> None:
    for op in ops:
        try:
            op.done(op.result, op.error)
        except Exception:  # noqa: BLE001 - one callback's bug must not starve the others
            traceback.print_exc()
