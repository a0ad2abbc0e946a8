"""``events.db``: its tables, the transaction an operation writes in, and reading it.

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

import os
import sqlite3
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from rapid.events import destinations as dest
from rapid.events.destinations import Response, Target
from rapid.events.store import Delivery, Entry, Finish, Finished, Snapshot

DB_NAME = "events.db"
SCHEMA_VERSION = "1"

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


_encode = msgspec.json.Encoder().encode


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
        message_id, attrs = str(uuid.uuid4()), _encode(dest.sqs_attributes(attributes or {})).decode()
        cur = b.db.execute(
            "INSERT INTO messages(queue, message_id, body, attributes, sent_at) VALUES (?, ?, ?, ?, ?)",
            (target.address, message_id, body, attrs, now),
        )
        assert cur.lastrowid is not None
        out.records.append((cur.lastrowid, target.address, message_id, body, attrs, now))
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


def read_snapshot(db: sqlite3.Connection) -> Snapshot:
    depth, running, oldest = {}, {}, {}
    for function, n, r, first in db.execute(
        "SELECT function, COUNT(*), SUM(state = 1), MIN(enqueued_at) FROM events GROUP BY function"
    ):
        depth[function], running[function], oldest[function] = n, r or 0, first
    counters = {(f, n): v for f, n, v in db.execute("SELECT function, name, value FROM counters")}
    deliveries = dict(db.execute("SELECT function, COUNT(*) FROM deliveries GROUP BY function").fetchall())
    # A record moves from this outbox to the built-in SQS (``queues.db``) under the same
    # message id: imported there, then forgotten here. Counting distinct ids, this file read
    # first, counts a record in the middle of its move once, wherever each read finds it.
    ids: dict[str, set[str]] = {}
    for queue, message_id in db.execute("SELECT queue, message_id FROM messages"):
        ids.setdefault(queue, set()).add(message_id)
    for queue, message_id in _built_in_queue_ids(db):
        ids.setdefault(queue, set()).add(message_id)
    queues = {queue: len(found) for queue, found in ids.items()}
    return Snapshot(time.time(), depth, running, oldest, counters, deliveries, queues)


def _built_in_queue_ids(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(queue, message id) of every message in ``queues.db`` beside this database (rapid.queues)."""
    main = next((row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"), "")
    path = Path(main).with_name("queues.db") if main else None
    if path is None or not path.exists():
        return []
    try:
        other = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            other.execute("PRAGMA busy_timeout=1000")
            return other.execute("SELECT queue, id FROM sqs_messages").fetchall()
        finally:
            other.close()
    except sqlite3.Error:
        return []


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
