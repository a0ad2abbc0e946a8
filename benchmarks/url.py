"""Function URL benchmark: what serving a request through a URL costs against Invoke.

    python -m benchmarks.url [--requests 3000] [--rounds 3] [--json FILE]

One daemon (``rapid serve --data-dir``), one ``provided`` function (the benchmarks' echo
runtime, so the figures are the host's), one URL on it; sequential keep-alive requests over
raw HTTP (``benchmarks.client``). Per round, in turn on the same daemon and function:

1. **invoke**: ``POST /2015-03-31/functions/{name}/invocations`` with a small JSON payload;
   the reference.
2. **url by host**: ``GET /some/path?x=1`` with ``Host: <id>.lambda-url.<region>.localhost``:
   the payload 2.0 event built, the echoed event interpreted as the HTTP answer.
3. **url by path**: the same through ``/lambda-url/<id>/some/path?x=1``.

Reported: daemon CPU microseconds per request and requests per second, medians over the
rounds, and each URL figure as a ratio to invoke's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.client import INVOKE_PATH, request
from benchmarks.control import Daemon, bootstrap_zip
from benchmarks.machine import cpu_seconds, describe


def measure(d: Daemon, req: bytes, n: int) -> tuple[float, float]:
    """(daemon CPU us per request, requests per second) over ``n`` sequential requests."""
    for _ in range(min(200, n)):
        d.conn.roundtrip(req)
    cpu0, t0 = cpu_seconds(d.proc.pid), time.perf_counter()
    for _ in range(n):
        status, _, _ = d.conn.roundtrip(req)
        assert status == 200, status
    wall, cpu = time.perf_counter() - t0, cpu_seconds(d.proc.pid) - cpu0
    return cpu / n * 1e6, n / wall


def run(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="rapid-bench-url-") as tmp:
        d = Daemon(Path(tmp) / "state")
        try:
            d.create("echo", bootstrap_zip("url"))
            deadline = time.monotonic() + 30
            while json.loads(d.call("GET", "/2015-03-31/functions/echo")[1])["Configuration"]["State"] != "Active":
                if time.monotonic() > deadline:
                    raise SystemExit("the function did not become Active")
                time.sleep(0.1)
            _, body = d.call("POST", "/2021-10-31/functions/echo/url", {"AuthType": "NONE"}, 201)
            url_id = json.loads(body)["FunctionUrl"].split("//")[1].split(".")[0]
            reqs = {
                "invoke": request(INVOKE_PATH.format(name="echo"), b'{"x":1}'),
                "url by host": (f"GET /some/path?x=1 HTTP/1.1\r\nHost: {url_id}.lambda-url.us-east-1.localhost"
                                "\r\nContent-Length: 0\r\n\r\n").encode(),
                "url by path": request(f"/lambda-url/{url_id}/some/path?x=1", method="GET"),
            }
            cpu: dict[str, list[float]] = {k: [] for k in reqs}
            rate: dict[str, list[float]] = {k: [] for k in reqs}
            for _ in range(args.rounds):
                for name, req in reqs.items():
                    c, r = measure(d, req, args.requests)
                    cpu[name].append(c)
                    rate[name].append(r)
        finally:
            d.stop()
    out: dict[str, float] = {}
    for name in reqs:
        out[f"{name} cpu_us"] = statistics.median(cpu[name])
        out[f"{name} per_s"] = statistics.median(rate[name])
    for name in ("url by host", "url by path"):
        out[f"{name} cpu ratio"] = out[f"{name} cpu_us"] / out["invoke cpu_us"]
        out[f"{name} rate ratio"] = out[f"{name} per_s"] / out["invoke per_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    print(describe(), file=sys.stderr)
    out = run(args)
    for name in ("invoke", "url by host", "url by path"):
        line = f"{name:12}  {out[name + ' cpu_us']:7.1f} us CPU/request  {out[name + ' per_s']:8.0f} requests/s"
        if name != "invoke":
            line += f"   ({out[name + ' cpu ratio']:.2f}x CPU, {out[name + ' rate ratio']:.2f}x rate of invoke)"
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
