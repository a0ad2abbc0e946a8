"""The queues' rows in ``queues.db``: a core's changes as statements, and the core read back."""

from __future__ import annotations

import json
from typing import Any

from rapid.queues.sqs import Service
from rapid.queues.sqs_model import Message, Queue, Sent, receipt_handle
from rapid.queues.store import Journal, Statement

_dumps = json.dumps


def statements(changes: list[tuple[Any, ...]]) -> list[Statement]:
    out: list[Statement] = []
    for change in changes:
        kind = change[0]
        if kind == "queue":
            q: Queue = change[1]
            out.append(("INSERT OR REPLACE INTO sqs_queues(name, fifo, attributes, created, modified, next_seq, tags) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (q.name, int(q.fifo), _dumps(q.attributes), q.created, q.modified, q.next_seq,
                         _dumps(q.tags))))
        elif kind == "drop":
            for table in ("sqs_queues WHERE name", "sqs_messages WHERE queue", "sqs_dedup WHERE queue"):
                out.append((f"DELETE FROM {table} = ?", (change[1],)))
        elif kind == "put":
            q, m = change[1], change[2]
            out.append(("INSERT OR REPLACE INTO sqs_messages(id, queue, seq, body, attributes, system, sent, "
                        "visible_at, receive_count, first_receive, grp, dedup, sequence_number, source_arn) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (m.id, q.name, m.seq, m.body, _dumps(m.attributes), _dumps(m.system), m.sent, m.visible_at,
                         m.receive_count, m.first_receive, m.group, m.dedup, m.sequence_number, m.source_arn)))
            out.append(("UPDATE sqs_queues SET next_seq = ? WHERE name = ?", (q.next_seq, q.name)))
        elif kind == "delete":
            out.append(("DELETE FROM sqs_messages WHERE id = ?", (change[1],)))
        elif kind == "dedup":
            q, key, (expires, sent) = change[1], change[2], change[3]
            answer = [sent.message_id, sent.md5_body, sent.md5_attributes, sent.md5_system, sent.sequence_number]
            out.append(("INSERT OR REPLACE INTO sqs_dedup(queue, key, expires, answer) VALUES (?, ?, ?, ?)",
                        (q.name, key, expires, _dumps(answer))))
        elif kind == "imported":
            out.append(("INSERT OR IGNORE INTO sqs_imported(id) VALUES (?)", (change[1],)))
    return out


def load(journal: Journal, service: Service, now: float) -> set[str]:
    """Fill ``service`` from disk; the inbox ids already imported."""
    for name, fifo, attributes, created, modified, next_seq, tags in journal.load(
            "SELECT name, fifo, attributes, created, modified, next_seq, tags FROM sqs_queues"):
        service.queues[name] = Queue(name, bool(fifo), json.loads(attributes), created, modified, next_seq,
                                     json.loads(tags))
    for row in journal.load("SELECT id, queue, seq, body, attributes, system, sent, visible_at, receive_count, "
                            "first_receive, grp, dedup, sequence_number, source_arn FROM sqs_messages "
                            "ORDER BY queue, seq"):
        q = service.queues.get(row[1])
        if q is None:
            continue
        q.messages[row[0]] = Message(row[0], row[2], row[3], json.loads(row[4]), json.loads(row[5]), row[6], row[7],
                                     row[8], row[9], row[10], row[11], row[12], None, row[13])
    for name, key, expires, answer in journal.load("SELECT queue, key, expires, answer FROM sqs_dedup WHERE expires > ?",
                                                   (now,)):
        q = service.queues.get(name)
        if q is not None:
            q.dedup[key] = (expires, Sent(*json.loads(answer)))
    for q in service.queues.values():
        for m in q.messages.values():
            if m.receive_count:
                m.receipt = receipt_handle(q.name, m)
    return {row[0] for row in journal.load("SELECT id FROM sqs_imported")}


def read_messages(path: str, queue_name: str) -> list[dict[str, Any]]:
    """A queue's messages in ``queues.db``, oldest first, shaped like ReceiveMessage's (for
    ``rapid queue --messages``; reads only, a running daemon is not disturbed)."""
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        rows = db.execute("SELECT id, body, attributes, sent, receive_count FROM sqs_messages WHERE queue = ? "
                          "ORDER BY seq", (queue_name,)).fetchall()
    except sqlite3.Error:
        rows = []
    finally:
        db.close()
    out = []
    for message_id, body, attributes, sent, count in rows:
        msg: dict[str, Any] = {"MessageId": message_id, "Body": body,
                               "Attributes": {"SentTimestamp": str(int(sent * 1000)),
                                              "ApproximateReceiveCount": str(count)}}
        attrs = json.loads(attributes)
        if attrs:
            msg["MessageAttributes"] = attrs
        out.append(msg)
    return out
