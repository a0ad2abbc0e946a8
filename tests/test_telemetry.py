"""Telemetry API (2022-07-01) and Logs API (2020-08-15): a real extension subscribes, and an
HTTP server in the test (on 127.0.0.1) is its destination: what Lambda would POST to the
extension's own listener, rapid POSTs there."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.daemon import BEHAVE, make_function, run_server

SUBSCRIBER = """#!{python}
import http.client, json, os, sys
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
name = os.path.basename(sys.argv[0])
conn = http.client.HTTPConnection(api)
def call(method, path, body, headers):
    conn.request(method, path, body, headers)
    r = conn.getresponse()
    return r.status, r.getheader("Lambda-Extension-Identifier"), r.read()
_, ident, _ = call("POST", "/2020-01-01/extension/register", json.dumps({"events": ["INVOKE", "SHUTDOWN"]}),
                   {"Lambda-Extension-Name": name})
checks = {}
port = int(os.environ["SINK_PORT"])
def subscribe(path, body, ident=ident):
    s, _, b = call("PUT", path, json.dumps(body), {"Lambda-Extension-Identifier": ident or ""})
    return [s, json.loads(b)]
dest = {"protocol": "HTTP", "URI": "http://sandbox.localdomain:%d/telemetry" % port}
checks["bad_items"] = subscribe("/2022-07-01/telemetry", {"schemaVersion": "2022-12-13", "destination": dest,
    "types": ["platform"], "buffering": {"maxItems": 5}})
checks["no_types"] = subscribe("/2022-07-01/telemetry", {"schemaVersion": "2022-12-13", "destination": dest, "types": []})
checks["outside"] = subscribe("/2022-07-01/telemetry", {"schemaVersion": "2022-12-13",
    "destination": {"protocol": "HTTP", "URI": "http://example.com:80/"}, "types": ["platform"]})
checks["no_id"] = subscribe("/2022-07-01/telemetry", {"schemaVersion": "2022-12-13", "destination": dest,
    "types": ["platform"]}, ident=None)
api_path = os.environ.get("SUBSCRIBE_PATH", "/2022-07-01/telemetry")
if os.environ.get("TCP_PORT"):
    dest = {"protocol": "TCP", "port": int(os.environ["TCP_PORT"])}
