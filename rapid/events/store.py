"""The durable queue behind asynchronous invocation: SQLite in WAL mode, one writer thread.

Interface
---------
The dispatcher speaks to an ``EventStore`` in the terms of the domain (enqueue an event,
mark a batch started, reschedule one, finish one with its deliveries, ...). Each call is
asynchronous: it returns at once and calls ``done(result, error)`` on the event loop once
the change is durable. A distributed backend (NATS JetStream: ack-wait, max-deliver and
back-off map onto the same calls) can implement the same interface later.

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

An event is deleted only in the transaction that makes its outcome durable: the internal
deliveries (a built-in queue message, an event for a destination function) are rows of the
same transaction; a file destination is appended and fsync'd before that transaction
commits; an HTTP destination becomes an outbox row (``deliveries``) in it.

Tables: ``events`` (the queue: payload, counts, state 0 queued / 1 running, the last
attempt's answer), ``deliveries`` (outbox for file and HTTP targets), ``messages``
(built-in queues), ``configs`` (event-invoke-configs set through the API or the TOML file),
``counters`` (the metrics' counters, durable so ``rapid queue`` can read them offline).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import sqlite3
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

from rapid.events import destinations as dest
from rapid.events.destinations import Response, Target

DB_NAME = "events.db"
LOCK_NAME = "events.lock"
MAX_BATCH = 4096
SCHEMA_VERSION = "1"

Done = Callable[[Any, BaseException | None], None]


class StoreError(Exception):
    """The queue cannot be opened (a start-up error: one line, exit status 2)."""


class StoreBusy(StoreError):
    """Another daemon holds the data dir."""


# -- what the store holds -----------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Entry:
    """A queued event as the dispatcher holds it in memory: everything but the payload."""

    id: int
    request_id: str
    function: str
    qualifier: str  # as invoked ("" for an unqualified name)
    trace_id: str
    enqueued_at: float  # epoch seconds: the event's age counts from here
    due_at: float
    attempts: int = 0  # approximateInvokeCount: every dispatch, throttled ones included
    errors: int = 0  # function errors so far
    throttles: int = 0  # consecutive throttles / system errors

    def __lt__(self, other: Entry) -> bool:  # heap order: due first, then accepted first
        return (self.due_at, self.id) < (other.due_at, other.id)


@dataclass(slots=True, eq=False)
class Delivery:
    """An outbox row: a record or dead letter on its way to a file or an HTTP endpoint."""

    id: int
    function: str
    target: str  # file:// or http(s):// as configured
    body: bytes
    created_at: float
    due_at: float
    expires_at: float
    tries: int = 0

    def __lt__(self, other: Delivery) -> bool:
        return (self.due_at, self.id) < (other.due_at, other.id)


@dataclass(slots=True)
class Finish:
    """Complete an event: build its record, deliver, delete it, in one transaction."""

    entry: Entry
    condition: str  # Success | RetriesExhausted | EventAgeExceeded
    response: Response | None  # None: the last answer stored with the event (if any)
    payload: bytes | None  # None: read it from the event's row
    function_arn: str  # qualified, for the record
    version: str
    destination: Target | None
    dead_letter: Target | None  # only on failure
    delivery_window: float  # seconds an HTTP/file delivery keeps being retried
    now: float


@dataclass(slots=True)
class Finished:
    new_entries: list[Entry] = field(default_factory=list)  # events for destination functions
    deliveries: list[Delivery] = field(default_factory=list)  # outbox rows to work on
    problems: list[str] = field(default_factory=list)  # deliveries that failed, for the log


@dataclass(slots=True)
class Recovery:
    entries: list[Entry]
    deliveries: list[Delivery]
    configs: dict[tuple[str, str], dict[str, Any]]
    redelivered: dict[str, int]  # per function: events that were running when the last daemon died


class EventStore(Protocol):
    def open(self) -> Recovery: ...
    def start(self, loop: asyncio.AbstractEventLoop) -> None: ...
    def enqueue(self, entry: Entry, payload: bytes, running: bool, done: Done) -> None: ...
    def mark_started(self, entries: list[Entry], done: Done) -> None: ...
    def reschedule(self, entry: Entry, due_at: float, reason: str, response: Response | None, done: Done) -> None: ...
    def finish(self, plan: Finish, done: Done) -> None: ...
    def release_running(self, cut: dict[str, int], done: Done) -> None: ...
    def delivery_done(self, d: Delivery, done: Done) -> None: ...
    def delivery_failed(self, d: Delivery, drop: bool, done: Done) -> None: ...
    def deliver_file(self, d: Delivery, done: Done) -> None: ...
    def put_config(self, function: str, qualifier: str, body: dict[str, Any] | None, done: Done) -> None: ...
    def snapshot(self, done: Done) -> None: ...
    def close(self) -> None: ...


# -- SQLite -------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    payload BLOB NOT NULL,
    enqueued_at REAL NOT NULL,
    due_at REAL NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    throttles INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    last_body BLOB
);
CREATE INDEX IF NOT EXISTS events_by_function ON events(function, enqueued_at);
CREATE TABLE IF NOT EXISTS deliveries(
    id INTEGER PRIMARY KEY,
    function TEXT NOT NULL,
    target TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    due_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages(
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL,
    attributes TEXT NOT NULL,
    sent_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages(queue, id);
CREATE TABLE IF NOT EXISTS configs(
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY(function, qualifier)
);
CREATE TABLE IF NOT EXISTS counters(
    function TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY(function, name)
);
"""


