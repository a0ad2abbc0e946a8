"""``rapid queue --cluster nats://HOST:PORT``: the async queue and the built-in queues of a
whole cluster, from any machine that reaches NATS.

Theory of operation
-------------------
In a cluster no data dir holds the whole picture: each node's ``events.db`` has the events
it works on and its own counters, and the built-in queues live in the JetStream stream
``RAPID_QUEUES`` (``queue_journal``), served by one owner. So this view reads:

- **per function**, the async figures of every living node (the address in its heartbeat,
  ``membership``; ``GET /metrics``), merged: counters and gauges summed, the oldest
  event's age the largest. A node that does not answer is named on stderr; its figures
  are missing.
- **the built-in queues**: the journal replayed into a temporary copy (read-only for the
  cluster, exactly what the owner acknowledged), each queue's messages counted (received
  and not yet deleted included, as ``ApproximateNumberOfMessages`` plus ``...NotVisible``);
  ``--messages QUEUE`` prints that queue's messages from the same copy.
- **records on their way** to destinations (``RAPID_RECORDS``): one more line.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Sample = tuple[str, dict[str, str], float]
_LARGEST = frozenset({"rapid_async_oldest_event_age_seconds", "rapid_esm_oldest_message_age_seconds",
                      "rapid_esm_iterator_age_seconds"})


@dataclass
class ClusterView:
    samples: list[Sample] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    records_pending: int | None = None  # messages in RAPID_RECORDS
    problems: list[str] = field(default_factory=list)  # nodes that did not answer


def merge(pages: list[list[Sample]]) -> list[Sample]:
    """Samples of several nodes' pages as one: summed by name and labels (the ``node``
    label dropped), the largest for ages. Pure."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for page in pages:
        for name, labels, value in page:
            key = (name, tuple(sorted((k, v) for k, v in labels.items() if k != "node")))
            if key in out and name in _LARGEST:
                out[key] = max(out[key], value)
            else:
                out[key] = out.get(key, 0.0) + value
    return [(name, dict(labels), value) for (name, labels), value in out.items()]


def render(samples: list[Sample]) -> str:
    """Merged samples as Prometheus text (no HELP/TYPE lines)."""
    def labels(ls: dict[str, str]) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(ls.items()))
        return "{" + inner + "}" if inner else ""

    ordered = sorted(samples, key=lambda s: (s[0], sorted(s[1].items())))
    return "".join(f"{name}{labels(ls)} {value:g}\n" for name, ls, value in ordered)


def read(url: str, messages_of: str | None = None) -> ClusterView:
    from rapid.cli.cluster import _read
    from rapid.events import metrics

    view = ClusterView()
    status = asyncio.run(_read(url))
    pages = []
    for node in status["nodes"]:
        if not node.get("alive"):
            continue
        try:
            with urllib.request.urlopen(node["url"].rstrip("/") + "/metrics", timeout=10) as resp:
                pages.append(metrics.parse(resp.read().decode()))
        except (urllib.error.URLError, OSError) as exc:
            view.problems.append(f"node {node['id']} at {node['url']}: {getattr(exc, 'reason', exc)}")
    samples = [s for s in merge(pages) if s[0] != "rapid_queue_messages"]  # a node's own leftovers
    queues, view.messages, view.records_pending = _journal(url, messages_of)
    samples += [("rapid_queue_messages", {"queue": q}, float(n)) for q, n in sorted(queues.items())]
    view.samples = samples
    return view


def _journal(url: str, messages_of: str | None) -> tuple[dict[str, int], list[dict[str, Any]], int | None]:
    """The built-in queues (messages per queue, one queue's messages) from the journal
    replayed into a temporary folder, and the records waiting in ``RAPID_RECORDS``."""
    from rapid.cluster.link import Link
    from rapid.cluster.queue_journal import DB_NAME, STREAM, ClusterJournal
    from rapid.events.jetstream_records import STREAM as RECORDS
    from rapid.queues.sqs_rows import read_messages

    link = Link(url, "rapid queue")
    link.open()
    try:
        try:
            pending: int | None = int(link.call(link.js.stream_info(RECORDS)).state.messages)
        except Exception:  # noqa: BLE001 - no record was ever made
            pending = None
        try:
            link.call(link.js.stream_info(STREAM))
        except Exception:  # noqa: BLE001 - no node has owned the queues yet: none exists
            return {}, [], pending
        with tempfile.TemporaryDirectory(prefix="rapid-queue-") as folder:
            journal = ClusterJournal(folder, link, lambda: False, lambda why: None)
            try:
                journal.replay()
            finally:
                journal.close()
            path = Path(folder, DB_NAME)
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                counts = {name: 0 for (name,) in db.execute("SELECT name FROM sqs_queues")}
                for name, n in db.execute("SELECT queue, COUNT(*) FROM sqs_messages GROUP BY queue"):
                    counts[name] = n
            finally:
                db.close()
            found = read_messages(str(path), messages_of) if messages_of else []
        return counts, found, pending
    finally:
        link.close()