body = {"destination": dest, "types": os.environ.get("TYPES", "platform,function,extension").split(","),
        "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25}}
body["schemaVersion"] = os.environ.get("SCHEMA", "2022-12-13")
checks["ok"] = subscribe(api_path, body)
with open(os.path.join(os.environ["OUT"], "checks.json"), "w") as f:
    json.dump(checks, f)
print("subscriber ready", flush=True)
while True:
    conn.request("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ident})
    r = conn.getresponse()
    if json.loads(r.read())["eventType"] == "SHUTDOWN":
        sys.exit(0)
""".replace("{python}", sys.executable)


class Sink:
    """The destination: collects every batch POSTed; can hold deliveries back."""

    def __init__(self) -> None:
        self.batches: list[list[dict]] = []
        self.paths: list[str] = []
        self.open = threading.Event()
        self.open.set()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.open.wait(30)
                sink.paths.append(self.path)
                sink.batches.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def events(self) -> list[dict]:
        return [e for batch in list(self.batches) for e in batch]

    def wait(self, predicate, timeout: float = 15.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events
            if predicate(events):
                return events
            time.sleep(0.02)
        summary = [(e["type"], e["record"] if e["type"] != "function" else len(e["record"])) for e in self.events]
        raise AssertionError(f"telemetry never arrived; {len(self.batches)} batches: {[t for t in summary if t[0] != 'function']} functions: {sum(1 for t in summary if t[0] == 'function')}"[-6000:])

    def close(self) -> None:
        self.open.set()
        self.server.shutdown()
        self.server.server_close()


def _setup(tmp_path: Path, **env: str):
    out = tmp_path / "out"
    out.mkdir()
    fn = make_function(tmp_path / "fn", BEHAVE)
    (fn / "extensions").mkdir()
    agent = fn / "extensions" / "tel-agent"
    agent.write_text(SUBSCRIBER)
    agent.chmod(0o755)
    sink = Sink()
    args = ["--function", f"f={fn}", "--env", f"OUT={out}", "--env", f"SINK_PORT={sink.port}",
            "--concurrency", "1"]
    for k, v in env.items():
        args += ["--env", f"{k}={v}"]
    return out, sink, args, {"RAPID_PRIVATE_TMP": "directory", "RAPID_OVERFLOW": "queue"}


def _reported(rid: str):
    return lambda events: any(e["type"] == "platform.report" and e["record"]["requestId"] == rid for e in events)


def test_cold_and_warm_invoke_sequence(tmp_path):
    out, sink, args, env = _setup(tmp_path)
    try:
        with run_server(args, env=env) as d:
            cold = d.invoke("f", {"print": "hello from the function"})
            warm = d.invoke("f", {"print": "again"})
            assert cold.status == warm.status == 200
            c, w = cold.headers["x-amzn-requestid"], warm.headers["x-amzn-requestid"]
            events = sink.wait(_reported(w))
        assert sink.paths[0] == "/telemetry"
        for e in events:
            assert set(e) == {"time", "type", "record"}
            assert e["time"].endswith("Z") and "T" in e["time"]
        kinds = [e["type"] for e in events]
        # Cold: init (with the extension and its subscription), then the invocation.
        order = ["platform.initStart", "platform.extension", "platform.telemetrySubscription",
                 "platform.initRuntimeDone", "platform.initReport", "platform.start", "function",
                 "platform.runtimeDone", "platform.report", "platform.start", "function",
                 "platform.runtimeDone", "platform.report"]
        seen = [k for k in kinds if k in order]
        assert seen[:len(order)] == order, kinds
        assert "extension" in kinds  # the agent's own "subscriber ready" line
        by_kind = {}
        for e in events:
            by_kind.setdefault(e["type"], []).append(e["record"])
        init_start = by_kind["platform.initStart"][0]
        assert init_start["initializationType"] == "on-demand" and init_start["phase"] == "init"
        assert init_start["functionName"] == "f" and init_start["functionVersion"] == "$LATEST"
        assert by_kind["platform.extension"][0] == {"name": "tel-agent", "state": "Ready",
                                                   "events": ["INVOKE", "SHUTDOWN"]}
        assert by_kind["platform.telemetrySubscription"][0] == {
            "name": "tel-agent", "state": "Subscribed", "types": ["platform", "function", "extension"]}
        assert by_kind["platform.initRuntimeDone"][0] == {"initializationType": "on-demand", "phase": "init",
                                                          "status": "success"}
        init_report = by_kind["platform.initReport"][0]
        assert init_report["status"] == "success" and init_report["metrics"]["durationMs"] > 0
        starts = by_kind["platform.start"]
        assert [s["requestId"] for s in starts] == [c, w]
        assert starts[0]["version"] == "$LATEST" and starts[0]["tracing"]["type"] == "X-Amzn-Trace-Id"
        assert by_kind["function"] == ["hello from the function", "again"]
        done = by_kind["platform.runtimeDone"]
        assert [r["requestId"] for r in done] == [c, w]
        assert done[0]["status"] == "success"
        assert done[0]["metrics"]["producedBytes"] == len(cold.body)
        assert done[0]["metrics"]["durationMs"] >= 0
        reports = by_kind["platform.report"]
        assert [r["requestId"] for r in reports] == [c, w]
        m0, m1 = reports[0]["metrics"], reports[1]["metrics"]
        assert set(m0) == {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB", "initDurationMs"}
        assert set(m1) == {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB"}
        assert m0["memorySizeMB"] == 128 and m0["maxMemoryUsedMB"] > 0
        assert reports[0]["status"] == "success"
        # The same numbers as the REPORT line in the log stream.
        line = next(x for x in d.lines if x.startswith(f"[f] REPORT RequestId: {w}"))
        # The line shows the raw duration to 2 decimals, the record to 3: the same measure,
        # so they agree to the line's precision (formatting the 3-decimal figure would round twice).
        logged = float(re.search(r"\tDuration: ([0-9.]+) ms", line).group(1))
        assert abs(logged - m1["durationMs"]) <= 0.0051, (logged, m1)
        assert f"Billed Duration: {m1['billedDurationMs']} ms" in line
        checks = json.loads((out / "checks.json").read_text())
        assert checks["ok"] == [200, "OK"]
        assert checks["bad_items"][0] == 400 and checks["bad_items"][1]["errorType"] == "ValidationError"
        assert "maxItems" in checks["bad_items"][1]["errorMessage"]
        assert checks["no_types"] == [400, {"errorType": "ValidationError", "errorMessage": "types should not be empty"}]
        assert checks["outside"][0] == 400
        assert checks["no_id"][1]["errorType"] == "Extension.MissingExtensionIdentifier"
        assert any("TELEMETRY\tName: tel-agent\tState: Subscribed\tTypes: [Platform, Function, Extension]" in x
                   for x in d.lines)
    finally:
        sink.close()


def test_logs_api_subscription(tmp_path):
    out, sink, args, env = _setup(tmp_path, SUBSCRIBE_PATH="/2020-08-15/logs", TYPES="platform,function",
                                  SCHEMA="2020-08-15")
    try:
        with run_server(args, env=env) as d:
            r = d.invoke("f", {"print": "logged"})
            rid = r.headers["x-amzn-requestid"]
            events = sink.wait(_reported(rid))
            assert any("LOGS\tName: tel-agent\tState: Subscribed\tTypes: [Platform, Function]" in x for x in d.lines)
        kinds = [e["type"] for e in events]
        assert "platform.initStart" not in kinds and "platform.runtimeDone" not in kinds
        assert "extension" not in kinds
        i = kinds.index("platform.start")
        assert kinds[i:i + 4] == ["platform.start", "function", "platform.end", "platform.report"]
        assert events[i + 1]["record"] == "logged"
        assert events[i + 2]["record"] == {"requestId": rid}
        assert "platform.logsSubscription" in kinds
    finally:
        sink.close()


def test_slow_subscriber_drops_with_logs_dropped(tmp_path):
    """While the destination holds a delivery, the runtime writes far more than the
    subscriber's bounded buffer keeps: the rest is dropped, the invocations are answered
    anyway, and the next delivery starts with platform.logsDropped."""
    out, sink, args, env = _setup(tmp_path)
    try:
        with run_server(args, env=env) as d:
            d.invoke("f", {"echo": 0})
            sink.wait(lambda ev: any(e["type"] == "platform.report" for e in ev))
            sink.open.clear()  # the next delivery hangs until the test says
            d.invoke("f", {"echo": 1})  # one small batch: held at the destination
            line = "y" * 500
            for _ in range(3):
                r = d.invoke("f", {"print": "\n".join([line] * 1000)})
                assert r.status == 200 and r.json() == "printed"
            sink.open.set()
            # Once the notice of the loss has been delivered, the buffer has room again.
            sink.wait(lambda ev: any(e["type"] == "platform.logsDropped" for e in ev))
            last = d.invoke("f", {"echo": "last"}).headers["x-amzn-requestid"]
            events = sink.wait(_reported(last))
        dropped = [e["record"] for e in events if e["type"] == "platform.logsDropped"]
        assert dropped, "nothing was dropped"
        assert dropped[0]["droppedRecords"] > 0 and dropped[0]["droppedBytes"] > 0
        assert "slower" in dropped[0]["reason"]
        kept = sum(1 for e in events if e["type"] == "function")
        assert 0 < kept < 3000
    finally:
        sink.close()


def test_tcp_destination_gets_ndjson(tmp_path):
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    lines: list[dict] = []

    def accept() -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as f:
            for raw in f:
                lines.append(json.loads(raw))

    threading.Thread(target=accept, daemon=True).start()
    out, sink, args, env = _setup(tmp_path, TCP_PORT=str(port))
    try:
        with run_server(args, env=env) as d:
            rid = d.invoke("f", {"print": "over tcp"}).headers["x-amzn-requestid"]
            deadline = time.monotonic() + 15
            while not any(e["type"] == "platform.report" and e["record"]["requestId"] == rid for e in list(lines)):
                assert time.monotonic() < deadline, lines
                time.sleep(0.02)
        assert {"time", "type", "record"} <= set(lines[0])
        assert any(e["type"] == "function" and e["record"] == "over tcp" for e in lines)
        assert not sink.batches  # nothing went to the HTTP destination
    finally:
        sink.close()
        listener.close()
