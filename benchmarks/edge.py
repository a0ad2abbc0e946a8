"""What the HTTP edge costs: rapid's protocol on httptools against an aiohttp server.

    python -m benchmarks.edge [-n 5000] [--rounds 3]

Both servers answer ``POST /echo`` with the request body, under uvloop, in a child
process; one keep-alive client sends ``n`` 100 B requests in a row. Printed: the server's CPU
per request and the client's p50, per server, medians over rounds (alternating A B). This is
the choice that issue 4 asks to justify: the Runtime API (and the Invoke API) on an asyncio
protocol over a C parser instead of a framework.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import time

from benchmarks.machine import describe
from benchmarks.procs import free_port

SERVERS = {
    "rapid HttpConnection": """
import asyncio, sys, uvloop
from rapid.http.message import Response
from rapid.http.protocol import serve
async def main():
    await serve(lambda req, conn: Response(200, bytes(req.body), [("Content-Type", "application/json")]),
                "127.0.0.1", int(sys.argv[1]), 1 << 20)
    print("ready", flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
""",
    "aiohttp": """
import sys, uvloop
from aiohttp import web
async def echo(request):
    return web.Response(body=await request.read(), content_type="application/json")
app = web.Application()
app.router.add_post("/echo", echo)
async def on_startup(app):
    print("ready", flush=True)
app.on_startup.append(on_startup)
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
""",
}


def cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def once(code: str, n: int) -> tuple[float, float]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(0.2)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        body = b'{"x":"' + b"a" * 90 + b'"}'
        for _ in range(500):
            conn.request("POST", "/echo", body)
            conn.getresponse().read()
        c0, lat = cpu(proc.pid), []
        for _ in range(n):
            a = time.perf_counter()
            conn.request("POST", "/echo", body)
            conn.getresponse().read()
            lat.append(time.perf_counter() - a)
        return (cpu(proc.pid) - c0) / n * 1e6, statistics.median(lat) * 1e6
    finally:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    print(describe())
    print(f"workload: {args.n} sequential 100 B POSTs on one keep-alive connection, {args.rounds} rounds")
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in SERVERS}
    for _ in range(args.rounds):
        for name, code in SERVERS.items():
            results[name].append(once(code, args.n))
    print(f"{'server':<24}{'server CPU us/request':>24}{'p50 us':>10}")
    for name, rows in results.items():
        print(f"{name:<24}{statistics.median(r[0] for r in rows):>24.0f}{statistics.median(r[1] for r in rows):>10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
