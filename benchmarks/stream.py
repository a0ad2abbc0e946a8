"""Time to first byte of a streamed response, through rapid, against a direct socket.

    python -m benchmarks.stream [--chunks 10] [--gap-ms 50] [--rounds 5]

A runtime writes ``--chunks`` chunks ``--gap-ms`` apart, each stamped with the monotonic
clock (shared by every process on Linux) just before it is written. Through rapid, the
runtime POSTs them as a streaming ``/response`` and the client reads them from
InvokeWithResponseStream's event stream; directly, the same runtime writes the same chunks
to a socket the client reads (the floor: what loopback and two processes cost anyway).
Printed: the delay from writing a chunk to the client holding it, first chunk and all
chunks, p50 and max, for both, and rapid's figure as a ratio of the direct one. Rounds
alternate rapid and direct. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from botocore.eventstream import EventStreamBuffer

from benchmarks.machine import describe
from benchmarks.procs import free_port

RUNTIME = r"""#!{python}
import http.client, json, os, socket, time
chunks, gap = int(os.environ["CHUNKS"]), float(os.environ["GAP_MS"]) / 1000
def stamps(write):
    for i in range(chunks):
        write(b"%d\n" % time.monotonic_ns())
        time.sleep(gap)
direct = os.environ.get("DIRECT_PORT")
if direct:
    s = socket.create_connection(("127.0.0.1", int(direct)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stamps(s.sendall)
    s.close()
    raise SystemExit
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
# One keep-alive connection for /next and the streaming /response, as the runtime clients do.
s = socket.create_connection((host, int(port)))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = s.makefile("rb")
def answer():
    length, rid = 0, None
    f.readline()
    while True:
        line = f.readline().strip()
        if not line:
            break
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "lambda-runtime-aws-request-id":
            rid = value.strip()
    f.read(length)
    return rid
while True:
    s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
    rid = answer()
    s.sendall(("POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: x\r\n"
               "Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\r\n" % rid).encode())
    stamps(lambda data: s.sendall(b"%x\r\n" % len(data) + data + b"\r\n"))
    s.sendall(b"0\r\n\r\n")
    answer()
"""


def _delays(payloads: list[tuple[int, bytes]]) -> list[float]:
    """(received ns, bytes) -> ms from each stamp's writing to its receipt."""
    out = []
    for received, data in payloads:
        for line in data.split(b"\n"):
            if line:
                out.append((received - int(line)) / 1e6)
    return out


def through_rapid(port: int) -> list[float]:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"POST /2021-11-15/functions/s/response-streaming-invocations HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: 2\r\n\r\n{}")
    buf, head_done, events = b"", False, EventStreamBuffer()
    got: list[tuple[int, bytes]] = []
    while True:
        data = s.recv(65536)
        now = time.monotonic_ns()
        if not data:
            break
        buf += data
        if not head_done:
            if b"\r\n\r\n" not in buf:
                continue
            buf = buf.split(b"\r\n\r\n", 1)[1]
            head_done = True
        # de-chunk what is complete
        while True:
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                break
            size = int(buf[:line_end], 16)
            if len(buf) < line_end + 2 + size + 2:
                break
            piece = buf[line_end + 2:line_end + 2 + size]
            buf = buf[line_end + 2 + size + 2:]
            if size == 0:
                s.close()
                return _delays(got)
            events.add_data(piece)
            for msg in events:
                if msg.headers.get(":event-type") == "PayloadChunk":
                    got.append((now, msg.payload))
    s.close()
    return _delays(got)


def direct(runtime: str, env: dict[str, str]) -> list[float]:
    listener = socket.create_server(("127.0.0.1", 0))
    proc = subprocess.Popen([runtime], env={**env, "DIRECT_PORT": str(listener.getsockname()[1])},
                            start_new_session=True)
    conn, _ = listener.accept()
    got = []
    with conn:
        while True:
            data = conn.recv(65536)
            now = time.monotonic_ns()
            if not data:
                break
            got.append((now, data))
    proc.wait()
    listener.close()
    return _delays(got)


def _summary(delays: list[float], chunks: int) -> tuple[float, float, float]:
    firsts = delays[::chunks]
    return statistics.median(firsts), statistics.median(delays), max(delays)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stream", description=__doc__.split("\n")[0])
    p.add_argument("--chunks", type=int, default=10)
    p.add_argument("--gap-ms", type=float, default=50.0)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    print(describe())
    work = tempfile.mkdtemp(prefix="rapid-bench-stream-")
    fn = os.path.join(work, "fn")
    os.mkdir(fn)
    runtime = os.path.join(fn, "bootstrap")
    with open(runtime, "w") as f:
        f.write(RUNTIME.replace("{python}", sys.executable))
    os.chmod(runtime, 0o755)
    env = {**os.environ, "CHUNKS": str(args.chunks), "GAP_MS": str(args.gap_ms)}
    port = free_port()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "rapid", "serve", "--port", str(port), "--function", f"s={fn}", "--timeout", "60",
         "--env", f"CHUNKS={args.chunks}", "--env", f"GAP_MS={args.gap_ms}"],
        env={k: v for k, v in env.items() if not k.startswith("RAPID_")}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("rapid did not start") from None
                time.sleep(0.05)
        through_rapid(port)  # warm: the cold start is not what is measured here
        rapid_d: list[float] = []
        direct_d: list[float] = []
        for _ in range(args.rounds):
            rapid_d += through_rapid(port)
            direct_d += direct(runtime, env)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(20)
    rows = {"rapid (InvokeWithResponseStream)": _summary(rapid_d, args.chunks),
            "direct socket (floor)": _summary(direct_d, args.chunks)}
    print(f"{args.chunks} chunks {args.gap_ms:g} ms apart, {args.rounds} rounds; "
          "delay from the runtime writing a chunk to the client holding it")
    print(f"{'':34} {'first p50 ms':>13} {'all p50 ms':>11} {'max ms':>8}")
    for name, (first, p50, worst) in rows.items():
        print(f"{name:34} {first:13.3f} {p50:11.3f} {worst:8.3f}")
    r, d = rows["rapid (InvokeWithResponseStream)"], rows["direct socket (floor)"]
    print(f"ratio rapid / direct: first chunk {r[0] / d[0]:.2f}x, all chunks {r[1] / d[1]:.2f}x "
          f"(rapid adds {r[1] - d[1]:.3f} ms per chunk at the median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
