"""What a gradual deployment in progress, and an autoscaled alias, cost the invoke path.

    python -m benchmarks.deployments [--rounds 5] [--rate 500] [--seconds 8]

One rapid daemon (``--data-dir`` in a scratch folder) with one function created through
the Lambda API on the benchmarks' echo bootstrap, two published versions and an alias
``live``. Each round invokes ``fn:live`` at ``--rate`` per second for ``--seconds`` on one
keep-alive connection under three conditions, in an order that rotates from round to round:

- ``steady``: the alias on version 1, nothing else;
- ``deploying``: a CodeDeploy ``Canary10Percent30Minutes`` from 1 to 2 in its canary step
  (10 % on version 2; every finished invocation goes to the deployment's alarms), stopped
  (rolled back) after the measurement;
- ``autoscaled``: a scalable target with a target tracking policy on the alias (its
  provisioned concurrency 1, measured and evaluated as the autoscaler runs).

The figure is the daemon's CPU per invoke (utime + stime from /proc) under each, and the
per-round ratios deploying / steady and autoscaled / steady, as a median with [min-max].
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from benchmarks.dashboard import cpu_seconds, invoke_for, start_daemon

LIVE = "/2015-03-31/functions/fn/invocations?Qualifier=live"

HERE = Path(__file__).resolve().parent
DIM = "lambda:function:ProvisionedConcurrency"


def _zip(comment: str) -> bytes:
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
    source = f"#!{python}\n# {comment}\n" + (HERE / "echo_bootstrap.py").read_text().split("\n", 1)[1]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = (0o755 | 0o100000) << 16
        zf.writestr(info, source)
    return buf.getvalue()


class Api:
    def __init__(self, port: int) -> None:
        self.port = port

    def call(self, method: str, path: str, body: object = None, target: str | None = None) -> dict:  # type: ignore[type-arg]
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": "application/x-amz-json-1.1" if target else "application/json"}
        if target:
            headers["X-Amz-Target"] = target
        conn.request(method, path, json.dumps(body).encode() if body is not None else None, headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if resp.status >= 300:
            raise SystemExit(f"{method} {path} {target or ''}: {resp.status} {data[:300]!r}")
        return json.loads(data) if data else {}


def setup(api: Api) -> None:
    fn = "/2015-03-31/functions"
    api.call("POST", fn, {"FunctionName": "fn", "Runtime": "provided.al2023", "Handler": "x",
                          "Role": "arn:aws:iam::000000000000:role/bench", "Code": {"ZipFile": base64.b64encode(
                              _zip("one")).decode()}})
    while api.call("GET", f"{fn}/fn/configuration").get("State") != "Active":
        time.sleep(0.1)
    api.call("POST", f"{fn}/fn/versions", {})
    api.call("PUT", f"{fn}/fn/code", {"ZipFile": base64.b64encode(_zip("two")).decode()})
    while api.call("GET", f"{fn}/fn/configuration").get("LastUpdateStatus") != "Successful":
        time.sleep(0.1)
    api.call("POST", f"{fn}/fn/versions", {})
    api.call("POST", f"{fn}/fn/aliases", {"Name": "live", "FunctionVersion": "1"})


def condition(api: Api, name: str) -> object:
    """Put the daemon in ``name``; what undoes it."""
    if name == "deploying":
        spec = {"Resources": [{"f": {"Type": "AWS::Lambda::Function", "Properties": {
            "Name": "fn", "Alias": "live", "CurrentVersion": "1", "TargetVersion": "2"}}}]}
        did = api.call("POST", "/", {"applicationName": "a", "deploymentGroupName": "g",
                                     "deploymentConfigName": "CodeDeployDefault.LambdaCanary10Percent30Minutes",
                                     "revision": {"revisionType": "AppSpecContent",
                                                  "appSpecContent": {"content": json.dumps(spec)}}},
                       "CodeDeploy_20141006.CreateDeployment")["deploymentId"]
        while api.call("GET", "/2015-03-31/functions/fn/aliases/live").get("RoutingConfig") is None:
            time.sleep(0.05)
        return lambda: api.call("POST", "/", {"deploymentId": did}, "CodeDeploy_20141006.StopDeployment")
    if name == "autoscaled":
        scope = {"ServiceNamespace": "lambda", "ResourceId": "function:fn:live", "ScalableDimension": DIM}
        api.call("POST", "/", {**scope, "MinCapacity": 1, "MaxCapacity": 1},
                 "AnyScaleFrontendService.RegisterScalableTarget")
        api.call("POST", "/", {**scope, "PolicyName": "p", "PolicyType": "TargetTrackingScaling",
                               "TargetTrackingScalingPolicyConfiguration": {"TargetValue": 0.7,
                                   "PredefinedMetricSpecification": {"PredefinedMetricType":
                                                                     "LambdaProvisionedConcurrencyUtilization"}}},
                 "AnyScaleFrontendService.PutScalingPolicy")
        return lambda: api.call("POST", "/", scope, "AnyScaleFrontendService.DeregisterScalableTarget")
    return lambda: None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.deployments", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--rate", type=float, default=500.0, help="invokes per second (default 500)")
    p.add_argument("--seconds", type=float, default=8.0, help="per measurement (default 8)")
    args = p.parse_args(argv)
    names = ["steady", "deploying", "autoscaled"]
    per: dict[str, list[float]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {"deploying": [], "autoscaled": []}
    with tempfile.TemporaryDirectory(prefix="rapid-bench-deploy-") as workdir:
        proc, port = start_daemon(workdir, ["--data-dir", workdir + "/state"])
        api = Api(port)
        try:
            setup(api)
            invoke_for(port, args.rate, 1.0, LIVE, check=True)  # warm
            for r in range(args.rounds):
                figures = {}
                for name in names[r % 3:] + names[:r % 3]:
                    undo = condition(api, name)
                    invoke_for(port, args.rate, 0.5, LIVE, check=True)  # version 2's instance is up too
                    cpu0 = cpu_seconds(proc.pid)
                    n = invoke_for(port, args.rate, args.seconds, LIVE, check=True)
                    figures[name] = (cpu_seconds(proc.pid) - cpu0) / n * 1e6
                    undo()  # type: ignore[operator]
                    time.sleep(0.5)
                for name in names:
                    per[name].append(figures[name])
                for name in ratios:
                    ratios[name].append(figures[name] / figures["steady"])
                print(f"round {r + 1}: " + ", ".join(f"{n} {figures[n]:.0f} us/inv" for n in names), file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"alias invokes at {args.rate:g}/s for {args.seconds:g} s, {args.rounds} rounds: daemon CPU per invoke")
    for name in names:
        print(f"  {name:<11} {statistics.median(per[name]):.0f} us (median)")
    for name, rs in ratios.items():
        print(f"  {name} / steady: {statistics.median(rs):.3f} [{min(rs):.3f}-{max(rs):.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
