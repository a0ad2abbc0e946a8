"""Built-in queues and streams: durable accepts per second, beside the async invoke accept
rate of the same daemon.

    python -m benchmarks.queues [-n 5000] [--clients 16] [--payload 100] [--rounds 3]

One daemon (``rapid serve`` with its own ``--data-dir``), three loads in turn each round,
each ``-n`` requests from ``--clients`` keep-alive clients as fast as the daemon answers:

- **event**: ``Event`` invokes of a function that never gets past init (its bootstrap
  sleeps), so the figure is the durable enqueue alone (every 202 is committed);
- **sqs**: ``AmazonSQS.SendMessage`` to a standard queue (every 200 is committed);
- **kinesis**: ``Kinesis_20131202.PutRecord`` to a 4-shard stream (every 200 is committed).

Reported per load: the median over rounds of accepts/s, p50/p99 latency and daemon CPU per
accept; and the ratios sqs/event and kinesis/event, which are what to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.events import PATH, Daemon, function_dirs
from benchmarks.machine import cpu_seconds, describe


def _request(path: str, headers: dict[str, str], body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def load(port: int, request: bytes, n: int, clients: int, ok: bytes) -> list[float]:
    remaining = [n]
    latencies: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining[0] > 0:
                remaining[0] -= 1
                t = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length) if length else b""
                if not head.startswith(b"HTTP/1.1 " + ok):
                    raise SystemExit(f"refused: {head[:60]!r} {body[:200]!r}")
                latencies.append(time.perf_counter() - t)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def _call(port: int, target: str, body: dict[str, object], json_version: str) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=json.dumps(body).encode(), method="POST",
                                 headers={"X-Amz-Target": target,
                                          "Content-Type": f"application/x-amz-json-{json_version}"})
    urllib.request.urlopen(req, timeout=10).read()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=5000, help="requests per load and round (default 5000)")
    p.add_argument("--clients", type=int, default=16, help="concurrent keep-alive clients (default 16)")
    p.add_argument("--payload", type=int, default=100, help="event / message / record size in bytes (default 100)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (default 3)")
    p.add_argument("--json", help="write the raw results here")
    args = p.parse_args(argv)
    payload = json.dumps({"pad": "x" * max(0, args.payload - 11)}).encode()
    print(describe())
    with tempfile.TemporaryDirectory(prefix="rapid-bench-queues-") as tmp:
        d = Daemon(Path(tmp), function_dirs(Path(tmp)), "", {})
        try:
            _call(d.port, "AmazonSQS.CreateQueue", {"QueueName": "bench"}, "1.0")
            _call(d.port, "Kinesis_20131202.CreateStream", {"StreamName": "bench", "ShardCount": 4}, "1.1")
            url = f"http://127.0.0.1:{d.port}/000000000000/bench"
            loads = {
                "event": (_request(PATH.format(name="hang"), {"X-Amz-Invocation-Type": "Event",
                                                              "Content-Type": "application/json"}, payload), b"202"),
                "sqs": (_request("/", {"X-Amz-Target": "AmazonSQS.SendMessage",
                                       "Content-Type": "application/x-amz-json-1.0"},
                                 json.dumps({"QueueUrl": url, "MessageBody": payload.decode()}).encode()), b"200"),
                "kinesis": (_request("/", {"X-Amz-Target": "Kinesis_20131202.PutRecord",
                                           "Content-Type": "application/x-amz-json-1.1"},
                                     json.dumps({"StreamName": "bench", "PartitionKey": "k",
                                                 "Data": base64.b64encode(payload).decode()}).encode()), b"200"),
            }
            for request, ok in loads.values():  # warm up
                asyncio.run(load(d.port, request, min(300, args.n), args.clients, ok))
            raw: dict[str, list[dict[str, float]]] = {k: [] for k in loads}
            for _ in range(args.rounds):
                for name, (request, ok) in loads.items():
                    cpu0, t0 = cpu_seconds(d.proc.pid), time.perf_counter()
                    lat = sorted(asyncio.run(load(d.port, request, args.n, args.clients, ok)))
                    wall, cpu = time.perf_counter() - t0, cpu_seconds(d.proc.pid) - cpu0
                    raw[name].append({"accepts_per_s": args.n / wall, "p50_ms": lat[len(lat) // 2] * 1e3,
                                      "p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
                                      "daemon_cpu_us": cpu / args.n * 1e6})
        finally:
            d.stop()
    med = {name: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for name, rows in raw.items()}
    print(f"{args.n} requests x {args.rounds} rounds, {args.clients} clients, {len(payload)} B payloads (medians)")
    print(f"{'load':<8} {'accepts/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'cpu us/accept':>14}")
    for name, m in med.items():
        print(f"{name:<8} {m['accepts_per_s']:>10.0f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} {m['daemon_cpu_us']:>14.0f}")
    for name in ("sqs", "kinesis"):
        print(f"{name}/event accepts: {med[name]['accepts_per_s'] / med['event']['accepts_per_s']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"medians": med, "raw": raw}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
