"""Templates and logs: what they cost at start-up and per invoke.

    python -m benchmarks.templates [--imports 7] [--loads 50] [--invokes 1000] [--rounds 6]

Every figure is a ratio to a reference measured beside it:

1. **imports**: the wall time of a fresh ``python -c "import M"`` (median of ``--imports``)
   for rapid's template package with the daemon, and, when installed, for the libraries the
   issue names (``samtranslator``'s transform, ``cfnlint``'s API); against ``import
   rapid.daemon`` (what ``rapid serve`` imports anyway).
2. **load**: loading and checking a SAM template with ``rapid.template`` (median of
   ``--loads``); against ``samtranslator``'s transform of the same template, when installed.
3. **logs per invoke**: the daemon's CPU per invoke of a function that prints one line,
   with the logs kept in the data dir (the default) against ``RAPID_LOG_MAX_BYTES=0``
   (stdout only); the two daemons take turns for ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.client import INVOKE_PATH, request
from benchmarks.control import Daemon
from benchmarks.machine import cpu_seconds, describe

TEMPLATE = """
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 5
Parameters:
  Stage: {Type: String, Default: dev}
Resources:
  HelloFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: %s
      Handler: app.handler
      Runtime: python3.12
      AutoPublishAlias: live
      Environment: {Variables: {STAGE: !Ref Stage}}
      Events:
        Api: {Type: HttpApi, Properties: {Path: '/hello/{name}', Method: get}}
        Q: {Type: SQS, Properties: {Queue: !GetAtt Q.Arn}}
  Q:
    Type: AWS::SQS::Queue
"""
PRINTER = """#!%s
import http.client, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    body = r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    print("handled", rid, flush=True)
    conn.request("POST", "/2018-06-01/runtime/invocation/" + rid + "/response", body)
    conn.getresponse().read()
"""


def import_times(modules: list[str], n: int) -> dict[str, float | None]:
    """Median wall time of ``python -c "import M"`` per module, the modules taking turns."""
    samples: dict[str, list[float]] = {m: [] for m in modules}
    missing: set[str] = set()
    for _ in range(n):
        for module in modules:
            if module in missing:
                continue
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
            if done.returncode != 0:
                missing.add(module)
                continue
            samples[module].append(time.perf_counter() - t0)
    return {m: (None if m in missing else statistics.median(v)) for m, v in samples.items()}


def load_times(tmp: Path, n: int) -> tuple[float, float | None]:
    (tmp / "src").mkdir()
    (tmp / "src" / "app.py").write_text("def handler(e, c):\n    return e\n")
    path = tmp / "template.yaml"
    path.write_text(TEMPLATE % "src/")
    from rapid.template import load_template
    from rapid.template.plan import check

    ours = []
    for _ in range(n):
        t0 = time.perf_counter()
        check(load_template(str(path)))
        ours.append(time.perf_counter() - t0)
    try:
        from samtranslator.translator.transform import transform
        from samtranslator.yaml_helper import yaml_parse
    except ImportError:
        return statistics.median(ours), None
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    text = (TEMPLATE % "s3://bucket/key")
    theirs = []
    for _ in range(n):
        t0 = time.perf_counter()
        transform(yaml_parse(text), {}, None)
        theirs.append(time.perf_counter() - t0)
    return statistics.median(ours), statistics.median(theirs)


def log_cpu(tmp: Path, invokes: int, rounds: int) -> tuple[float, float]:
    import base64
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        zf.writestr(info, PRINTER % sys.executable)
    zipped = base64.b64encode(buf.getvalue()).decode()
    daemons = {}
    for label, env in (("kept", None), ("stdout", "0")):
        os.environ.pop("RAPID_LOG_MAX_BYTES", None)
        if env is not None:
            os.environ["RAPID_LOG_MAX_BYTES"] = env
        d = Daemon(tmp / label)
        d.call("POST", "/2015-03-31/functions", {"FunctionName": "p", "Runtime": "provided.al2023", "Timeout": 30,
                                                 "Role": "arn:aws:iam::000000000000:role/bench",
                                                 "Code": {"ZipFile": zipped}}, 201)
        daemons[label] = d
    os.environ.pop("RAPID_LOG_MAX_BYTES", None)
    req = request(INVOKE_PATH.format(name="p"), b"{}")
    cpu = {label: 0.0 for label in daemons}
    try:
        for d in daemons.values():
            for _ in range(200):
                d.conn.roundtrip(req)
        for _ in range(rounds):
            for label, d in daemons.items():
                c0 = cpu_seconds(d.proc.pid)
                for _ in range(invokes):
                    d.conn.roundtrip(req)
                cpu[label] += cpu_seconds(d.proc.pid) - c0
    finally:
        for d in daemons.values():
            d.stop()
    n = invokes * rounds
    return cpu["kept"] / n * 1e6, cpu["stdout"] / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--imports", type=int, default=7)
    p.add_argument("--loads", type=int, default=50)
    p.add_argument("--invokes", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--json")
    args = p.parse_args()
    print(describe())
    out: dict[str, float] = {}
    candidates = (("rapid.template", "rapid.daemon, rapid.template.service"),
                  ("samtranslator", "rapid.daemon, samtranslator.translator.transform"),
                  ("cfnlint", "rapid.daemon, cfnlint.api"))
    times = import_times(["rapid.daemon", *(m for _, m in candidates)], args.imports)
    base = times["rapid.daemon"]
    assert base is not None
    print(f"import rapid.daemon: {base * 1e3:.0f} ms (the reference)")
    for label, module in candidates:
        got = times[module]
        if got is None:
            print(f"import {module}: not installed")
            continue
        out[f"import_{label}_ratio"] = got / base
        print(f"import {module}: {got * 1e3:.0f} ms, {got / base:.2f}x import rapid.daemon alone")
    with tempfile.TemporaryDirectory(prefix="rapid-bench-templates-") as tmp:
        (Path(tmp) / "load").mkdir()
        ours, theirs = load_times(Path(tmp) / "load", args.loads)
        print(f"load + check a SAM template with rapid.template: {ours * 1e3:.2f} ms")
        if theirs is not None:
            out["load_ratio"] = ours / theirs
            print(f"  {ours / theirs:.2f}x samtranslator's transform of it ({theirs * 1e3:.2f} ms)")
        kept, plain = log_cpu(Path(tmp), args.invokes, args.rounds)
        out["log_cpu_ratio"] = kept / plain
        print(f"daemon CPU per invoke, logs kept in the data dir: {kept:.0f} us; {kept / plain:.3f}x "
              f"stdout only ({plain:.0f} us)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
