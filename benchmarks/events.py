"""Asynchronous invocation benchmark: durable accepts per second, and events per second end
to end.

    python -m benchmarks.events [-n 5000] [--clients 16] [--payload 100] [--rounds 1]
                                [--async-concurrency N] [--store]

Three figures, each a separate daemon (``rapid serve`` with its own ``--data-dir``):

1. **accept**: ``--clients`` keep-alive clients send ``-n`` ``Event`` invokes as fast as the
   daemon answers them 202; every 202 means the event is committed (WAL, fsync). The
   function never gets past init (its bootstrap sleeps), so the dispatcher stays out of the
   way and the figure is the durable enqueue alone. Reported: accepts/s, p50/p99 latency,
   daemon CPU per accept.
2. **end to end**: the same load on an echo function (``benchmarks/echo_bootstrap.py``); the
   clock stops when ``/metrics`` shows every event succeeded. Reported: events/s completed,
   accepts/s while processing, daemon and runtime CPU per event.
3. the same with an ``on_success`` file destination (one record appended and fsync'd per
   event, in the same group commits).

``--store`` adds the measurement behind the store's design, in-process, no HTTP: ``-n``
events enqueued by ``--clients`` concurrent producers on one event loop, committed (a) one
transaction per event on the loop thread, (b) one transaction per loop tick on the loop
thread, (c) by ``SQLiteStore``'s writer thread with group commit; with the longest time the
loop was blocked, which is what every other request (sync invokes, the Runtime API) waits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import cpu_seconds, describe

HERE = Path(__file__).resolve().parent
ECHO = HERE / "echo_bootstrap.py"
PATH = "/2015-03-31/functions/{name}/invocations"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid``'s descendants (the runtimes), from /proc."""
    total = 0.0
    try:
        kids = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(x) for x in f.read().split())
    except OSError:
        return 0.0
    for kid in kids:
        try:
            total += cpu_seconds(kid) + tree_cpu(kid)
        except OSError:
            pass
    return total


class Daemon:
    def __init__(self, workdir: Path, functions: dict[str, Path], toml_extra: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.data = workdir / "data"
        toml = workdir / "rapid.toml"
        body = f'data_dir = "{self.data}"\nfreeze = false\n'
        for name, folder in functions.items():
            body += f'[functions.{name}]\npath = "{folder}"\ntimeout = 60\n'
            if name == "echo" and toml_extra:
                body += toml_extra + "\n"
        toml.write_text(body)
        argv = [sys.executable, "-m", "rapid", "serve", "--port", str(self.port), "--config", str(toml)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, **env}, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"rapid did not start ({self.proc.poll()})")
                time.sleep(0.05)

    def metrics(self) -> dict[str, float]:
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10).read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name = line.split("{", 1)[0]
                out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


