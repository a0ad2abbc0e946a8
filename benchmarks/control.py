"""Control-plane benchmark: deploying through the Lambda API, and what routing costs.

    python -m benchmarks.control [-n 20] [--invokes 1000] [--rounds 5] [--functions 1000] [--json FILE]

One daemon (``rapid serve --data-dir``, nothing declared), driven over raw keep-alive HTTP
(``benchmarks.client``) so the figures are the daemon's. Every figure is a ratio to a
reference measured beside it on the same daemon:

1. **create**: CreateFunction of a 1 MB ZIP (random bytes, so it neither compresses nor
   dedups), median of ``-n``; against a synchronous invoke carrying a 1 MB payload (the
   same bytes through the same HTTP edge, plus a function round trip).
2. **update → new code**: UpdateFunctionCode, then invokes until the new code answers,
   median of ``-n``; against CreateFunction → first answer (a cold start either way).
3. **publish**: PublishVersion after a configuration change, median of ``-n``; against
   GetFunction (a read of the same record).
4. **alias with weights**: daemon CPU per invoke through an alias with
   ``AdditionalVersionWeights`` against invoking the version directly (the issue asks
   under 5 % more), and invokes/s the same way.
5. **1,000 functions**: daemon CPU per invoke of one function with ``--functions``
   registered against the same with 1.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from benchmarks.client import INVOKE_PATH, Connection, request
from benchmarks.machine import cpu_seconds, describe

HERE = Path(__file__).resolve().parent
ROLE = "arn:aws:iam::000000000000:role/bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bootstrap_zip(marker: str, padding: int = 0) -> bytes:
    """The echo runtime as a ``provided`` function; ``marker`` makes each ZIP distinct."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = (0o100755) << 16
        zf.writestr(info, f"#!{sys.executable}\n# {marker}\n" + (HERE / "echo_bootstrap.py").read_text())
        if padding:
            zf.writestr("padding.bin", os.urandom(padding), compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


class Daemon:
    def __init__(self, data: Path) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "rapid", "serve", "--port", str(self.port), "--data-dir", str(data)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"rapid did not start ({self.proc.poll()})")
                time.sleep(0.05)
        self.conn = Connection(self.port)

    def call(self, method: str, path: str, body: object = None, expect: int | None = None) -> tuple[int, bytes]:
        raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        status, payload, _ = self.conn.roundtrip(request(path, raw, method=method))
        if expect is not None and status != expect:
            raise SystemExit(f"{method} {path}: {status} {payload[:200]!r}")
        return status, payload

    def create(self, name: str, zipped: bytes) -> None:
        self.call("POST", "/2015-03-31/functions", {
            "FunctionName": name, "Runtime": "provided.al2023", "Role": ROLE, "Timeout": 30,
            "Code": {"ZipFile": base64.b64encode(zipped).decode()}}, 201)

    def invoke(self, name: str, body: bytes = b"{}") -> bytes:
        return self.call("POST", INVOKE_PATH.format(name=name), body, 200)[1]

    def stop(self) -> None:
        self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def per_invoke_cpu(d: Daemon, path_name: str, n: int) -> tuple[float, float]:
    """(daemon CPU us per invoke, invokes per second) over ``n`` sequential invokes."""
    req = request(INVOKE_PATH.format(name=path_name), b'{"x":1}')
    for _ in range(min(200, n)):
        d.conn.roundtrip(req)
    cpu0, t0 = cpu_seconds(d.proc.pid), time.perf_counter()
    for _ in range(n):
        status, _, _ = d.conn.roundtrip(req)
        assert status == 200
    wall, cpu = time.perf_counter() - t0, cpu_seconds(d.proc.pid) - cpu0
    return cpu / n * 1e6, n / wall