def connect(path: str | os.PathLike[str], *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        db = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True, isolation_level=None,
                             check_same_thread=False)
    else:
        db = sqlite3.connect(os.fspath(path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    return db


class _Op:
    """One operation for the writer: ``apply`` runs in the writer thread inside the group's
    transaction; ``done`` gets its result on the event loop after the commit."""

    __slots__ = ("apply", "done", "error", "result")

    def __init__(self, apply: Callable[[_Batch], Any], done: Done) -> None:
        self.apply = apply
        self.done = done
        self.result: Any = None
        self.error: BaseException | None = None


class _Batch:
    """What the operations of one group share: the cursor, counters, files to fsync."""

    __slots__ = ("counters", "db", "files", "op_counters")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.counters: Counter[tuple[str, str]] = Counter()  # the group's, written at commit
        self.op_counters: Counter[tuple[str, str]] = Counter()  # the current operation's
        self.files: dict[str, tuple[int, bool]] = {}  # path -> (fd, created)

    def count(self, function: str, name: str, n: int = 1) -> None:
        self.op_counters[(function, name)] += n

    def append(self, path: str, line: bytes) -> None:
        """Append ``line`` to ``path`` (fsync'd before the group commits)."""
        entry = self.files.get(path)
        if entry is None:
            created = not os.path.exists(path)
            if created:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                # A line torn by a power cut must not swallow the next record.
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    os.write(fd, b"\n")
            except OSError:
                os.close(fd)
                raise
            entry = self.files[path] = (fd, created)
        data = line + b"\n"
        view = memoryview(data)
        while view:
            n = os.write(entry[0], view)
            view = view[n:]

    def sync_files(self) -> None:
        try:
            for path, (fd, created) in self.files.items():
                os.fsync(fd)
                if created:
                    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
                    try:
                        os.fsync(dfd)
                    finally:
                        os.close(dfd)
        finally:
            for fd, _ in self.files.values():
                os.close(fd)
            self.files.clear()


_STOP = object()
_encode = msgspec.json.Encoder().encode


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
        db.executescript(_SCHEMA)
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


def _bump(db: sqlite3.Connection, function: str, name: str, n: int) -> None:
    db.execute(
        "INSERT INTO counters(function, name, value) VALUES (?, ?, ?) "
        "ON CONFLICT(function, name) DO UPDATE SET value = value + excluded.value",
        (function, name, n),
    )


def _insert_event(b: _Batch, entry: Entry, payload: bytes, running: bool) -> int:
    cur = b.db.execute(
        "INSERT INTO events(request_id, function, qualifier, trace_id, payload, enqueued_at, due_at, state, "
        "attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (entry.request_id, entry.function, entry.qualifier, entry.trace_id, payload, entry.enqueued_at,
         entry.due_at, 1 if running else 0, 1 if running else 0),
    )
    b.count(entry.function, "accepted")
    assert cur.lastrowid is not None
    return cur.lastrowid


def _finish(b: _Batch, plan: Finish) -> Finished:
    e = plan.entry
    db = b.db
    out = Finished()
    payload, response = plan.payload, plan.response
    if payload is None or (response is None and plan.condition != "Success"):
        row = db.execute("SELECT payload, last_status, last_error, last_body FROM events WHERE id = ?",
                         (e.id,)).fetchone()
        if row is None:
            return out  # already finished (a duplicate completion): nothing to do
        if payload is None:
            payload = row[0]
        if response is None and row[1] is not None:
            response = Response(row[1], row[3] or b"", row[2])
    failed = plan.condition != "Success"
    b.count(e.function, "succeeded" if not failed else f"failed:{plan.condition}")
    sends: list[tuple[Target, bytes, dict[str, Any] | None, str]] = []
    if plan.destination is not None:
        rec = dest.record(
            request_id=e.request_id, function_arn=plan.function_arn, condition=plan.condition,
            invoke_count=e.attempts, payload=payload, response=response, version=plan.version, now=plan.now,
        )
        sends.append((plan.destination, rec, None, "destination"))
    if failed and plan.dead_letter is not None:
        attributes = dest.dead_letter_attributes(e.request_id, response)
        if plan.dead_letter.kind == "sqs":
            sends.append((plan.dead_letter, payload, attributes, "dead-letter"))
        else:
            sends.append((plan.dead_letter, dest.wrapped_dead_letter(payload, attributes), None, "dead-letter"))
        b.count(e.function, "dead_letters")
    for target, body, attrs, role in sends:
        problem = _deliver(b, plan, target, body, attrs, out)
        if problem is None:
            continue
        b.count(e.function, "destination_failures")
        b.count(e.function, "destination_dropped")
        out.problems.append(f"{role} {target.arn} for {e.request_id}: {problem}")
    db.execute("DELETE FROM events WHERE id = ?", (e.id,))
    return out


def _deliver(
    b: _Batch, plan: Finish, target: Target, body: bytes, attributes: dict[str, Any] | None, out: Finished
) -> str | None:
    """Deliver one record or dead letter within the finishing transaction; the problem (the
    record is then dropped, as AWS drops a record it cannot deliver) or None."""
    e, now = plan.entry, plan.now
    if target.kind == "sqs":
        if len(body) > dest.MAX_INTERNAL_RECORD:
            return f"message of {len(body)} bytes is over the 1 MB limit"
        b.db.execute(
            "INSERT INTO messages(queue, message_id, body, attributes, sent_at) VALUES (?, ?, ?, ?, ?)",
            (target.address, str(uuid.uuid4()), body, _encode(dest.sqs_attributes(attributes or {})).decode(), now),
        )
        b.count(e.function, "destination_delivered")
        return None
    if target.kind == "lambda":
        if len(body) > dest.MAX_INTERNAL_RECORD:
            return f"payload of {len(body)} bytes is over the 1 MB limit for an asynchronous invoke"
        from rapid.core.naming import request_id, trace_id

        new = Entry(0, request_id(), target.address, "", trace_id(now), now, now)
        new.id = _insert_event(b, new, body, False)
        out.new_entries.append(new)
        b.count(e.function, "destination_delivered")
        return None
    if target.kind == "file":
        try:
            b.append(target.address, body)
            b.count(e.function, "destination_delivered")
            return None
        except OSError as exc:
            problem = f"{target.address}: {exc.strerror or exc}"
            b.count(e.function, "destination_failures")
            out.problems.append(f"{target.arn} for {e.request_id}: {problem} (will retry)")
    # HTTP, or a file that could not be written now: an outbox row, retried with backoff.
    cur = b.db.execute(
        "INSERT INTO deliveries(function, target, body, created_at, due_at, expires_at, tries) "
        "VALUES (?, ?, ?, ?, ?, ?, 0)",
        (e.function, target.arn, body, now, now, now + plan.delivery_window),
    )
    assert cur.lastrowid is not None
    out.deliveries.append(Delivery(cur.lastrowid, e.function, target.arn, body, now, now, now + plan.delivery_window))
    return None


# -- reading ------------------------------------------------------------------------------


@dataclass(slots=True)
class Snapshot:
    now: float
    depth: dict[str, int]
    running: dict[str, int]
    oldest: dict[str, float]  # function -> enqueued_at of its oldest event
    counters: dict[tuple[str, str], int]
    deliveries: dict[str, int]
    queues: dict[str, int]


def read_snapshot(db: sqlite3.Connection) -> Snapshot:
    depth, running, oldest = {}, {}, {}
    for function, n, r, first in db.execute(
        "SELECT function, COUNT(*), SUM(state = 1), MIN(enqueued_at) FROM events GROUP BY function"
    ):
        depth[function], running[function], oldest[function] = n, r or 0, first
    counters = {(f, n): v for f, n, v in db.execute("SELECT function, name, value FROM counters")}
    deliveries = dict(db.execute("SELECT function, COUNT(*) FROM deliveries GROUP BY function").fetchall())
    queues = dict(db.execute("SELECT queue, COUNT(*) FROM messages GROUP BY queue").fetchall())
    return Snapshot(time.time(), depth, running, oldest, counters, deliveries, queues)


def read_messages(db: sqlite3.Connection, queue_name: str) -> list[dict[str, Any]]:
    """A built-in queue's messages, oldest first, shaped like SQS's ReceiveMessage."""
    out = []
    for message_id, body, attributes, sent_at in db.execute(
        "SELECT message_id, body, attributes, sent_at FROM messages WHERE queue = ? ORDER BY id", (queue_name,)
    ):
        msg: dict[str, Any] = {
            "MessageId": message_id,
            "Body": body.decode("utf-8", "replace"),
            "Attributes": {"SentTimestamp": str(int(sent_at * 1000))},
        }
        attrs = msgspec.json.decode(attributes)
        if attrs:
            msg["MessageAttributes"] = attrs
        out.append(msg)
    return out
