"""Sequential invoke benchmark: what a host adds per invoke on the hot path.

    python -m benchmarks.invoke [-n 3000] [--payload 100] [--rounds 3] [--against 'CMD']

A keep-alive load client (stdlib http.client, one connection) invokes an echo function
``n`` times in a row and reports invokes/s, p50/p99 latency, and CPU per invoke of the host
process itself, of the runtime, and of the client. The host is rapid in drop-in mode
(``rapid serve --port {port} -- {bootstrap}``); ``--against`` runs the same load against
another Runtime-API host started by CMD, where ``{port}`` and ``{bootstrap}`` are filled in,
e.g. ``aws-lambda-rie --runtime-interface-emulator-address 127.0.0.1:{port} {bootstrap}``.
With ``--against``, rounds alternate A B A B and the medians and per-round ratios are shown.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import cpu_seconds, children, describe, tree_cpu

HERE = Path(__file__).resolve().parent
BOOTSTRAP = str(HERE / "echo_bootstrap.py")
PATH = "/2015-03-31/functions/function/invocations"
RAPID = f"{shlex.quote(sys.executable)} -m rapid serve --port {{port}} -- {{bootstrap}}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = shlex.split(cmd.format(port=port, bootstrap=shlex.quote(BOOTSTRAP)))
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"host exited ({proc.returncode}): {cmd}")
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"host did not listen: {cmd}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def run_once(cmd: str, n: int, payload: bytes) -> dict[str, float]:
    proc, port = start(cmd)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def invoke() -> None:
            conn.request("POST", PATH, payload)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200 or len(body) != len(payload):
                raise SystemExit(f"bad answer {r.status}: {body[:200]!r}")

        for _ in range(min(300, n)):  # warm: the instance is started and hot
            invoke()
        host0, rt0, cl0 = cpu_seconds(proc.pid), tree_cpu(proc.pid), time.process_time()
        lat = []
        t0 = time.perf_counter()
        for _ in range(n):
            a = time.perf_counter()
            invoke()
            lat.append(time.perf_counter() - a)
        wall = time.perf_counter() - t0
        host1, rt1, cl1 = cpu_seconds(proc.pid), tree_cpu(proc.pid), time.process_time()
        lat.sort()
        return {
            "invokes_per_s": n / wall,
            "p50_us": lat[n // 2] * 1e6,
            "p90_us": lat[int(n * 0.9)] * 1e6,
            "p99_us": lat[int(n * 0.99)] * 1e6,
            "host_cpu_us": (host1 - host0) / n * 1e6,
            "runtime_cpu_us": (rt1 - rt0) / n * 1e6,
            "client_cpu_us": (cl1 - cl0) / n * 1e6,
        }
    finally:
        stop(proc)


FIGURES = ("invokes_per_s", "p50_us", "p90_us", "p99_us", "host_cpu_us", "runtime_cpu_us", "client_cpu_us")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=3000, help="invokes per round (default 3000)")
    p.add_argument("--payload", type=int, default=100, help="event size in bytes (default 100)")
    p.add_argument("--rounds", type=int, default=1, help="rounds per host (default 1; 3 with --against)")
    p.add_argument("--against", help="another host's command, with {port} and {bootstrap}")
    p.add_argument("--rapid", default=RAPID, help="the command that runs rapid (default: drop-in mode)")
    p.add_argument("--json", help="write the raw results here")
    args = p.parse_args(argv)
    payload = json.dumps({"x": "a" * max(0, args.payload - 9)}).encode()
    rounds = args.rounds if not args.against or args.rounds > 1 else 3
    hosts = {"rapid": args.rapid}
    if args.against:
        hosts["other"] = args.against
    print(describe())
    print(f"workload: {args.n} sequential invokes of a {len(payload)} B echo, one keep-alive client, "
          f"{rounds} round(s) per host")
    results: dict[str, list[dict[str, float]]] = {h: [] for h in hosts}
    for r in range(rounds):
        for name, cmd in hosts.items():  # A B A B: drift on a shared machine hits both alike
            results[name].append(run_once(cmd, args.n, payload))
            print(f"  round {r + 1} {name}: " + ", ".join(f"{k} {v:,.0f}" for k, v in results[name][-1].items()),
                  flush=True)
    print()
    header = f"{'figure':<16}" + "".join(f"{h:>14}" for h in hosts) + ("      ratio (other/rapid)" if args.against else "")
    print(header)
    for fig in FIGURES:
        med = {h: statistics.median(x[fig] for x in results[h]) for h in hosts}
        line = f"{fig:<16}" + "".join(f"{med[h]:>14,.0f}" for h in hosts)
        if args.against:
            ratios = [o[fig] / a[fig] for a, o in zip(results["rapid"], results["other"]) if a[fig]]
            line += f"      {statistics.median(ratios):.2f}x" if ratios else ""
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"hosts": hosts, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
