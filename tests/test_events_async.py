"""Asynchronous invocation against the real daemon and real runtimes: durable 202, retries,
event age, destinations (file, built-in queue, another function, HTTP), dead letters,
concurrency shared with synchronous invokes. Time runs 100x faster (async_time_scale 0.01):
a one-minute retry takes 0.6 s."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import sqlite3
import threading
import time

import boto3
import pytest
from botocore.config import Config

from tests.daemon import BEHAVE, make_function, run_cli, run_server

SCALE = 0.01
ACCOUNT, REGION = "000000000000", "us-east-1"


def lam_arn(name):
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def sqs_arn(name):
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


class Env:
    def __init__(self, daemon, root):
        self.d = daemon
        self.root = root
        self.data = root / "data"

    def file(self, name):
        return self.root / f"{name}.ndjson"

    def event(self, fn, payload):
        r = self.d.invoke(fn, payload, headers={"X-Amz-Invocation-Type": "Event"})
        assert r.status == 202 and r.body == b"", r.body
        return r.headers["x-amzn-requestid"]

    def records(self, name):
        path = self.file(name)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]

    def record_for(self, name, rid, timeout=20):
        return wait_for(lambda: next((r for r in self.records(name) if r["requestContext"]["requestId"] == rid),
                                     None), timeout, f"a record for {rid} in {name}")

    def db(self):
        return contextlib.closing(sqlite3.connect(f"file:{self.data / 'events.db'}?mode=ro", uri=True))

    def messages(self, queue):
        r = run_cli(["queue", "--data-dir", str(self.data), "--messages", queue])
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines()]

    def metric(self, name, **labels):
        text = self.d.request("GET", "/metrics").body.decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def reports(self, rid, at_least=1):
        """The REPORT lines of ``rid``'s attempts, once there are ``at_least`` (the log
        stream can trail the record, which the writer thread fsyncs on its own)."""
        def found():
            return [line for line in list(self.d.lines) if f"REPORT RequestId: {rid}" in line]

        wait_for(lambda: len(found()) >= at_least, 10, f"{at_least} REPORT line(s) for {rid}")
        return found()


def wait_for(probe, timeout=20, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def env(tmp_path):
    # A daemon per test: each test's figures are its own, whatever ran before it.
    root = tmp_path
    behave = make_function(root / "behave", BEHAVE)
    f = lambda name: f"file://{root / name}.ndjson"
    (root / "rapid.toml").write_text(f"""
data_dir = "data"
async_time_scale = {SCALE}

[functions.ok]
path = "{behave}"
on_success = "{f('ok')}"
on_failure = "{sqs_arn('failures')}"
dead_letter = "{sqs_arn('dlq')}"

[functions.src]
path = "{behave}"
on_success = "{lam_arn('target')}"
on_failure = "{lam_arn('target')}"

[functions.target]
path = "{behave}"
on_success = "{f('target')}"

[functions.aged]
path = "{behave}"
maximum_event_age = 60
on_failure = "{f('aged')}"

[functions.one]
path = "{behave}"
reserved_concurrency = 1
on_success = "{f('one')}"
on_failure = "{f('one')}"

[functions.two]
path = "{behave}"
reserved_concurrency = 2
on_success = "{f('two')}"

[functions.zero]
path = "{behave}"
reserved_concurrency = 0
on_failure = "{f('zero')}"
dead_letter = "{sqs_arn('zero-dlq')}"

[functions.hook]
path = "{behave}"
""")
    slow_init = make_function(root / "slow_init", BEHAVE.replace("keep = []", "time.sleep(0.5)\nkeep = []", 1))
    with (root / "rapid.toml").open("a") as toml:
        toml.write(f"""
