"""Helpers for the cluster tests: rapid nodes on one real nats-server (tests.nats)."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any
from pathlib import Path

from tests.daemon import Daemon, run_server
from tests.nats import Nats, nats_server


@contextlib.contextmanager
def cluster(tmp_path: Path, n: int = 3, extra: tuple[str, ...] = (),
            wrappers: dict[int, tuple[str, ...]] | None = None,
            env: dict[str, str] | None = None) -> Iterator[tuple[Nats, list[Daemon]]]:
    """``n`` nodes (each its own data dir) on one nats-server; node ``i`` is started through
    ``wrappers[i]`` if given (``prlimit ...``)."""
    with nats_server() as nats, contextlib.ExitStack() as stack:
        nodes = [stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / f"n{i}"), *extra],
                                                wrapper=(wrappers or {}).get(i, ()), env=env))
                 for i in range(n)]
        yield nats, nodes


def invoke(node: Daemon, name: str, payload: object = None, qualifier: str | None = None):  # type: ignore[no-untyped-def]
    path = f"/2015-03-31/functions/{name}/invocations" + (f"?Qualifier={qualifier}" if qualifier else "")
    return node.request("POST", path, json.dumps(payload or {}).encode())


def served(node: Daemon, name: str, tag: str, qualifier: str | None = None) -> bool:
    reply = invoke(node, name, {"n": 1}, qualifier)
    return reply.status == 200 and json.loads(reply.body).get("code") == tag


def metric(node: Daemon, name: str) -> float:
    """The sum of a series on the node's /metrics page."""
    text = node.request("GET", "/metrics").body.decode()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


@contextlib.contextmanager
def collector(record: Callable[[Any], None], port: int = 0) -> Iterator[str]:
    """A loopback HTTP server the test's function POSTs JSON to; ``record`` gets each
    decoded body, one at a time. Yields the URL to POST to. ``port``: a given one (0: any free)."""
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                record(data)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
