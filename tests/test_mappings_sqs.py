"""SQS event source mappings against a real daemon, through boto3: the Lambda API's five
operations and their checks, and what the poller does with the messages (batches, errors
and redrive, ReportBatchItemFailures, filters, pausing, FIFO order, a kill -9 mid-run).

The test function logs one line per batch (``BATCH {json}``) and answers as the bodies
say: a body ``fail`` raises (the whole batch fails), a body starting ``bad`` is reported in
``batchItemFailures``; with ``DONE_QUEUE`` set it sends each body to that queue before it
answers (a durable record of what it processed, for the kill -9 test)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest

from tests.control import ROLE, python_zip, wait_active
from tests.daemon import run_cli, run_server

ACCOUNT = "000000000000"
HANDLER = r'''
import json, os, time, urllib.request

def send(body):
    url = os.environ["RAPID_URL"]
    req = urllib.request.Request(url + "/", data=json.dumps(
        {"QueueUrl": url + "/000000000000/" + os.environ["DONE_QUEUE"], "MessageBody": body}).encode(),
        headers={"X-Amz-Target": "AmazonSQS.SendMessage", "Content-Type": "application/x-amz-json-1.0"})
    urllib.request.urlopen(req, timeout=10).read()

def handler(event, context):
    bodies = [r["body"] for r in event["Records"]]
    print("BATCH " + json.dumps({"bodies": [b[:200] for b in bodies], "size": len(json.dumps(event)), "groups": [r["attributes"].get("MessageGroupId")
          for r in event["Records"]], "source": event["Records"][0]["eventSource"], "pid": os.getpid()}), flush=True)
    if os.environ.get("SLEEP"):
        time.sleep(float(os.environ["SLEEP"]))
    if "fail" in bodies:
        raise RuntimeError("this batch fails")
    if os.environ.get("DONE_QUEUE"):
        for b in bodies:
            send(b)
    failures = [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"].startswith("bad")]
    return {"batchItemFailures": failures}
'''


def clients(d):  # type: ignore[no-untyped-def]
    kw = dict(endpoint_url=d.url, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s",
              config=botocore.config.Config(retries={"max_attempts": 0}, read_timeout=60))
    return boto3.client("lambda", **kw), boto3.client("sqs", **kw)


def wait_for(probe, timeout, what):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def batches(d) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    return [json.loads(line.split("BATCH ", 1)[1]) for line in list(d.lines) if "BATCH " in line]


def seen(d) -> list[str]:  # type: ignore[no-untyped-def]
    return [b for batch in batches(d) for b in batch["bodies"]]


def counts(sqs, url: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def make_function(lam, name: str, env: dict[str, str] | None = None, timeout: int = 3) -> None:  # type: ignore[no-untyped-def]
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE, Timeout=timeout,
                        Code={"ZipFile": python_zip(HANDLER)}, Environment={"Variables": env or {}})
    wait_active(lam, name)


def arn(queue: str) -> str:
    return f"arn:aws:sqs:us-east-1:{ACCOUNT}:{queue}"


def wait_state(lam, uuid: str, state: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return wait_for(lambda: (m := lam.get_event_source_mapping(UUID=uuid))["State"] == state and m, 20,
                    f"mapping {uuid} {state}")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):  # type: ignore[no-untyped-def]
    with run_server(["--data-dir", str(tmp_path_factory.mktemp("esm"))]) as d:
        yield d


def test_api_shapes_states_and_checks(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, sqs = clients(daemon)
    make_function(lam, "esm-api")
    lam.publish_version(FunctionName="esm-api")
    lam.create_alias(FunctionName="esm-api", Name="live", FunctionVersion="1")
    sqs.create_queue(QueueName="esm-api-q")
    created = lam.create_event_source_mapping(EventSourceArn=arn("esm-api-q"), FunctionName="esm-api:live",
                                              BatchSize=5, FunctionResponseTypes=["ReportBatchItemFailures"])
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert created["State"] == "Creating" and created["BatchSize"] == 5
    assert created["FunctionArn"] == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:esm-api:live"
    uuid = created["UUID"]
    got = wait_state(lam, uuid, "Enabled")
    assert got["EventSourceArn"] == arn("esm-api-q") and got["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    listed = lam.list_event_source_mappings(FunctionName="esm-api")["EventSourceMappings"]
    assert [m["UUID"] for m in listed] == [uuid]
    assert lam.list_event_source_mappings(EventSourceArn=arn("nope"))["EventSourceMappings"] == []

    def refused(code: str, **kw) -> str:  # type: ignore[no-untyped-def]
        with pytest.raises(botocore.exceptions.ClientError) as e:
            lam.create_event_source_mapping(**{"EventSourceArn": arn("esm-api-q"), "FunctionName": "esm-api", **kw})
        assert e.value.response["Error"]["Code"] == code, e.value.response
        return e.value.response["Error"]["Message"]

    assert "greater than 0 if maximum batch size is greater than 10" in refused(
        "InvalidParameterValueException", BatchSize=100)
    refused("InvalidParameterValueException", MaximumBatchingWindowInSeconds=301)
    assert refused("InvalidParameterValueException",
                   FilterCriteria={"Filters": [{"Pattern": "{not json"}]}) == "Invalid filter pattern definition."
    refused("InvalidParameterValueException", StartingPosition="LATEST")
    refused("InvalidParameterValueException", EventSourceArn=arn("missing-queue"))
    refused("ResourceNotFoundException", FunctionName="no-such-function")
    refused("ResourceNotFoundException", FunctionName="esm-api:nope")
    # the same queue and function (here the alias) twice
    assert uuid in refused("ResourceConflictException", FunctionName="esm-api:live")
    sqs.create_queue(QueueName="esm-api-short", Attributes={"VisibilityTimeout": "1"})
    assert "less than Function timeout" in refused("InvalidParameterValueException",
                                                    EventSourceArn=arn("esm-api-short"))

    updated = lam.update_event_source_mapping(UUID=uuid, Enabled=False, BatchSize=8,
                                              ScalingConfig={"MaximumConcurrency": 3})
    assert updated["State"] == "Updating" and updated["BatchSize"] == 8
    got = wait_state(lam, uuid, "Disabled")
    assert got["ScalingConfig"] == {"MaximumConcurrency": 3}
    deleted = lam.delete_event_source_mapping(UUID=uuid)
    assert deleted["State"] == "Deleting" and deleted["ResponseMetadata"]["HTTPStatusCode"] == 202

    def gone() -> bool:
        try:
            lam.get_event_source_mapping(UUID=uuid)
        except lam.exceptions.ResourceNotFoundException:
            return True
        return False

    wait_for(gone, 20, "the mapping deleted")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.update_event_source_mapping(UUID=uuid, BatchSize=2)


def test_messages_drain_in_batches_and_are_deleted(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, sqs = clients(daemon)
    make_function(lam, "esm-drain")
    url = sqs.create_queue(QueueName="esm-drain-q")["QueueUrl"]
    for start in range(0, 30, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"}
                                                       for i in range(start, start + 10)])
    uuid = lam.create_event_source_mapping(EventSourceArn=arn("esm-drain-q"), FunctionName="esm-drain",
                                           BatchSize=10)["UUID"]
    wait_for(lambda: counts(sqs, url) == (0, 0) and len(set(seen(daemon)) & {f"m{i}" for i in range(30)}) == 30,
             60, "the queue drained")
    drain = [b for b in batches(daemon) if any(x.startswith("m") for x in b["bodies"])]
    assert all(len(b["bodies"]) <= 10 for b in drain) and all(b["source"] == "aws:sqs" for b in drain)
    mine = [b for b in seen(daemon) if b in {f"m{i}" for i in range(30)}]  # the module's daemon is shared
    assert sorted(mine) == sorted(set(mine))  # each once: deleted after success
    shown = run_cli(["queue", "--url", daemon.url])
    assert shown.returncode == 0, shown.stderr
    [row] = [line.split() for line in shown.stdout.splitlines() if line.startswith(uuid)]
    assert row[1] == "esm-drain" and row[3] == "30" and row[4] == "0"  # records, errors
    lam.delete_event_source_mapping(UUID=uuid)


def test_a_failed_batch_comes_back_then_goes_to_the_dead_letter_queue(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, sqs = clients(daemon)
    make_function(lam, "esm-fail", timeout=1)
    dlq = sqs.create_queue(QueueName="esm-fail-dlq")["QueueUrl"]
    url = sqs.create_queue(QueueName="esm-fail-q", Attributes={
        "VisibilityTimeout": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn("esm-fail-dlq"), "maxReceiveCount": 2})})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="fail")
    uuid = lam.create_event_source_mapping(EventSourceArn=arn("esm-fail-q"), FunctionName="esm-fail")["UUID"]
    wait_for(lambda: counts(sqs, dlq)[0] == 1, 60, "the message in the dead-letter queue")
    assert seen(daemon).count("fail") == 2  # received twice (maxReceiveCount), then redriven
    metrics = daemon.request("GET", "/metrics").body.decode()
    assert f'rapid_esm_redelivered_total{{uuid="{uuid}",function="esm-fail"}} 1' in metrics
    assert f'rapid_esm_errors_total{{uuid="{uuid}",function="esm-fail"}} 2' in metrics
    [m] = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert m["Body"] == "fail"
    lam.delete_event_source_mapping(UUID=uuid)


def test_report_batch_item_failures_brings_back_only_the_failed(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, sqs = clients(daemon)
    make_function(lam, "esm-partial", timeout=1)
    dlq = sqs.create_queue(QueueName="esm-partial-dlq")["QueueUrl"]
    url = sqs.create_queue(QueueName="esm-partial-q", Attributes={
        "VisibilityTimeout": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn("esm-partial-dlq"), "maxReceiveCount": 3})})[
        "QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b}
                                                  for i, b in enumerate(["p-ok1", "bad-1", "p-ok2", "bad-2"])])
    uuid = lam.create_event_source_mapping(EventSourceArn=arn("esm-partial-q"), FunctionName="esm-partial",
                                           BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"])["UUID"]
    wait_for(lambda: counts(sqs, dlq)[0] == 2, 60, "the failed ones in the dead-letter queue")
    got = seen(daemon)
    assert got.count("p-ok1") == 1 and got.count("p-ok2") == 1  # deleted after the first batch
    assert got.count("bad-1") == 3 and got.count("bad-2") == 3
    bodies = sorted(m["Body"] for m in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"])
    assert bodies == ["bad-1", "bad-2"]
    assert counts(sqs, url) == (0, 0)
    lam.delete_event_source_mapping(UUID=uuid)


def test_filter_criteria_pass_some_and_delete_the_rest(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, sqs = clients(daemon)
    make_function(lam, "esm-filter")
    url = sqs.create_queue(QueueName="esm-filter-q")["QueueUrl"]
    pattern = {"body": {"kind": ["order"], "amount": [{"numeric": [">", 10]}]}}
    uuid = lam.create_event_source_mapping(EventSourceArn=arn("esm-filter-q"), FunctionName="esm-filter",
                                           FilterCriteria={"Filters": [{"Pattern": json.dumps(pattern)}]})["UUID"]
    wait_state(lam, uuid, "Enabled")
    bodies = [{"kind": "order", "amount": 50, "n": "big"}, {"kind": "order", "amount": 5, "n": "small"},
              {"kind": "refund", "amount": 50, "n": "refund"}]
    for b in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(b))
    sqs.send_message(QueueUrl=url, MessageBody="plain text")
    wait_for(lambda: counts(sqs, url) == (0, 0), 30, "every message gone")
    passed = [json.loads(b)["n"] for b in seen(daemon) if b.startswith('{"kind"')]
    assert passed == ["big"]
    assert lam.get_event_source_mapping(UUID=uuid)["FilterCriteria"] == {
        "Filters": [{"Pattern": json.dumps(pattern)}]}
    lam.delete_event_source_mapping(UUID=uuid)


def test_enabled_false_pauses_and_true_resumes(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, sqs = clients(daemon)
    make_function(lam, "esm-pause")
    url = sqs.create_queue(QueueName="esm-pause-q")["QueueUrl"]
    uuid = lam.create_event_source_mapping(EventSourceArn=arn("esm-pause-q"), FunctionName="esm-pause",
                                           Enabled=False)["UUID"]
    assert wait_state(lam, uuid, "Disabled")["State"] == "Disabled"
    sqs.send_message(QueueUrl=url, MessageBody="paused-1")
    # Nothing receives it while the mapping is disabled: a receive of our own gets it.
    [m] = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert m["Body"] == "paused-1" and "paused-1" not in seen(daemon)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    lam.update_event_source_mapping(UUID=uuid, Enabled=True)
    wait_state(lam, uuid, "Enabled")
    wait_for(lambda: "paused-1" in seen(daemon) and counts(sqs, url) == (0, 0), 30, "the message processed")
    lam.delete_event_source_mapping(UUID=uuid)


def test_fifo_groups_are_processed_in_order(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, sqs = clients(daemon)
    make_function(lam, "esm-fifo", env={"SLEEP": "0.05"})
    url = sqs.create_queue(QueueName="esm-fifo-q.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    for i in range(20):
        for g in ("a", "b", "c"):
            sqs.send_message(QueueUrl=url, MessageBody=f"{g}{i}", MessageGroupId=g)
    uuid = lam.create_event_source_mapping(EventSourceArn=arn("esm-fifo-q.fifo"), FunctionName="esm-fifo",
                                           BatchSize=3)["UUID"]
    wait_for(lambda: counts(sqs, url) == (0, 0), 60, "the FIFO queue drained")
    for g in ("a", "b", "c"):
        order = [b for b in seen(daemon) if b[0] == g and b[1:].isdigit()]
        assert order == [f"{g}{i}" for i in range(20)]
    lam.delete_event_source_mapping(UUID=uuid)


def test_mappings_survive_a_kill_and_nothing_is_lost(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    with run_server(["--data-dir", state], expect_exit=None) as d:
        lam, sqs = clients(d)
        make_function(lam, "esm-kill", env={"RAPID_URL": d.url, "DONE_QUEUE": "esm-done", "SLEEP": "0.1"})
        sqs.create_queue(QueueName="esm-done")
        sqs.create_queue(QueueName="esm-kill-dlq")
        url = sqs.create_queue(QueueName="esm-kill-q", Attributes={
            "VisibilityTimeout": "3",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn("esm-kill-dlq"), "maxReceiveCount": 5})})[
            "QueueUrl"]
        bodies = {f"k{i}" for i in range(200)}
        for start in range(0, 200, 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"k{i}"}
                                                           for i in range(start, start + 10)])
        uuid = lam.create_event_source_mapping(EventSourceArn=arn("esm-kill-q"), FunctionName="esm-kill",
                                               BatchSize=10)["UUID"]
        wait_for(lambda: len(batches(d)) >= 3, 60, "some batches run")
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
    # the port changes with the restart: the function is told the new one
    with run_server(["--data-dir", state]) as d:
        lam, sqs = clients(d)
        assert lam.get_event_source_mapping(UUID=uuid)["FunctionArn"].endswith(":esm-kill")
        lam.update_event_source_mapping(UUID=uuid, Enabled=False)
        wait_state(lam, uuid, "Disabled")
        lam.update_function_configuration(FunctionName="esm-kill", Environment={"Variables": {
            "RAPID_URL": d.url, "DONE_QUEUE": "esm-done", "SLEEP": "0"}})
        lam.get_waiter("function_updated_v2").wait(FunctionName="esm-kill", WaiterConfig={"Delay": 1})
        lam.update_event_source_mapping(UUID=uuid, Enabled=True)
        url = sqs.get_queue_url(QueueName="esm-kill-q")["QueueUrl"]
        wait_for(lambda: counts(sqs, url) == (0, 0), 90, "the queue drained after the restart")
        done_url = sqs.get_queue_url(QueueName="esm-done")["QueueUrl"]
        dlq_url = sqs.get_queue_url(QueueName="esm-kill-dlq")["QueueUrl"]
        found: list[str] = []
        for q in (done_url, dlq_url):
            while True:
                got = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10).get("Messages", [])
                if not got:
                    break
                found.extend(m["Body"] for m in got)
                sqs.delete_message_batch(QueueUrl=q, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                              for i, m in enumerate(got)])
        assert set(found) == bodies  # every message processed (duplicates allowed) or dead-lettered
        # Duplicates are counted: every message run twice was received again (the batches the
        # kill cut short come back after their visibility timeout), in the mapping's counters,
        # which carry on across the restart.
        metrics = d.request("GET", "/metrics").body.decode()
        line = next(x for x in metrics.splitlines() if x.startswith("rapid_esm_redelivered_total{") and uuid in x)
        redelivered = float(line.rsplit(" ", 1)[1])
        assert redelivered >= max(1, len(found) - len(set(found)))


def test_throttled_batches_wait_and_never_fail(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, sqs = clients(daemon)
    make_function(lam, "esm-throttle", env={"SLEEP": "0.2"})
    dlq = sqs.create_queue(QueueName="esm-throttle-dlq")["QueueUrl"]
    url = sqs.create_queue(QueueName="esm-throttle-q", Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn("esm-throttle-dlq"), "maxReceiveCount": 1})})[
        "QueueUrl"]
    uuid = lam.create_event_source_mapping(EventSourceArn=arn("esm-throttle-q"), FunctionName="esm-throttle",
                                           BatchSize=2)["UUID"]
    wait_state(lam, uuid, "Enabled")
    # Its 5 pollers wait on the queue; then the function's reserved concurrency drops to 1, so
    # batches received at once are throttled: they wait and go again, and are never given up.
    lam.put_function_concurrency(FunctionName="esm-throttle", ReservedConcurrentExecutions=1)
    for start in range(0, 50, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"t{i}"}
                                                       for i in range(start, start + 10)])
    wait_for(lambda: counts(sqs, url) == (0, 0), 60, "the queue drained")
    assert sorted(b for b in seen(daemon) if b.startswith("t")) == sorted(f"t{i}" for i in range(50))
    assert counts(sqs, dlq) == (0, 0)  # each received once: none was given up or redriven
    metrics = daemon.request("GET", "/metrics").body.decode()
    assert f'rapid_esm_records_total{{uuid="{uuid}",function="esm-throttle"}} 50' in metrics
    assert f'rapid_esm_throttles_total{{uuid="{uuid}",function="esm-throttle"}}' in metrics
    lam.delete_event_source_mapping(UUID=uuid)


def test_maximum_concurrency_bounds_the_batches_at_once(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, sqs = clients(daemon)
    make_function(lam, "esm-scale", env={"SLEEP": "0.1"})
    url = sqs.create_queue(QueueName="esm-scale-q")["QueueUrl"]
    uuid = lam.create_event_source_mapping(EventSourceArn=arn("esm-scale-q"), FunctionName="esm-scale",
                                           BatchSize=1, ScalingConfig={"MaximumConcurrency": 2})["UUID"]
    wait_state(lam, uuid, "Enabled")
    for start in range(0, 30, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"s{i}"}
                                                       for i in range(start, start + 10)])
    wait_for(lambda: counts(sqs, url) == (0, 0), 60, "the queue drained")
    mine = [b for b in batches(daemon) if b["bodies"][0].startswith("s")]
    assert sorted(b["bodies"][0] for b in mine) == sorted(f"s{i}" for i in range(30))
    # an instance runs one invocation at a time: two batches at once at most make two instances
    assert len({b["pid"] for b in mine}) <= 2
    lam.delete_event_source_mapping(UUID=uuid)


def test_a_batch_over_ten_gathers_in_its_window(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, sqs = clients(daemon)
    make_function(lam, "esm-big")
    url = sqs.create_queue(QueueName="esm-big-q")["QueueUrl"]
    for start in range(0, 60, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"g{i}"}
                                                       for i in range(start, start + 10)])
    uuid = lam.create_event_source_mapping(EventSourceArn=arn("esm-big-q"), FunctionName="esm-big",
                                           BatchSize=50, MaximumBatchingWindowInSeconds=1)["UUID"]
    wait_for(lambda: counts(sqs, url) == (0, 0), 60, "the queue drained")
    sizes = sorted(len(b["bodies"]) for b in batches(daemon) if b["bodies"][0].startswith("g"))
    assert sum(sizes) == 60 and sizes[-1] == 50  # the first poll takes 50 of the 60 waiting
    lam.delete_event_source_mapping(UUID=uuid)


def test_checks_boto3_would_not_let_through(daemon) -> None:  # type: ignore[no-untyped-def]
    """Raw requests, for the limits botocore checks on the client before sending."""
    lam, sqs = clients(daemon)
    make_function(lam, "esm-raw")
    sqs.create_queue(QueueName="esm-raw-q")

    def create(**kw) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
        body = {"EventSourceArn": arn("esm-raw-q"), "FunctionName": "esm-raw", **kw}
        r = daemon.request("POST", "/2015-03-31/event-source-mappings", json.dumps(body).encode(),
                           {"Content-Type": "application/json"})
        out = json.loads(r.body)
        return r.status, r.headers.get("x-amzn-errortype", ""), out.get("message", out.get("Message", ""))

    status, code, message = create(ScalingConfig={"MaximumConcurrency": 1})
    assert (status, code) == (400, "ValidationException") and "between 2 and 1000" in message
    status, code, message = create(BatchSize=20000, MaximumBatchingWindowInSeconds=1)
    assert (status, code, message) == (400, "InvalidParameterValueException", "BatchSize must be between 1 and 10000.")
    status, code, _ = create(FunctionResponseTypes=["Sometimes"])
    assert (status, code) == (400, "ValidationException")
    status, code, message = create(FilterCriteria={"Filters": [{"Pattern": '{"body": ["x"]}'}] * 6})
    assert (status, code) == (400, "InvalidParameterValueException") and "exceeds the limit of 5" in message
    status, code, _ = create(BatchSize="ten")
    assert (status, code) == (400, "ValidationException")
    assert lam.list_event_source_mappings(FunctionName="esm-raw")["EventSourceMappings"] == []  # none was made


def test_a_batch_stops_short_of_six_megabytes(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, sqs = clients(daemon)
    make_function(lam, "esm-cap")
    url = sqs.create_queue(QueueName="esm-cap-q")["QueueUrl"]
    for i in range(30):
        sqs.send_message(QueueUrl=url, MessageBody=f"cap{i}-" + "x" * 250_000)
    uuid = lam.create_event_source_mapping(EventSourceArn=arn("esm-cap-q"), FunctionName="esm-cap",
                                           BatchSize=100, MaximumBatchingWindowInSeconds=1)["UUID"]
    wait_for(lambda: counts(sqs, url) == (0, 0), 60, "the queue drained")
    mine = [b for b in batches(daemon) if b["bodies"][0].startswith("cap")]
    assert sorted(x.split("-")[0] for b in mine for x in b["bodies"]) == sorted(f"cap{i}" for i in range(30))
    assert len(mine) >= 2 and all(b["size"] <= 6 * 1024 * 1024 for b in mine)
    lam.delete_event_source_mapping(UUID=uuid)
