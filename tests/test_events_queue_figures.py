"""A record on its way from the async outbox (``events.db``) to the built-in SQS
(``queues.db``) is counted once in ``rapid_queue_messages``, wherever the move is."""

from __future__ import annotations

from pathlib import Path

from rapid.events import sqlite_db
from rapid.queues import store as queues_store


def _outbox(path: Path, *message_ids: str):
    db = sqlite_db.connect(path / sqlite_db.DB_NAME)
    db.executescript(sqlite_db._SCHEMA)
    for mid in message_ids:
        db.execute("INSERT INTO messages(queue, message_id, body, attributes, sent_at) VALUES ('dlq', ?, x'7b7d', '{}', 0)",
                   (mid,))
    return db


def _imported(path: Path, *message_ids: str) -> None:
    db = sqlite_db.connect(path / queues_store.DB_NAME)
    db.executescript(queues_store.SCHEMA)
    for seq, mid in enumerate(message_ids):
        db.execute("INSERT INTO sqs_messages(id, queue, seq, body, attributes, system, sent, visible_at, receive_count)"
                   " VALUES (?, 'dlq', ?, '{}', '{}', '{}', 0, 0, 0)", (mid, seq))
        db.execute("INSERT OR IGNORE INTO sqs_imported(id) VALUES (?)", (mid,))
    db.close()


def test_a_record_imported_but_not_yet_forgotten_counts_once(tmp_path: Path) -> None:
    events = _outbox(tmp_path, "m-1", "m-2")  # m-1 is mid-move: in both files; m-2 waits in the outbox
    _imported(tmp_path, "m-1", "m-0")  # m-0 moved long ago
    assert sqlite_db.read_snapshot(events).queues == {"dlq": 3}


def test_the_outbox_alone_and_the_queue_alone(tmp_path: Path) -> None:
    events = _outbox(tmp_path, "m-1")
    assert sqlite_db.read_snapshot(events).queues == {"dlq": 1}
    _imported(tmp_path, "m-1")
    events.execute("DELETE FROM messages")
    assert sqlite_db.read_snapshot(events).queues == {"dlq": 1}