async def load(port: int, name: str, n: int, clients: int, payload: bytes) -> list[float]:
    """``n`` Event invokes over ``clients`` keep-alive connections; the latencies."""
    remaining = [n]
    latencies: list[float] = []
    head = (f"POST {PATH.format(name=name)} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Invocation-Type: Event\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining[0] > 0:
                remaining[0] -= 1
                t = time.perf_counter()
                writer.write(head)
                status_head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in status_head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                if not status_head.startswith(b"HTTP/1.1 202"):
                    raise SystemExit(f"not accepted: {status_head[:80]!r}")
                latencies.append(time.perf_counter() - t)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def function_dirs(workdir: Path) -> dict[str, Path]:
    echo = workdir / "echo"
    echo.mkdir()
    (echo / "bootstrap").write_text(f"#!{sys.executable}\n" + ECHO.read_text())
    (echo / "bootstrap").chmod(0o755)
    hang = workdir / "hang"
    hang.mkdir()
    (hang / "bootstrap").write_text("#!/bin/sh\nexec sleep 3600\n")
    (hang / "bootstrap").chmod(0o755)
    return {"echo": echo, "hang": hang}


def run_accept(args: argparse.Namespace, payload: bytes, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="rapid-bench-events-") as tmp:
        d = Daemon(Path(tmp), function_dirs(Path(tmp)), "", env)
        try:
            asyncio.run(load(d.port, "hang", min(500, args.n), args.clients, payload))  # warm
            cpu0 = cpu_seconds(d.proc.pid)
            t0 = time.perf_counter()
            lat = asyncio.run(load(d.port, "hang", args.n, args.clients, payload))
            wall = time.perf_counter() - t0
            cpu = cpu_seconds(d.proc.pid) - cpu0
            depth = d.metrics().get("rapid_async_queue_depth", 0)
        finally:
            d.stop()
    lat.sort()
    assert depth >= args.n, f"only {depth} events on disk"
    return {"accepts_per_s": args.n / wall, "p50_ms": lat[len(lat) // 2] * 1e3,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1e3, "host_cpu_us_per_event": cpu / args.n * 1e6}


def run_end_to_end(args: argparse.Namespace, payload: bytes, env: dict[str, str], destination: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="rapid-bench-events-") as tmp:
        extra = f'on_success = "file://{tmp}/records.ndjson"' if destination else ""
        d = Daemon(Path(tmp), function_dirs(Path(tmp)), extra, env)
        try:
            warm = min(200, args.n)
            asyncio.run(load(d.port, "echo", warm, args.clients, payload))
            while d.metrics().get("rapid_async_succeeded_total", 0) < warm:
                time.sleep(0.05)
            cpu0, rt0 = cpu_seconds(d.proc.pid), tree_cpu(d.proc.pid)
            t0 = time.perf_counter()
            asyncio.run(load(d.port, "echo", args.n, args.clients, payload))
            accepted = time.perf_counter() - t0
            while d.metrics().get("rapid_async_succeeded_total", 0) < warm + args.n:
                time.sleep(0.02)
            wall = time.perf_counter() - t0
            cpu, rt = cpu_seconds(d.proc.pid) - cpu0, tree_cpu(d.proc.pid) - rt0
            m = d.metrics()
            if destination:
                lines = (Path(tmp) / "records.ndjson").read_text().count("\n")
                assert lines == warm + args.n, f"{lines} records"
        finally:
            d.stop()
    assert m.get("rapid_async_queue_depth", 0) == 0
    return {"events_per_s": args.n / wall, "accepts_per_s_while_running": args.n / accepted,
            "host_cpu_us_per_event": cpu / args.n * 1e6, "runtime_cpu_us_per_event": rt / args.n * 1e6}


# -- the store alone: why a writer thread -------------------------------------------------

async def store_inline(path: str, n: int, producers: int, payload: bytes, per_tick: bool) -> tuple[float, float]:
    import sqlite3

    from rapid.events.sqlite_db import _SCHEMA, connect

    db = connect(path)
    db.executescript(_SCHEMA)
    loop = asyncio.get_running_loop()
    pending: list[tuple[asyncio.Future[None], tuple[object, ...]]] = []
    stall = [0.0]
    sql = ("INSERT INTO events(request_id, function, qualifier, trace_id, payload, enqueued_at, due_at) "
           "VALUES (?, 'f', '', 't', ?, ?, ?)")

    def flush() -> None:
        t = time.perf_counter()
        batch = list(pending)
        pending.clear()
        db.execute("BEGIN IMMEDIATE")
        for _, row in batch:
            db.execute(sql, row)
        db.execute("COMMIT")
        stall[0] = max(stall[0], time.perf_counter() - t)
        for fut, _ in batch:
            fut.set_result(None)

    async def one(i: int) -> None:
        row = (str(i), payload, time.time(), time.time())
        if per_tick:
            fut = loop.create_future()
            if not pending:
                loop.call_soon(flush)
            pending.append((fut, row))
            await fut
        else:
            t = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute(sql, row)
            db.execute("COMMIT")
            stall[0] = max(stall[0], time.perf_counter() - t)
            await asyncio.sleep(0)

    t0 = time.perf_counter()
    await _produce(one, n, producers)
    wall = time.perf_counter() - t0
    db.close()
    del sqlite3
    return n / wall, stall[0]


async def store_threaded(path: str, n: int, producers: int, payload: bytes) -> tuple[float, float, float]:
    from rapid.events.sqlite_store import SQLiteStore
    from rapid.events.store import Entry

    store = SQLiteStore(path)
    store.open()
    loop = asyncio.get_running_loop()
    store.start(loop)
    stall = [0.0]

    async def one(i: int) -> None:
        fut = loop.create_future()
        t = time.perf_counter()
        now = time.time()
        store.enqueue(Entry(0, str(i), "f", "", "t", now, now), payload, False,
                      lambda r, e: fut.set_result(None))
        stall[0] = max(stall[0], time.perf_counter() - t)
        await fut

    t0 = time.perf_counter()
    await _produce(one, n, producers)
    wall = time.perf_counter() - t0
    per_commit = store.operations / max(1, store.batches)
    store.close()
    return n / wall, stall[0], per_commit


async def _produce(one, n: int, producers: int) -> None:  # type: ignore[no-untyped-def]
    counter = iter(range(n))

    async def producer() -> None:
        for i in counter:
            await one(i)

    await asyncio.gather(*(producer() for _ in range(producers)))


def run_store(args: argparse.Namespace, payload: bytes) -> None:
    print(f"\nstore alone: {args.n} events of {len(payload)} B from {args.clients} concurrent producers, "
          "one event loop (uvloop), WAL + synchronous=FULL")
    import uvloop

    for label, make in (
        ("(a) one commit per event, on the loop", lambda p: store_inline(p, args.n, args.clients, payload, False)),
        ("(b) one commit per loop tick, on the loop", lambda p: store_inline(p, args.n, args.clients, payload, True)),
        ("(c) writer thread, group commit", lambda p: store_threaded(p, args.n, args.clients, payload)),
    ):
        tmp = tempfile.mkdtemp(prefix="rapid-bench-store-")
        try:
            path = tmp if label.startswith("(c)") else os.path.join(tmp, "events.db")
            out = uvloop.run(make(path))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        extra = f", {out[2]:.1f} events per commit" if len(out) > 2 else ""
        print(f"  {label:<44} {out[0]:>9,.0f} events/s, longest loop stall {out[1] * 1e3:6.2f} ms{extra}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=5000, help="events per measurement (default 5000)")
    p.add_argument("--clients", type=int, default=16, help="concurrent keep-alive clients (default 16)")
    p.add_argument("--payload", type=int, default=100, help="event size in bytes (default 100)")
    p.add_argument("--rounds", type=int, default=1, help="rounds; medians are reported (default 1)")
    p.add_argument("--async-concurrency", type=int, help="RAPID_ASYNC_CONCURRENCY for the daemon")
    p.add_argument("--store", action="store_true", help="also measure the store alone (commit strategies)")
    p.add_argument("--json", help="write the raw results here")
    args = p.parse_args(argv)
    payload = json.dumps({"x": "a" * max(0, args.payload - 9)}).encode()
    env = {"RAPID_ASYNC_CONCURRENCY": str(args.async_concurrency)} if args.async_concurrency else {}
    print(describe())
    print(f"workload: {args.n} Event invokes of {len(payload)} B from {args.clients} keep-alive clients, "
          f"{args.rounds} round(s); command: python -m benchmarks.events {' '.join(map(shlex.quote, argv or sys.argv[1:]))}")
    results: dict[str, list[dict[str, float]]] = {"accept": [], "end_to_end": [], "end_to_end_file": []}
    for r in range(args.rounds):
        results["accept"].append(run_accept(args, payload, env))
        results["end_to_end"].append(run_end_to_end(args, payload, env, destination=False))
        results["end_to_end_file"].append(run_end_to_end(args, payload, env, destination=True))
        for name, rows in results.items():
            print(f"  round {r + 1} {name}: " + ", ".join(f"{k} {v:,.1f}" for k, v in rows[-1].items()), flush=True)
    print()
    titles = {
        "accept": "durable accept (202 after fsync'd commit)",
        "end_to_end": "end to end, echo function",
        "end_to_end_file": "end to end, echo + on_success file record (fsync'd)",
    }
    for name, rows in results.items():
        print(titles[name])
        for key in rows[0]:
            print(f"  {key:<30}{statistics.median(x[key] for x in rows):>12,.1f}")
    if args.store:
        run_store(args, payload)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
