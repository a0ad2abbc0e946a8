"""``queues.db``: the built-in queues and streams on disk, and the one thread that writes it.

SQLite in the data dir, ``journal_mode=WAL``, ``synchronous=FULL``. The cores change state
in memory and list their changes; the edge turns them into statements (``sqs_rows``,
``kinesis_rows``) and hands them to ``Journal.submit``. The writer thread applies every
submission queued since its last commit in one transaction (group commit: under load many
answers share one fsync) and calls each submission's ``done`` on the event loop once the
commit is on disk; only then does the edge answer, so an acknowledged SendMessage or
PutRecord survives ``kill -9``. On start, ``load`` reads everything back.

The inbox: asynchronous invocations deliver records to an ``arn:aws:sqs:...`` destination
inside their own transaction in ``events.db`` (table ``messages``). When idle the writer
looks there and hands new rows to ``on_inbox`` on the loop, which imports them as messages
of the named queue; once that import is committed, ``forget_inbox`` deletes the rows from
``events.db``. An id imported but not yet forgotten (a crash between the two commits) is
remembered in ``sqs_imported`` so it is never imported twice.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DB_NAME = "queues.db"
INBOX_POLL = 0.2  # seconds between looks at events.db's delivered messages when idle

Statement = tuple[str, Sequence[Any]]
Done = Callable[[BaseException | None], None]

SCHEMA = """
CREATE TABLE IF NOT EXISTS sqs_queues(name TEXT PRIMARY KEY, fifo INTEGER NOT NULL, attributes TEXT NOT NULL,
    created REAL NOT NULL, modified REAL NOT NULL, next_seq INTEGER NOT NULL, tags TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS sqs_messages(id TEXT PRIMARY KEY, queue TEXT NOT NULL, seq INTEGER NOT NULL,
    body TEXT NOT NULL, attributes TEXT NOT NULL, system TEXT NOT NULL, sent REAL NOT NULL,
    visible_at REAL NOT NULL, receive_count INTEGER NOT NULL, first_receive REAL, grp TEXT, dedup TEXT,
    sequence_number TEXT, source_arn TEXT);
CREATE INDEX IF NOT EXISTS sqs_messages_by_queue ON sqs_messages(queue, seq);
CREATE TABLE IF NOT EXISTS sqs_dedup(queue TEXT NOT NULL, key TEXT NOT NULL, expires REAL NOT NULL,
    answer TEXT NOT NULL, PRIMARY KEY(queue, key));
CREATE TABLE IF NOT EXISTS sqs_imported(id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS kinesis_streams(name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kinesis_records(stream TEXT NOT NULL, shard INTEGER NOT NULL, seq TEXT NOT NULL,
    partition_key TEXT NOT NULL, data BLOB NOT NULL, arrival REAL NOT NULL, PRIMARY KEY(stream, shard, seq));
"""


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    db = sqlite3.connect(os.fspath(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    return db


_STOP = object()


class Journal:
    """The writer of ``queues.db`` (see the module's docstring)."""

    def __init__(self, data_dir: str | os.PathLike[str], name: str = DB_NAME) -> None:
        self.path = Path(data_dir) / name
        self.events_path = Path(data_dir) / "events.db"
        self.db = connect(self.path)
        # one transaction: one WAL sync for the whole schema instead of one per statement
        self.db.executescript("BEGIN;" + SCHEMA + "COMMIT;")
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_inbox: Callable[[list[tuple[Any, ...]]], None] | None = None
        self._inbox_seen = 0  # the highest events.db message row handed over
        self._events: sqlite3.Connection | None = None  # read-only, the writer thread's
        self.commits = 0

    def __repr__(self) -> str:
        return f"<Journal {self.path} commits={self.commits}>"

    def load(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read at start-up, before the writer runs."""
        return self.db.execute(sql, params).fetchall()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="rapid-queues-writer", daemon=True)
        self._thread.start()

    def submit(self, statements: list[Statement], done: Done) -> None:
        self._queue.put((statements, done))

    def forget_inbox(self, rows: list[int], ids: list[str]) -> None:
        self._queue.put(("forget", rows, ids))

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        self.db.close()

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        stop = False
        looked = time.monotonic()
        while not stop:
            if time.monotonic() - looked >= INBOX_POLL:  # idle or busy, the inbox is looked at
                self._look_in_inbox()
                looked = time.monotonic()
            try:
                first = self._queue.get(timeout=INBOX_POLL)
            except queue.Empty:
                continue
            group = [first]
            while len(group) < 1024:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in group:
                stop = True
                group = [g for g in group if g is not _STOP]
            self._apply(group)
        if self._events is not None:
            self._events.close()
            self._events = None

    def _apply(self, group: list[Any]) -> None:
        db = self.db
        forget = [(item[1], item[2]) for item in group if item[0] == "forget"]
        ops: list[tuple[list[Statement], Done]] = [item for item in group if item[0] != "forget"]
        results: list[tuple[Done, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for statements, done in ops:
                db.execute("SAVEPOINT op")
                try:
                    for sql, params in statements:
                        db.execute(sql, params)
                    db.execute("RELEASE op")
                    results.append((done, None))
                except sqlite3.Error as failed:  # this operation alone is undone
                    db.execute("ROLLBACK TO op")
                    db.execute("RELEASE op")
                    results.append((done, failed))
            db.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:  # the whole group is lost: every caller hears so
            if db.in_transaction:
                db.execute("ROLLBACK")
            results = [(done, exc) for _, done in ops]
        assert self._loop is not None
        for done, problem in results:
            self._loop.call_soon_threadsafe(done, problem)
        for rows, ids in forget:
            self._forget(rows, ids)

    def _forget(self, rows: list[int], ids: list[str]) -> None:
        try:
            events = sqlite3.connect(os.fspath(self.events_path), isolation_level=None)
            try:
                events.execute("PRAGMA busy_timeout=5000")
                events.executemany("DELETE FROM messages WHERE id = ?", [(r,) for r in rows])
            finally:
                events.close()
            self.db.executemany("DELETE FROM sqs_imported WHERE id = ?", [(i,) for i in ids])
        except sqlite3.Error:
            pass  # the rows are looked at again later and skipped as already imported

    def _look_in_inbox(self) -> None:
        if self.on_inbox is None or not self.events_path.exists():
            return
        try:
            if self._events is None:
                self._events = sqlite3.connect(f"file:{os.fspath(self.events_path)}?mode=ro", uri=True)
                self._events.execute("PRAGMA busy_timeout=1000")
            rows = self._events.execute(
                "SELECT id, queue, message_id, body, attributes, sent_at FROM messages WHERE id > ? "
                "ORDER BY id LIMIT 1000", (self._inbox_seen,)).fetchall()
        except sqlite3.Error:
            return  # no messages table yet, or busy: next time
        if rows:
            self._inbox_seen = rows[-1][0]
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self.on_inbox, rows)
