"""``rapid queue``: the async queue's figures, the same as ``GET /metrics``.

    rapid queue [--data-dir DIR | --url URL | --cluster nats://HOST:PORT] [--prometheus] [--messages QUEUE]

With ``--data-dir`` (or ``RAPID_DATA_DIR``) it reads the queue's database directly, read-only,
whether a daemon is running on it or not (SQLite's WAL lets a reader in beside the writer).
With ``--url`` it asks a running daemon for ``/metrics``. Either way it prints one line per
function (the labelled counters summed), then one per event source mapping (their counters
are kept in the data dir's ``registry.db``: ``rapid.sources.metrics.offline``), or with
``--prometheus`` the metrics page itself.
``--messages QUEUE`` prints a built-in queue's messages (data dir only), one JSON object a
line, shaped like SQS's ``ReceiveMessage`` entries.
With ``--cluster`` (or ``RAPID_CLUSTER`` when neither of the others is given) it shows a
whole cluster on NATS JetStream: every living node's figures merged, and the built-in
queues (and ``--messages``) from their journal (``rapid.cluster.queue_view``); a node's
``--data-dir`` shows only what that node holds, and no built-in queue.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

from rapid.events import metrics
from rapid.events.sqlite_db import DB_NAME, connect, read_messages, read_snapshot


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    q = sub.add_parser(
        "queue", help="show the async queue's figures (as GET /metrics does)",
        description="Show the async invocation queue: depth, oldest event, retries, dead letters, "
                    "destination failures, per function; or a built-in queue's messages.",
    )
    q.add_argument("--data-dir", dest="data_dir", help="the daemon's data dir [RAPID_DATA_DIR]")
    q.add_argument("--url", help="ask a running daemon instead, e.g. http://127.0.0.1:8080")
    q.add_argument("--cluster", metavar="nats://HOST:PORT",
                   help="show a whole cluster: its nodes' figures and its built-in queues [RAPID_CLUSTER]")
    q.add_argument("--prometheus", action="store_true", help="print the metrics page as /metrics serves it")
    q.add_argument("--messages", metavar="QUEUE", help="print a built-in queue's messages, one JSON a line")


def main(ns: argparse.Namespace) -> int:
    cluster = ns.cluster or (None if ns.url or ns.data_dir or os.environ.get("RAPID_DATA_DIR")
                             else os.environ.get("RAPID_CLUSTER"))
    if cluster:
        return _cluster(ns, cluster)
    if ns.url:
        if ns.messages:
            print("rapid: error: --messages reads the data dir; give --data-dir", file=sys.stderr)
            return 2
        try:
            with urllib.request.urlopen(ns.url.rstrip("/") + "/metrics", timeout=10) as resp:
                text = resp.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            print(f"rapid: error: {ns.url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
            return 1
    else:
        data_dir = ns.data_dir or os.environ.get("RAPID_DATA_DIR")
        if not data_dir:
            print("rapid: error: give --data-dir (or RAPID_DATA_DIR), or --url of a running daemon",
                  file=sys.stderr)
            return 2
        path = os.path.join(data_dir, DB_NAME)
        if not os.path.exists(path):
            print(f"rapid: error: {path}: no queue there", file=sys.stderr)
            return 2
        db = connect(path, readonly=True)
        try:
            if ns.messages:
                # the built-in queue (queues.db), then records not yet moved there from events.db
                from rapid.queues.sqs_rows import read_messages as read_queue

                qpath = os.path.join(data_dir, "queues.db")
                found = read_queue(qpath, ns.messages) if os.path.exists(qpath) else []
                seen = {m["MessageId"] for m in found}
                found += [m for m in read_messages(db, ns.messages) if m["MessageId"] not in seen]
                for msg in found:
                    print(json.dumps(msg))
                return 0
            text = metrics.render(read_snapshot(db))
            from rapid.sources import metrics as esm_metrics  # the event source mappings, from registry.db

            text += esm_metrics.offline(data_dir)
        finally:
            db.close()
    sys.stdout.write(text if ns.prometheus else metrics.table(metrics.parse(text)))
    return 0


def _cluster(ns: argparse.Namespace, url: str) -> int:
    try:
        from rapid.cluster.queue_view import read, render
    except ImportError as exc:
        print(f"rapid: error: --cluster needs nats-py (pip install 'rapid[cluster]'): {exc}", file=sys.stderr)
        return 2
    try:
        view = read(url, ns.messages)
    except Exception as exc:  # noqa: BLE001 - NATS unreachable, say: one clear line
        print(f"rapid: error: cannot read the cluster at {url}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    for problem in view.problems:
        print(f"rapid: warning: {problem}; its figures are missing", file=sys.stderr)
    if ns.messages:
        for msg in view.messages:
            print(json.dumps(msg))
        return 0
    if ns.prometheus:
        sys.stdout.write(render(view.samples))
        return 0
    text = metrics.table(view.samples)
    if view.records_pending is not None:
        text += f"\nrecords on their way to destinations (RAPID_RECORDS): {view.records_pending}\n"
    sys.stdout.write(text)
    return 0
