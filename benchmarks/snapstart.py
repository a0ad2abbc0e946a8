"""(9) snapstart: a SnapStart instance's first response against a bare start.

The function is the bundled Python runtime with a handler whose module imports something
heavy (boto3 when it is installed, else a set of large standard-library packages). Each
sample measures, side by side:

- **bare start**: the same bootstrap and handler spawned against a fake Runtime API in the
  harness; from the spawn to its response to one event (interpreter start, the import,
  the handler);
- **SnapStart instance**: a rapid daemon serving the function with ``snap_start = true``,
  its template already initialised (by a first invoke, as Lambda takes the snapshot when
  a version is published); while that instance is busy, a second invoke needs a new one:
  forked from the template, restore phase, handler. Timed from the invoke to its answer;
- **on-demand instance**: the same, with ``snap_start = false`` (a fresh process, the import
  inside the invoke);
- **SnapStart, own uids** (as root, with ``/usr/bin/python3``): the handler is a published
  version of runtime pythonX.Y made through the control plane, so it runs on the system's
  Python, which every uid can execute: the template runs init under a uid of its own and
  each fork takes a user namespace mapped onto its own uid (the two rows above run on the
  harness's interpreter; where that lives under /root, their instances keep root). Its bare
  start is the same handler on ``/usr/bin/python3``.

Reported per row as the median first response and its ratio to the bare start of the same
sample (median of the per-sample ratios). Budget (issue 10): SnapStart below the bare start.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

from benchmarks.client import Connection, request
from benchmarks.procs import FakeRuntimeAPI, HostError, clean_env, end, spawn
from benchmarks.scenarios import Context, Round, Scenario, _check

HEAVY = '''
import os, time
try:
    import boto3  # noqa: F401 - the heavy import a real function starts with
    HEAVY = "boto3"
except ImportError:
    import asyncio, email.mime.multipart, http.server, sqlite3, unittest, xml.dom.minidom, decimal  # noqa
    HEAVY = "stdlib"

def handler(event, context):
    if isinstance(event, dict) and event.get("sleep"):
        time.sleep(event["sleep"])
    return event
'''
_EVENT = b'{"n": 1}'


def bootstrap_path() -> str:
    return str(Path(__file__).resolve().parent.parent / "bootstraps" / "python" / "bootstrap")


SYSTEM_PYTHON = "/usr/bin/python3"


def bare_handler_start(folder: str, logs: str, timeout: float = 30.0, python: str | None = None) -> float:
    """Seconds from spawning the bundled runtime on ``app.handler`` to its first response."""
    api = FakeRuntimeAPI(_EVENT)
    env = clean_env({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.port}", "LAMBDA_TASK_ROOT": folder, "_HANDLER": "app.handler",
        "AWS_LAMBDA_FUNCTION_NAME": "bare", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    })
    proc = None
    try:
        t0 = time.perf_counter()
        proc = spawn([python or sys.executable, bootstrap_path()], cwd=folder, env=env,
                     stdout=os.path.join(logs, "snap-bare.out"), stderr=os.path.join(logs, "snap-bare.err"))
        if not api.wait(timeout):
            raise HostError(f"bare start did not answer within {timeout:.0f} s")
        if api.response.strip() != _EVENT:
            raise HostError(f"bare start answered {api.response[:100]!r}")
        return api.responded - t0
    finally:
        if proc is not None:
            end(proc, grace=0.0)
        api.close()


class SnapStart(Scenario):
    name, number, title = "snapstart", 9, "SnapStart: a new instance's first response against a bare start"
    figures = ("first_ms", "bare_ms", "over_bare_x")

    def workload(self, ctx: Context) -> str:
        return (f"{ctx.sizes.cold} samples of: a bare start of the bundled Python runtime whose handler imports "
                "boto3 (spawn -> first response), then a rapid daemon with the function (snap_start on, and off), "
                "one invoke to initialise, then a second invoke while the first instance is busy: a new instance's "
                "first response, invoke -> answer")

    def unsupported(self, kind: str) -> str | None:
        return "" if kind == "rapid" else None

    def run(self, ctx: Context, target: str) -> Round:
        folder = Path(ctx.workdir, "snap-function")
        folder.mkdir(exist_ok=True)
        (folder / "app.py").write_text(HEAVY)
        rows: dict[str, list[tuple[float, float]]] = {"SnapStart instance": [], "on-demand instance": []}
        own_uids = _own_uids_possible()
        if own_uids:
            rows["SnapStart, own uids"] = []
        total = ctx.sizes.cold
        for i in range(total):
            ctx.progress(i / total)
            for row, snap in (("SnapStart instance", True), ("on-demand instance", False)):
                bare = bare_handler_start(str(folder), ctx.logs)
                first = self._new_instance(ctx, target, folder, snap)
                rows[row].append((first, bare))
            if own_uids:
                bare = bare_handler_start(str(folder), ctx.logs, python=SYSTEM_PYTHON)
                rows["SnapStart, own uids"].append((self._new_published_instance(ctx, target), bare))
        out = Round()
        for row, items in rows.items():
            out.rows[row] = {
                "first_ms": statistics.median(f for f, _ in items) * 1e3,
                "bare_ms": statistics.median(b for _, b in items) * 1e3,
                "over_bare_x": statistics.median(f / b for f, b in items),
            }
            out.samples[row] = [round(f * 1e6, 1) for f, _ in items]
        return out

    @staticmethod
    def _new_instance(ctx: Context, target: str, folder: Path, snap: bool) -> float:
        toml = Path(ctx.workdir, ctx.tag("snapstart") + ".toml")
        toml.write_text(f'[functions.snap]\npath = "{folder}"\nruntime = "python"\nhandler = "app.handler"\n'
                        f"snap_start = {'true' if snap else 'false'}\ntimeout = 30\n")
        server = ctx.rapid(target, ["--config", str(toml)], "snapstart", function="snap")
        try:
            with Connection(server.port) as conn:  # init (the template, or the first instance)
                status, body, _ = conn.roundtrip(request(server.path(), _EVENT))
                _check(status, body, None)
            busy = threading.Thread(target=_invoke, args=(server.port, server.path(), b'{"sleep": 1.5}'))
            busy.start()
            time.sleep(0.3)  # the first instance has its invocation: the next one needs a new instance
            with Connection(server.port) as conn:
                t0 = time.perf_counter()
                status, body, _ = conn.roundtrip(request(server.path(), _EVENT))
                first = time.perf_counter() - t0
                _check(status, body, None)
                if json.loads(body) != json.loads(_EVENT):
                    raise HostError(f"answered {body[:100]!r}")
            busy.join()
            return first
        finally:
            server.stop()


    @staticmethod
    def _new_published_instance(ctx: Context, target: str) -> float:
        """The same, for a published version made through the control plane on the system's
        Python (so nothing keeps root: the template and every fork run under uids of their own)."""
        import boto3
        from botocore.config import Config

        data = Path(ctx.workdir, ctx.tag("snapstart-data"))
        server = ctx.rapid(target, ["--data-dir", str(data)], "snapstart-own", env={"PATH": "/usr/bin:/bin"})
        try:
            lam = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{server.port}", region_name="us-east-1",
                               aws_access_key_id="bench", aws_secret_access_key="bench",
                               config=Config(retries={"max_attempts": 0}, read_timeout=60))
            lam.create_function(FunctionName="snap", Runtime=_system_runtime(), Handler="app.handler",
                                Role="arn:aws:iam::000000000000:role/bench", Code={"ZipFile": _zip(HEAVY)},
                                SnapStart={"ApplyOn": "PublishedVersions"}, Timeout=30)
            deadline = time.monotonic() + 30
            while lam.get_function_configuration(FunctionName="snap")["State"] != "Active":
                if time.monotonic() > deadline:
                    raise HostError("the function never became Active")
                time.sleep(0.05)
            version = lam.publish_version(FunctionName="snap")["Version"]
            path = f"{server.path('snap')}?Qualifier={version}"
            with Connection(server.port) as conn:  # init: the template
                status, body, _ = conn.roundtrip(request(path, _EVENT))
                _check(status, body, None)
            busy = threading.Thread(target=_invoke, args=(server.port, path, b'{"sleep": 1.5}'))
            busy.start()
            time.sleep(0.3)
            with Connection(server.port) as conn:
                t0 = time.perf_counter()
                status, body, _ = conn.roundtrip(request(path, _EVENT))
                first = time.perf_counter() - t0
                _check(status, body, None)
                if json.loads(body) != json.loads(_EVENT):
                    raise HostError(f"answered {body[:100]!r}")
            busy.join()
            if "runs as root" in Path(server.stderr).read_text(errors="replace"):
                raise HostError("the published version kept root: the row would not measure own uids")
            return first
        finally:
            server.stop()


def _zip(app: str) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("app.py")
        info.external_attr = 0o100644 << 16  # readable by every uid, as Lambda requires
        zf.writestr(info, app)
    return buf.getvalue()


def _own_uids_possible() -> bool:
    if os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK):
        return False
    try:
        import boto3  # noqa: F401 - the control plane's client
    except ImportError:
        return False
    return True


def _system_runtime() -> str:
    import subprocess

    out = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('python%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _invoke(port: int, path: str, body: bytes) -> None:
    with Connection(port) as conn:
        conn.roundtrip(request(path, body))