[functions.cold]
path = "{slow_init}"
reserved_concurrency = 1
on_success = "{f('cold')}"
on_failure = "{f('cold')}"
""")
    with run_server(["--config", str(root / "rapid.toml")]) as d:
        yield Env(d, root)


def test_event_is_durable_before_202_then_processed(env):
    rid = env.event("ok", {"sleep": 0.5})
    # The 202 came after the commit: the event is on disk already, before it has run.
    with env.db() as db:
        assert db.execute("SELECT COUNT(*) FROM events WHERE request_id = ?", (rid,)).fetchone() == (1,)
    rec = env.record_for("ok", rid)
    assert rec["version"] == "1.0" and rec["timestamp"].endswith("Z")
    assert rec["requestContext"] == {
        "requestId": rid, "functionArn": f"{lam_arn('ok')}:$LATEST", "condition": "Success",
        "approximateInvokeCount": 1,
    }
    assert rec["requestPayload"] == {"sleep": 0.5}
    assert rec["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert rec["responsePayload"] == "slept"
    assert len(env.reports(rid)) == 1

    def gone():  # the record is fsync'd first, then the event deleted in the next commit
        with env.db() as db:
            return db.execute("SELECT COUNT(*) FROM events WHERE request_id = ?", (rid,)).fetchone() == (0,)

    wait_for(gone, 10, "the event to leave the queue")


def test_success_record_carries_the_response(env):
    rid = env.event("ok", {"echo": {"answer": 42}})
    rec = env.record_for("ok", rid)
    assert rec["requestContext"]["condition"] == "Success" and rec["responsePayload"] == {"answer": 42}


def test_function_error_retried_twice_then_on_failure_and_dead_letter(env):
    t0 = time.monotonic()
    rid = env.event("ok", {"error": "Boom"})

    def failure():
        return next((m for m in env.messages("failures") if rid in m["Body"]), None)

    msg = wait_for(failure, 20, "the on-failure record")
    # Two retries, one (scaled) minute then two: 0.6 s + 1.2 s at the least.
    assert time.monotonic() - t0 >= 1.8
    rec = json.loads(msg["Body"])
    assert rec["requestContext"] == {
        "requestId": rid, "functionArn": f"{lam_arn('ok')}:$LATEST", "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert rec["requestPayload"] == {"error": "Boom"}
    assert rec["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert rec["responsePayload"] == {"errorMessage": "boom", "errorType": "Boom"}
    assert len(env.reports(rid, 3)) == 3  # the function really ran three times
    # The dead letter: the event as-is, with AWS's attributes.
    (dead,) = [m for m in env.messages("dlq") if m["MessageAttributes"]["RequestID"]["StringValue"] == rid]
    assert json.loads(dead["Body"]) == {"error": "Boom"}
    assert dead["MessageAttributes"] == {
        "RequestID": {"DataType": "String", "StringValue": rid},
        "ErrorCode": {"DataType": "Number", "StringValue": "200"},
        "ErrorMessage": {"DataType": "String", "StringValue": "boom"},
    }
    assert env.metric("rapid_async_retries_total", function="ok", reason="function_error") == 2
    assert env.metric("rapid_async_dead_letters_total", function="ok") == 1


def test_event_age_exceeded(env):
    # maximum_event_age 60 s (0.6 s scaled): the first retry would come after one minute,
    # when the event is already too old.
    t0 = time.monotonic()
    rid = env.event("aged", {"error": "Late"})
    rec = env.record_for("aged", rid)
    assert time.monotonic() - t0 >= 0.6
    assert rec["requestContext"]["condition"] == "EventAgeExceeded"
    assert rec["requestContext"]["approximateInvokeCount"] == 1
    assert rec["responseContext"]["functionError"] == "Unhandled"
    assert rec["responsePayload"]["errorType"] == "Late"
    assert len(env.reports(rid)) == 1
    assert env.metric("rapid_async_failed_total", function="aged", condition="EventAgeExceeded") == 1


def test_destination_function_is_invoked_with_the_record(env):
    ok = env.event("src", {"echo": "hi"})
    bad = env.event("src", {"error": "Nope"})
    # target ran asynchronously with src's records as its events; its own on-success
    # records show what it was given.
    def given(rid):
        for rec in env.records("target"):
            payload = rec["requestPayload"]
            if isinstance(payload, dict) and payload.get("requestContext", {}).get("requestId") == rid:
                return rec
        return None

    rec = wait_for(lambda: given(ok), 20, "target's record of src's success")
    inner = rec["requestPayload"]
    assert inner["requestContext"]["condition"] == "Success"
    assert inner["requestContext"]["functionArn"] == f"{lam_arn('src')}:$LATEST"
    assert inner["requestPayload"] == {"echo": "hi"} and inner["responsePayload"] == "hi"
    assert rec["requestContext"]["functionArn"] == f"{lam_arn('target')}:$LATEST"
    assert rec["requestContext"]["condition"] == "Success"
    rec = wait_for(lambda: given(bad), 20, "target's record of src's failure")
    assert rec["requestPayload"]["requestContext"]["condition"] == "RetriesExhausted"
    assert rec["requestPayload"]["requestContext"]["approximateInvokeCount"] == 3


def test_throttled_events_wait_and_do_not_fail(env):
    # Reserved concurrency 1, a slow function, a burst of events, and synchronous callers
    # competing for the one instance: every event ends in Success, and the synchronous
    # callers get 200 or 429, never anything else (the events wait; the callers do not).
    stop = threading.Event()
    sync_status = []

    def caller():  # synchronous traffic while the burst is queued, and a little after
        end = time.monotonic() + 30.0
        while not stop.is_set() and time.monotonic() < end:
            sync_status.append(env.d.invoke("one", {"sleep": 0.05}).status)
            time.sleep(0.02)

    t = threading.Thread(target=caller)
    t.start()
    try:
        rids = [env.event("one", {"sleep": 0.2}) for _ in range(6)]
        # They wait in the queue on disk, visibly.
        assert env.metric("rapid_async_queue_depth", function="one") >= 2
        wait_for(lambda: env.metric("rapid_async_oldest_event_age_seconds", function="one") >= 0.2, 10,
                 "the oldest event to age")
        recs = [env.record_for("one", rid, 30) for rid in rids]
        wait_for(lambda: 200 in sync_status, 10, "a synchronous invoke to get the instance")
    finally:
        stop.set()
        t.join()
    assert [r["requestContext"]["condition"] for r in recs] == ["Success"] * 6
    assert all(r["responsePayload"] == "slept" for r in recs)
    assert 200 in sync_status and set(sync_status) <= {200, 429}
    assert env.metric("rapid_async_failed_total", function="one") == 0


def test_an_event_waits_for_room_held_by_a_sync_invoke(env):
    # A synchronous invoke holds the function's only unit of concurrency (its instance is
    # slow to init) when the event arrives: the one admission rule counts it, so the event
    # waits in the queue instead of being sent to a 429; then it runs, once, on its first
    # attempt.
    sync = []
    t = threading.Thread(target=lambda: sync.append(env.d.invoke("cold", {"echo": "sync"})))
    t.start()
    # The synchronous invoke has started the function's only instance (slow to init).
    wait_for(lambda: env.d.runtime_pids(), 10, "the cold instance to start")
    rid = env.event("cold", {"echo": "async"})
    rec = env.record_for("cold", rid)
    t.join()
    assert (sync[0].status, sync[0].json()) == (200, "sync")
    assert rec["requestContext"]["condition"] == "Success" and rec["responsePayload"] == "async"
    assert env.metric("rapid_async_retries_total", function="cold", reason="throttled") == 0
    assert rec["requestContext"]["approximateInvokeCount"] == 1
    assert len(env.reports(rid)) == 1  # it ran once


def test_legacy_invoke_async_is_durable_too(env):
    r = env.d.request("POST", "/2014-11-13/functions/ok/invoke-async/", b'{"echo": "legacy"}')
    assert r.status == 202
    rec = env.record_for("ok", r.headers["x-amzn-requestid"])
    assert rec["responsePayload"] == "legacy"


def test_async_work_leaves_a_slot_for_synchronous_invokes(env):
    # Reserved concurrency 2: async events take at most one instance at a time, so a
    # synchronous invoke always finds room.
    rids = [env.event("two", {"sleep": 0.6}) for _ in range(3)]
    env.d.wait_for_line(f"START RequestId: {rids[0]}")
    r = env.d.invoke("two", {"echo": "sync"})
    assert (r.status, r.json()) == (200, "sync")
    for rid in rids:
        env.record_for("two", rid)
        env.reports(rid)
    # The async attempts never overlapped: START a, REPORT a, START b, REPORT b, ...
    order = [(line.split("RequestId: ")[1].split()[0], line.split("] ")[1].split()[0])
             for line in env.d.lines
             if any(rid in line for rid in rids) and ("START" in line or "REPORT" in line)]
    assert [kind for _, kind in order] == ["START", "REPORT"] * 3
    assert [rid for rid, _ in order][::2] == [rid for rid, _ in order][1::2]


def test_reserved_concurrency_zero_sends_events_to_the_dead_letter_at_once(env):
    rid = env.event("zero", {"echo": 1})
    rec = env.record_for("zero", rid)
    assert rec["requestContext"]["condition"] == "RetriesExhausted"
    assert rec["requestContext"]["approximateInvokeCount"] == 1
    assert rec["responseContext"]["statusCode"] == 429
    (dead,) = wait_for(lambda: [m for m in env.messages("zero-dlq") if rid in json.dumps(m)], 10, "the dead letter")
    assert json.loads(dead["Body"]) == {"echo": 1}
    assert dead["MessageAttributes"]["ErrorCode"] == {"DataType": "Number", "StringValue": "429"}
    assert env.metric("rapid_async_retries_total", function="zero") == 0  # no retries
    assert not [line for line in env.d.lines if f"START RequestId: {rid}" in line]  # never ran


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_http_destination_down_at_first_then_recovering(env):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    lam = boto3.client("lambda", endpoint_url=env.d.url, region_name=REGION, aws_access_key_id="test",
                       aws_secret_access_key="test", config=Config(retries={"total_max_attempts": 1}))
    lam.put_function_event_invoke_config(FunctionName="hook", DestinationConfig={"OnSuccess": {"Destination": url}})
    rid = env.event("hook", {"echo": "delivered"})
    # Nobody listens yet: deliveries fail and are retried.
    wait_for(lambda: env.metric("rapid_async_destination_failures_total", function="hook") >= 2, 20,
             "failed deliveries")
    assert env.metric("rapid_async_deliveries_pending", function="hook") == 1
    received, answers = [], [503]  # then it comes up, refuses once more, then takes it

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = answers.pop(0) if answers else 200
            if status == 200:
                received.append((self.path, self.headers["Content-Type"], json.loads(body)))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path, ctype, rec = wait_for(lambda: received and received[0], 30, "the record at the endpoint")
    finally:
        server.shutdown()
        server.server_close()
    assert path == "/hook" and ctype == "application/json"
    assert rec["requestContext"]["requestId"] == rid and rec["requestContext"]["condition"] == "Success"
    assert rec["responsePayload"] == "delivered"
    assert env.metric("rapid_async_destination_failures_total", function="hook") >= 3
    wait_for(lambda: env.metric("rapid_async_destination_delivered_total", function="hook") == 1, 10, "delivered")
    assert env.metric("rapid_async_deliveries_pending", function="hook") == 0
    assert len(received) == 1


def test_rapid_queue_shows_the_same_figures_as_metrics(env):
    # Figures of its own: three successes, and one failure that fills both built-in queues.
    for i in range(3):
        env.record_for("ok", env.event("ok", {"echo": i}))
    bad = env.event("zero", {"echo": "refused"})
    wait_for(lambda: [m for m in env.messages("zero-dlq") if bad in json.dumps(m)], 10, "the dead letter")
    failed = env.event("ok", {"error": "Boom"})
    wait_for(lambda: [m for m in env.messages("failures") if failed in m["Body"]], 20, "the on-failure record")
    wait_for(lambda: env.metric("rapid_async_running") == 0, 20, "an idle queue")
    page = env.d.request("GET", "/metrics")
    assert page.status == 200 and page.headers["content-type"].startswith("text/plain; version=0.0.4")
    offline = run_cli(["queue", "--data-dir", str(env.data), "--prometheus"])
    online = run_cli(["queue", "--url", env.d.url, "--prometheus"])
    strip = lambda text: [line for line in text.splitlines() if "oldest_event_age" not in line]
    assert strip(offline.stdout) == strip(online.stdout) == strip(page.body.decode())
    table = run_cli(["queue", "--data-dir", str(env.data)]).stdout
    head, *rows = table.split("\n\n")[0].splitlines()
    assert head.split()[:4] == ["function", "depth", "running", "oldest_s"]
    ok = next(row.split() for row in rows if row.startswith("ok "))
    assert int(ok[head.split().index("accepted")]) == 4
    queues = dict(line.split() for line in table.split("\n\n")[1].splitlines()[1:])
    assert queues == {"failures": "1", "dlq": "1", "zero-dlq": "1"}  # the built-in queues