def alternate_cpu(d: Daemon, first: str, second: str, n: int) -> float:
    """Daemon CPU us per invoke, invoking two targets at random (as a 0.5 alias would)."""
    import random

    reqs = [request(INVOKE_PATH.format(name=t), b'{"x":1}') for t in (first, second)]
    rng = random.Random(1)
    for _ in range(min(200, n)):
        d.conn.roundtrip(reqs[rng.random() < 0.5])
    cpu0 = cpu_seconds(d.proc.pid)
    for _ in range(n):
        status, _, _ = d.conn.roundtrip(reqs[rng.random() < 0.5])
        assert status == 200
    return (cpu_seconds(d.proc.pid) - cpu0) / n * 1e6


def run(args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="rapid-bench-control-") as tmp:
        d = Daemon(Path(tmp) / "data")
        try:
            # (1) CreateFunction of a 1 MB ZIP, against a 1 MB synchronous invoke.
            d.create("echo", bootstrap_zip("echo"))
            d.invoke("echo")
            big = json.dumps("x" * (1024 * 1024 - 2)).encode()
            creates, invokes = [], []
            for i in range(args.n):
                zipped = bootstrap_zip(f"c{i}", padding=1024 * 1024)
                t = time.perf_counter()
                d.create(f"big{i}", zipped)
                creates.append(time.perf_counter() - t)
                t = time.perf_counter()
                d.invoke("echo", big)
                invokes.append(time.perf_counter() - t)
            out["create_1mb_ms"] = _ms(creates)
            out["invoke_1mb_ms"] = _ms(invokes)
            out["create_over_invoke_1mb"] = out["create_1mb_ms"] / out["invoke_1mb_ms"]

            # (2) UpdateFunctionCode -> first answer of the new code, against create -> first answer.
            updates, colds = [], []
            for i in range(args.n):
                name = f"u{i}"
                zipped = bootstrap_zip(f"u{i}")
                t = time.perf_counter()
                d.create(name, zipped)
                d.invoke(name)
                colds.append(time.perf_counter() - t)
                new = bootstrap_zip(f"u{i}-new")
                t = time.perf_counter()
                d.call("PUT", f"/2015-03-31/functions/{name}/code",
                       {"ZipFile": base64.b64encode(new).decode()}, 200)
                d.invoke(name)  # the first invoke after the update runs on a fresh pool: the new code
                updates.append(time.perf_counter() - t)
            out["update_to_new_code_ms"] = _ms(updates)
            out["create_to_first_answer_ms"] = _ms(colds)
            out["update_over_create_cold"] = out["update_to_new_code_ms"] / out["create_to_first_answer_ms"]

            # (3) PublishVersion against GetFunction.
            publishes, reads = [], []
            for i in range(max(args.n, 3)):  # versions 1-3 serve the alias figures
                d.call("PUT", "/2015-03-31/functions/echo/configuration", {"Description": f"d{i}"}, 200)
                t = time.perf_counter()
                d.call("POST", "/2015-03-31/functions/echo/versions", {}, 201)
                publishes.append(time.perf_counter() - t)
                t = time.perf_counter()
                d.call("GET", "/2015-03-31/functions/echo", None, 200)
                reads.append(time.perf_counter() - t)
            out["publish_ms"] = _ms(publishes)
            out["get_function_ms"] = _ms(reads)
            out["publish_over_get"] = out["publish_ms"] / out["get_function_ms"]

            # (4) Alias with weights against the version itself.
            d.call("POST", "/2015-03-31/functions/echo/aliases", {
                "Name": "live", "FunctionVersion": "1",
                "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5}}}, 201)
            d.call("POST", "/2015-03-31/functions/echo/aliases", {"Name": "plain", "FunctionVersion": "1"}, 201)
            d.call("POST", "/2015-03-31/functions/echo/aliases", {
                "Name": "mirror", "FunctionVersion": "2",
                "RoutingConfig": {"AdditionalVersionWeights": {"3": 0.5}}}, 201)
            # Rounds taking turns, medians: the machine is shared, its load drifts.
            # Two versions alternating cost two warm instances taking turns; the same split
            # between two plain versions, invoked at random directly, says how much of the
            # weighted alias's figure is that rather than the routing.
            rounds: dict[str, list[tuple[float, float]]] = {"direct": [], "live": [], "plain": [], "turns": []}
            for _ in range(args.rounds):
                rounds["direct"].append(per_invoke_cpu(d, "echo:1", args.invokes))
                rounds["live"].append(per_invoke_cpu(d, "echo:live", args.invokes))
                rounds["plain"].append(per_invoke_cpu(d, "echo:plain", args.invokes))
                rounds["turns"].append((alternate_cpu(d, "echo:2", "echo:3", args.invokes), 0.0))
            direct_cpu, direct_rate = (statistics.median(x) for x in zip(*rounds["direct"]))
            alias_cpu, alias_rate = (statistics.median(x) for x in zip(*rounds["live"]))
            plain_cpu = statistics.median(x[0] for x in rounds["plain"])
            turns_cpu = statistics.median(x[0] for x in rounds["turns"])
            out.update(direct_cpu_us=direct_cpu, alias_cpu_us=alias_cpu, plain_alias_cpu_us=plain_cpu,
                       alternating_direct_cpu_us=turns_cpu,
                       alias_over_direct_cpu=alias_cpu / direct_cpu, alias_over_direct_rate=alias_rate / direct_rate,
                       plain_alias_over_direct_cpu=plain_cpu / direct_cpu,
                       weighted_alias_over_alternating_direct_cpu=alias_cpu / turns_cpu)

            # (5) One function registered against --functions registered.
            one = [per_invoke_cpu(d, "echo", args.invokes)[0] for _ in range(args.rounds)]
            small = bootstrap_zip("many")
            existing = 2 + 2 * args.n
            for i in range(args.functions - existing):
                d.create(f"many{i}", small)
            many = [per_invoke_cpu(d, "echo", args.invokes)[0] for _ in range(args.rounds)]
            one_cpu, many_cpu = statistics.median(one), statistics.median(many)
            out.update(few_functions=existing, many_functions=args.functions, few_cpu_us=one_cpu,
                       many_cpu_us=many_cpu, many_over_few_cpu=many_cpu / one_cpu)
        finally:
            d.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.control", description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=20, help="samples per deployment figure (default 20)")
    p.add_argument("--invokes", type=int, default=1000, help="invokes per CPU sample (default 1000)")
    p.add_argument("--rounds", type=int, default=5, help="CPU samples per target, taken by turns (default 5)")
    p.add_argument("--functions", type=int, default=1000, help="functions registered for figure 5 (default 1000)")
    p.add_argument("--json", help="write the figures here too")
    args = p.parse_args(argv)
    print(describe())
    figures = run(args)
    print(f"(1) CreateFunction, 1 MB ZIP: {figures['create_1mb_ms']:.1f} ms median = "
          f"{figures['create_over_invoke_1mb']:.2f}x a 1 MB sync invoke ({figures['invoke_1mb_ms']:.1f} ms)")
    print(f"(2) UpdateFunctionCode -> new code answers: {figures['update_to_new_code_ms']:.1f} ms = "
          f"{figures['update_over_create_cold']:.2f}x CreateFunction -> first answer "
          f"({figures['create_to_first_answer_ms']:.1f} ms)")
    print(f"(3) PublishVersion: {figures['publish_ms']:.2f} ms = {figures['publish_over_get']:.2f}x GetFunction "
          f"({figures['get_function_ms']:.2f} ms)")
    print(f"(4) alias with weights: {figures['alias_over_direct_cpu']:.3f}x the daemon CPU per invoke of the "
          f"version itself ({figures['alias_cpu_us']:.0f} vs {figures['direct_cpu_us']:.0f} us); "
          f"{figures['alias_over_direct_rate']:.3f}x its invokes/s; an alias without weights "
          f"{figures['plain_alias_over_direct_cpu']:.3f}x; the weighted alias against invoking its two versions "
          f"by turns directly {figures['weighted_alias_over_alternating_direct_cpu']:.3f}x")
    print(f"(5) {figures['many_functions']:.0f} functions registered: {figures['many_over_few_cpu']:.3f}x the "
          f"daemon CPU per invoke with {figures['few_functions']:.0f} ({figures['many_cpu_us']:.0f} vs "
          f"{figures['few_cpu_us']:.0f} us)")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": describe(), "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
