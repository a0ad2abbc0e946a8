"""What an open dashboard costs the invoke path.

    python -m benchmarks.dashboard [--rounds 5] [--rate 1000] [--seconds 10]

One rapid daemon in drop-in mode on the benchmarks' echo bootstrap. Each round invokes at
``--rate`` per second for ``--seconds`` on one keep-alive connection, twice: once with no
dashboard open, once with a live-event client connected to ``/_rapid/api/events`` and
reading everything (what an open page does). The figure is the daemon's CPU per invoke
(utime + stime from /proc) in each case, and the per-round ratio open / closed, as a
median with [min-max]. The order of the two alternates from round to round.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def start_daemon(workdir: str, serve: list[str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """``rapid serve --port 0 SERVE`` in ``workdir`` (default: drop-in mode on the echo
    bootstrap); the process and the port it says it listens on."""
    if serve is None:
        python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
        bootstrap = Path(workdir, "bootstrap")
        bootstrap.write_text(f"#!{python}\n" + (HERE / "echo_bootstrap.py").read_text().split("\n", 1)[1])
        bootstrap.chmod(0o755)
        serve = ["--", str(bootstrap)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAPID_", "AWS_LAMBDA_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rapid", "serve", "--port", "0", *serve], cwd=workdir, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"rapid did not start: exit {proc.wait()}")
        m = re.search(rb"listening on http://[\d.]+:(\d+)", line)
        if m:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(m.group(1))


def invoke_for(port: int, rate: float, seconds: float, path: str = "/2015-03-31/functions/function/invocations",
               *, check: bool = False) -> int:
    """Invoke ``path`` at ``rate`` per second for ``seconds`` on one keep-alive connection;
    how many were made (``check``: stop at the first answer that is not 200)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    body = b'{"payload": "' + b"x" * 84 + b'"}'
    n, start = 0, time.monotonic()
    while (now := time.monotonic()) - start < seconds:
        due = start + n / rate
        if due > now:
            time.sleep(due - now)
        conn.request("POST", path, body)
        resp = conn.getresponse()
        resp.read()
        if check and resp.status != 200:
            raise SystemExit(f"invoke: {resp.status}")
        n += 1
    conn.close()
    return n


class Watcher:
    """A live-event client: reads the event stream as fast as it comes, as a page does."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"GET /_rapid/api/events HTTP/1.1\r\nHost: bench\r\n\r\n")
        self.bytes = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.bytes += len(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.dashboard", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--rate", type=float, default=1000.0, help="invokes per second (default 1000)")
    p.add_argument("--seconds", type=float, default=10.0, help="per measurement (default 10)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rapid-bench-dash-") as workdir:
        proc, port = start_daemon(workdir)
        try:
            invoke_for(port, args.rate, 1.0)  # warm: the instance is up
            closed, opened, ratios = [], [], []
            for r in range(args.rounds):
                figures = {}
                for open_page in ((False, True) if r % 2 == 0 else (True, False)):
                    watcher = Watcher(port) if open_page else None
                    cpu0 = cpu_seconds(proc.pid)
                    n = invoke_for(port, args.rate, args.seconds)
                    figures[open_page] = (cpu_seconds(proc.pid) - cpu0) / n * 1e6, n
                    if watcher is not None:
                        watcher.close()
                        if watcher.bytes == 0:
                            raise SystemExit("the live-event client received nothing")
                closed.append(figures[False][0])
                opened.append(figures[True][0])
                ratios.append(figures[True][0] / figures[False][0])
                print(f"round {r + 1}: {figures[False][1]} invokes closed {figures[False][0]:.0f} us/inv, "
                      f"{figures[True][1]} open {figures[True][0]:.0f} us/inv, open/closed {ratios[-1]:.3f}",
                      file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(f"dashboard open vs closed, {args.rate:g} invokes/s for {args.seconds:g} s, {args.rounds} rounds")
    print(f"  daemon CPU per invoke, closed: {statistics.median(closed):.0f} us (median)")
    print(f"  daemon CPU per invoke, open:   {statistics.median(opened):.0f} us (median)")
    print(f"  open / closed: {statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
