"""Sync invokes, async events and an SQS event source mapping compete for one function's
reserved concurrency N through the one admission rule (rapid.core.admission), against a
real daemon with boto3: at no moment do more than N invocations run, no more than N
instances are ever started, the synchronous callers get 200 or 429 and nothing else, and
every event and every message is processed (the waiting ones wait; none fails for it)."""

from __future__ import annotations

import json
import threading
import time

import boto3
import botocore.config

from tests.control import ROLE, python_zip, wait_active
from tests.daemon import run_server

N = 3
EVENTS = 12
MESSAGES = 24
HANDLER = r'''
import json, os, time

def handler(event, context):
    start = time.time()
    if isinstance(event, dict) and "Records" in event:
        kind, ids = "sqs", [r["body"] for r in event["Records"]]
    else:
        kind, ids = event["kind"], [event["id"]]
    time.sleep(0.25)
    print("RAN " + json.dumps({"kind": kind, "ids": ids, "pid": os.getpid(), "start": start,
                               "end": time.time()}), flush=True)
    return {"ok": True}
'''


def test_sync_async_and_a_mapping_never_exceed_reserved_concurrency(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with run_server(["--data-dir", str(tmp_path / "data")]) as d:
        kw = dict(endpoint_url=d.url, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s",
                  config=botocore.config.Config(retries={"max_attempts": 0}, read_timeout=60))
        lam, sqs = boto3.client("lambda", **kw), boto3.client("sqs", **kw)
        lam.create_function(FunctionName="shared", Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(HANDLER)})
        wait_active(lam, "shared")
        lam.put_function_concurrency(FunctionName="shared", ReservedConcurrentExecutions=N)
        url = sqs.create_queue(QueueName="shared-q")["QueueUrl"]
        for i in range(MESSAGES):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")

        sync_status: list[int] = []
        stop = threading.Event()

        def caller() -> None:
            i = 0
            end = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < end:
                r = d.invoke("shared", {"kind": "sync", "id": f"s{threading.get_ident()}-{i}"})
                sync_status.append(r.status)
                i += 1
                time.sleep(0.01)

        callers = [threading.Thread(target=caller) for _ in range(2)]
        for t in callers:
            t.start()
        try:
            for i in range(EVENTS):
                assert lam.invoke(FunctionName="shared", InvocationType="Event",
                                  Payload=json.dumps({"kind": "async", "id": f"a{i}"}))["StatusCode"] == 202
            lam.create_event_source_mapping(EventSourceArn="arn:aws:sqs:us-east-1:000000000000:shared-q",
                                            FunctionName="shared", BatchSize=1)

            def ran() -> list[dict]:  # type: ignore[type-arg]
                return [json.loads(line.split("RAN ", 1)[1]) for line in list(d.lines) if "RAN " in line]

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = ran()
                ids = {i for r in done for i in r["ids"]}
                if {f"a{i}" for i in range(EVENTS)} | {f"m{i}" for i in range(MESSAGES)} <= ids \
                        and 200 in sync_status:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError(f"not everything ran: {sorted(ids)}")
        finally:
            stop.set()
            for t in callers:
                t.join()
        time.sleep(0.5)  # the last synchronous invocations log their lines
        runs = ran()
        kinds = {r["kind"] for r in runs}
        assert kinds == {"sync", "async", "sqs"}
        # At no moment more than N at once (each run's interval lies inside its invocation).
        edges = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs], key=lambda e: (e[0], e[1]))
        at_once = peak = 0
        for _, step in edges:
            at_once += step
            peak = max(peak, at_once)
        assert peak <= N, f"{peak} invocations ran at once with reserved concurrency {N}"
        assert len({r["pid"] for r in runs}) <= N  # never more than N instances
        assert set(sync_status) <= {200, 429} and 200 in sync_status
        # Every event succeeded (none failed or was dropped for waiting), every message is gone.
        deadline = time.monotonic() + 20
        while 'rapid_async_succeeded_total{function="shared"} 12' not in (
                metrics := d.request("GET", "/metrics").body.decode()):
            assert time.monotonic() < deadline, metrics  # the last successes are being committed
            time.sleep(0.1)
        assert 'rapid_async_failed_total{function="shared"' not in metrics
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        deadline = time.monotonic() + 10
        while (a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"]) != ("0", "0"):
            assert time.monotonic() < deadline, a
            time.sleep(0.1)
            a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        # The async events never needed a throttled attempt: they waited for room.
        assert 'rapid_async_retries_total{function="shared",reason="throttled"}' not in metrics
