"""What rapid answers to hostile and malformed invokes, and what a header flood costs it.

    python -m benchmarks.limits [--rapid-root DIR ...]

For each rapid checkout given (default: this one), starts the daemon in drop-in mode with
``AWS_LAMBDA_FUNCTION_NAME=my-fn`` on a tiny echo bootstrap and prints one line per probe:
the status and ``x-amzn-ErrorType`` of invokes at ``function``, with a bad ``X-Amz-Log-Type``,
a bad ``Qualifier``, a bad function name, an escaped lone surrogate, a byte that is not
UTF-8, a DryRun (and its ``X-Amz-Executed-Version``), a client that half-closes after its
request; then streams a 64 MiB header and reports the answer and the daemon's peak RSS
(VmHWM) before and after. Give the previous commit's checkout (``git worktree add``) to see
what a change did.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

BOOTSTRAP = """#!{python}
import http.client, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
c = http.client.HTTPConnection(host, int(port))
while True:
    c.request("GET", "/2018-06-01/runtime/invocation/next"); r = c.getresponse(); b = r.read()
    c.request("POST", "/2018-06-01/runtime/invocation/" + r.getheader("Lambda-Runtime-Aws-Request-Id") + "/response", b)
    c.getresponse().read()
"""
INVOKE = "/2015-03-31/functions/{}/invocations"


def start(root: str, workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    bootstrap = Path(workdir, "bootstrap")
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
    bootstrap.write_text(BOOTSTRAP.replace("{python}", python))
    bootstrap.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAPID_", "AWS_LAMBDA_"))}
    env.update(PYTHONPATH=root, AWS_LAMBDA_FUNCTION_NAME="my-fn")
    proc = subprocess.Popen([sys.executable, "-m", "rapid", "serve", "--port", "0", "--", str(bootstrap)],
                            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"{root}: rapid did not start ({proc.wait()})")
        m = re.search(rb"listening on http://[\d.]+:(\d+)", line)
        if m:
            return proc, int(m.group(1))


def probe(port: int, path: str, body: bytes = b"{}", headers: dict[str, str] | None = None) -> str:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", path, body, headers or {})
    r = c.getresponse()
    r.read()
    c.close()
    return " ".join(x for x in (str(r.status), r.getheader("x-amzn-ErrorType"),
                                r.getheader("X-Amz-Executed-Version")) if x)


def half_close(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST " + INVOKE.format("my-fn").encode() + b" HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        s.shutdown(socket.SHUT_WR)
        try:
            first = s.recv(200).split(b"\r\n")[0].decode()
        except OSError as exc:
            first = repr(exc)
    return first or "closed, no answer"


def peak_mb(pid: int) -> int:
    return int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) // 1024


def header_flood(port: int, pid: int, size: int = 64 << 20) -> str:
    before = peak_mb(pid)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST " + INVOKE.format("my-fn").encode() + b" HTTP/1.1\r\nX-Big: ")
        sent = 0
        try:
            while sent < size and not select.select([s], [], [], 0)[0]:
                s.sendall(b"a" * 65536)
                sent += 65536
            if sent >= size:
                s.sendall(b"\r\nContent-Length: 2\r\n\r\n{}")
            answer = s.recv(200).split(b"\r\n")[0].decode()
        except OSError as exc:
            answer = repr(exc)
    return f"{sent >> 20} MiB sent, answer {answer!r}, daemon peak RSS {before} -> {peak_mb(pid)} MB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.limits", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rapid-root", action="append", default=[], metavar="DIR")
    args = p.parse_args(argv)
    roots = args.rapid_root or [str(Path(__file__).resolve().parent.parent)]
    for root in roots:
        with tempfile.TemporaryDirectory(prefix="rapid-limits-") as workdir:
            proc, port = start(root, workdir)
            try:
                rows = {
                    "invoke at 'function' (AWS_LAMBDA_FUNCTION_NAME=my-fn)": probe(port, INVOKE.format("function")),
                    "X-Amz-Log-Type: Bogus": probe(port, INVOKE.format("my-fn"), headers={"X-Amz-Log-Type": "Bogus"}),
                    "?Qualifier=bad!": probe(port, INVOKE.format("my-fn") + "?Qualifier=bad!"),
                    "function name 'bad name!'": probe(port, INVOKE.format("bad%20name!")),
                    'payload "\\ud800" (escaped lone surrogate)': probe(port, INVOKE.format("my-fn"), b'"\\ud800"'),
                    "payload with the byte 0xff": probe(port, INVOKE.format("my-fn"), b'"\xff"'),
                    "DryRun": probe(port, INVOKE.format("my-fn"), headers={"X-Amz-Invocation-Type": "DryRun"}),
                    "request, then shutdown(SHUT_WR)": half_close(port),
                    "a 64 MiB header": header_flood(port, proc.pid),
                }
            finally:
                proc.terminate()
                proc.wait(timeout=20)
        print(f"== {root}")
        for k, v in rows.items():
            print(f"  {k:55s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
