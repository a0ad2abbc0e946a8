"""Stopping cluster nodes while their link to NATS is busy, on a real nats-server and real
rapid daemons (loopback only): every node exits 0, and says neither a Python traceback
nor a crash dump ("Fatal Python error", faulthandler's) on stderr.

Once, in one CI run, the last node of a cluster test died with SIGSEGV after "shutting
down". The shutdown is ordered now (``rapid.cluster.node``): a node stops what produces
work on the link's thread and waits for it before it closes the databases that work used
(the events store's, the queues' journal being replayed), and joins the link's thread
before its own loop closes. Each round here makes that window as busy as it gets:

- node 0 owns the built-in queues, and a few thousand changes are journaled;
- many threads keep sending async invocations (a JetStream publish each) and SQS calls
  (forwarded to the owner by request/reply) to node 1, through its shutdown;
- node 0 stops, so node 1 takes the queues over and replays the journal on a worker
  thread, and node 1 is stopped at once, a little later each round: during the replay,
  the publishes, the forwarded calls.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.cluster import metric
from tests.control import ROLE, python_zip, wait_active
from tests.daemon import Daemon, run_server, unique, wait_until
from tests.nats import nats_server
from tests.test_cluster_queues import aws

pytestmark = pytest.mark.slow

ENV = {"RAPID_SHUTDOWN_TIMEOUT": "2"}
ROUNDS = 4
HANDLER = "def handler(event, context):\n    return event\n"


def _said_cleanly(daemon: Daemon) -> list[str]:
    """The lines of a stopped daemon's stderr that a clean exit never has."""
    # The stderr pump thread (tests.daemon) reads until EOF: wait for it, so no line is missed.
    wait_until(lambda: not any(t.is_alive() and getattr(t, "_args", (None, None))[1:2] == (daemon.stderr,)
                               for t in threading.enumerate()), timeout=10, what="the daemon's stderr read")
    bad = ("Traceback (most recent call last)", "Fatal Python error", "Exception in callback",
           "Task exception was never retrieved", "never awaited", "Segmentation fault")
    return [line for line in daemon.stderr if any(b in line for b in bad)]


def _load(node: Daemon, function: str, queue_url: str, stop: threading.Event, counts: dict[str, int]) -> None:
    """Until ``stop`` (or the node is gone): async invocations and SQS sends to ``node``."""
    sqs = aws(node, "sqs")
    i = 0
    while not stop.is_set():
        i += 1
        try:
            if i % 2:
                reply = node.request("POST", f"/2015-03-31/functions/{function}/invocations",
                                     json.dumps({"i": i}).encode(), {"X-Amz-Invocation-Type": "Event"}, timeout=10)
                counts[str(reply.status)] = counts.get(str(reply.status), 0) + 1
            else:
                sqs.send_message(QueueUrl=queue_url, MessageBody=f"m{i}")
                counts["sqs"] = counts.get("sqs", 0) + 1
        except Exception:  # noqa: BLE001 - the node is stopping, or gone: that is the point
            counts["refused"] = counts.get("refused", 0) + 1
            if node.proc.poll() is not None:
                return
            time.sleep(0.01)


def test_nodes_stopped_while_their_link_is_busy_exit_cleanly(tmp_path: Path) -> None:
    with nats_server() as nats:
        for r in range(ROUNDS):
            def node(i: int) -> object:
                return run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / f"r{r}n{i}")], env=ENV)

            with node(0) as first:
                wait_until(lambda: metric(first, "rapid_cluster_queues_owner") == 1, timeout=30,
                           what="node 0 to own the queues")
                with node(1) as second:
                    lam = aws(second, "lambda")
                    name = f"busy-{unique()}"
                    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                                        Code={"ZipFile": python_zip(HANDLER)}, Timeout=3)
                    wait_active(lam, name)
                    sqs = aws(second, "sqs")
                    url = sqs.create_queue(QueueName=f"busy-{r}-{unique()}")["QueueUrl"]
                    for start in range(0, 2000, 10):  # journaled by node 0: node 1 replays them
                        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(k), "MessageBody": f"b{k}"}
                                                                      for k in range(start, start + 10)])
                    stop = threading.Event()
                    counts: dict[str, int] = {}
                    threads = [threading.Thread(target=_load, args=(second, name, url, stop, counts), daemon=True)
                               for _ in range(8)]
                    for t in threads:
                        t.start()
                    wait_until(lambda: counts.get("202", 0) >= 50, timeout=30, what="async invocations accepted")
                    first.stop()  # node 1 takes the queues over: a replay on a worker thread ...
                    time.sleep(0.3 * r)  # ... and is stopped during it (later each round)
                    second.stop()
                    stop.set()
                    for t in threads:
                        t.join(30)
                    assert counts.get("202", 0) >= 50, counts
                assert _said_cleanly(second) == [], second.stderr[-40:]
            assert _said_cleanly(first) == [], first.stderr[-40:]
