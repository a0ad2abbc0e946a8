"""Kinesis event source mappings against a real daemon, through boto3: order per shard,
StartingPosition, bisecting a failing batch, ReportBatchItemFailures checkpoints, the
OnFailure destination's KinesisBatchInfo record, and checkpoints that survive a restart.

The test function logs ``KBATCH {json}`` per batch (the shard, the sequence numbers and the
decoded data) and answers as the data say: ``poison`` anywhere in a batch fails it; data
starting ``bad`` is reported in ``batchItemFailures`` by its sequence number."""

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
from tests.daemon import run_server

ACCOUNT = "000000000000"
HANDLER = r'''
import base64, json

def handler(event, context):
    recs = event["Records"]
    data = [base64.b64decode(r["kinesis"]["data"]).decode() for r in recs]
    print("KBATCH " + json.dumps({"shard": recs[0]["eventID"].split(":")[0], "data": data,
          "seqs": [r["kinesis"]["sequenceNumber"] for r in recs], "keys": [r["kinesis"]["partitionKey"] for r in recs],
          "source": recs[0]["eventSource"]}), flush=True)
    if "poison" in data:
        raise RuntimeError("poison in the batch")
    return {"batchItemFailures": [{"itemIdentifier": r["kinesis"]["sequenceNumber"]}
                                  for r, d in zip(recs, data) if d.startswith("bad")]}
'''


def clients(d):  # type: ignore[no-untyped-def]
    kw = dict(endpoint_url=d.url, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s",
              config=botocore.config.Config(retries={"max_attempts": 0}, read_timeout=60))
    return boto3.client("lambda", **kw), boto3.client("kinesis", **kw), boto3.client("sqs", **kw)


def wait_for(probe, timeout, what):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def batches(d, prefix: str) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    out = [json.loads(line.split("KBATCH ", 1)[1]) for line in list(d.lines) if "KBATCH " in line]
    return [b for b in out if b["data"] and b["data"][0].startswith(prefix)]


def seen(d, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [x for b in batches(d, prefix) for x in b["data"]]


def make_function(lam, name: str) -> None:  # type: ignore[no-untyped-def]
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": python_zip(HANDLER)})
    wait_active(lam, name)


def stream_arn(name: str) -> str:
    return f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{name}"


def put(kin, stream: str, items: list[tuple[str, str]]) -> None:  # type: ignore[no-untyped-def]
    kin.put_records(StreamName=stream, Records=[{"Data": d.encode(), "PartitionKey": k} for k, d in items])


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):  # type: ignore[no-untyped-def]
    with run_server(["--data-dir", str(tmp_path_factory.mktemp("kesm"))]) as d:
        yield d


def test_records_run_in_order_per_shard(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, kin, _ = clients(daemon)
    make_function(lam, "kesm-order")
    kin.create_stream(StreamName="kesm-order-s", ShardCount=3)
    items = [(f"key{i % 7}", f"o-{i}") for i in range(120)]
    put(kin, "kesm-order-s", items[:60])
    m = lam.create_event_source_mapping(EventSourceArn=stream_arn("kesm-order-s"), FunctionName="kesm-order",
                                        StartingPosition="TRIM_HORIZON", BatchSize=7)
    assert m["State"] == "Creating" and m["StartingPosition"] == "TRIM_HORIZON" and m["BatchSize"] == 7
    put(kin, "kesm-order-s", items[60:])
    wait_for(lambda: len(seen(daemon, "o-")) >= 120, 60, "every record")
    got = batches(daemon, "o-")
    assert sorted(seen(daemon, "o-"), key=lambda x: int(x[2:])) == [d for _, d in items]
    assert all(len(b["data"]) <= 7 and b["source"] == "aws:kinesis" for b in got)
    for shard in {b["shard"] for b in got}:
        seqs = [int(s) for b in got if b["shard"] == shard for s in b["seqs"]]
        assert seqs == sorted(seqs)
    for key in {k for k, _ in items}:
        order = [int(d[2:]) for b in got for d, k in zip(b["data"], b["keys"]) if k == key]
        assert order == sorted(order)
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_latest_skips_what_was_there_and_bad_starting_positions_are_refused(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, kin, _ = clients(daemon)
    make_function(lam, "kesm-latest")
    kin.create_stream(StreamName="kesm-latest-s", ShardCount=1)
    put(kin, "kesm-latest-s", [("k", "l-old")])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.create_event_source_mapping(EventSourceArn=stream_arn("kesm-latest-s"), FunctionName="kesm-latest")
    assert e.value.response["Error"]["Code"] == "InvalidParameterValueException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.create_event_source_mapping(EventSourceArn=stream_arn("kesm-latest-s"), FunctionName="kesm-latest",
                                        StartingPosition="LATEST", MaximumRetryAttempts=20000)
    assert e.value.response["Error"]["Code"] == "InvalidParameterValueException"
    m = lam.create_event_source_mapping(EventSourceArn=stream_arn("kesm-latest-s"), FunctionName="kesm-latest",
                                        StartingPosition="LATEST")
    wait_for(lambda: lam.get_event_source_mapping(UUID=m["UUID"])["State"] == "Enabled", 20, "enabled")
    put(kin, "kesm-latest-s", [("k", "l-new")])
    wait_for(lambda: "l-new" in seen(daemon, "l-"), 30, "the new record")
    assert "l-old" not in seen(daemon, "l-")
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_bisect_isolates_the_poison_record_and_on_failure_gets_its_batch_info(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, kin, sqs = clients(daemon)
    make_function(lam, "kesm-bisect")
    kin.create_stream(StreamName="kesm-bisect-s", ShardCount=1)
    failures = sqs.create_queue(QueueName="kesm-failures")["QueueUrl"]
    items = [("k", f"b-{i}") for i in range(8)]
    items[5] = ("k", "poison")
    put(kin, "kesm-bisect-s", items)
    m = lam.create_event_source_mapping(
        EventSourceArn=stream_arn("kesm-bisect-s"), FunctionName="kesm-bisect", StartingPosition="TRIM_HORIZON",
        BatchSize=8, BisectBatchOnFunctionError=True, MaximumRetryAttempts=3,
        DestinationConfig={"OnFailure": {"Destination": f"arn:aws:sqs:us-east-1:{ACCOUNT}:kesm-failures"}})
    got = wait_for(lambda: sqs.receive_message(QueueUrl=failures, WaitTimeSeconds=1).get("Messages"), 60,
                   "the OnFailure record")
    record = json.loads(got[0]["Body"])
    info = record["KinesisBatchInfo"]
    assert info["batchSize"] == 1 and info["shardId"] == "shardId-000000000000"
    assert info["streamArn"] == stream_arn("kesm-bisect-s")
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["responseContext"]["functionError"] == "Unhandled"
    put(kin, "kesm-bisect-s", [("k", "b-after")])  # the shard goes on past the given-up record
    wait_for(lambda: "b-after" in seen(daemon, "b-"), 30, "the shard moving on")
    assert m["LastProcessingResult"] == "No records processed"
    wait_for(lambda: lam.get_event_source_mapping(UUID=m["UUID"])["LastProcessingResult"] == "OK", 30, "OK")
    # every other record succeeded in a batch without the poison one; the poison one alone in the end
    ok = [b for b in batches(daemon, "b-") if "poison" not in b["data"]]
    assert sorted({d for b in ok for d in b["data"]}) == sorted([d for _, d in items if d != "poison"] + ["b-after"])
    sizes = [len(b["data"]) for b in batches(daemon, "b-") + batches(daemon, "poison")]
    assert sizes[0] == 8 and 1 in sizes  # the whole batch first, bisected down to one
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_reported_failures_retry_from_the_lowest_and_checkpoint_before_it(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, kin, _ = clients(daemon)
    make_function(lam, "kesm-partial")
    kin.create_stream(StreamName="kesm-partial-s", ShardCount=1)
    put(kin, "kesm-partial-s", [("k", d) for d in ("r-1", "r-2", "bad-3", "r-4")])
    m = lam.create_event_source_mapping(
        EventSourceArn=stream_arn("kesm-partial-s"), FunctionName="kesm-partial", StartingPosition="TRIM_HORIZON",
        BatchSize=10, MaximumRetryAttempts=2, FunctionResponseTypes=["ReportBatchItemFailures"])
    wait_for(lambda: len(batches(daemon, "r-") + batches(daemon, "bad-")) >= 3, 60, "the retries")
    got = [b["data"] for b in batches(daemon, "r-") + batches(daemon, "bad-")]
    assert got[0] == ["r-1", "r-2", "bad-3", "r-4"]
    assert got[1:3] == [["bad-3", "r-4"], ["bad-3", "r-4"]]  # from the failed one on, r-1 and r-2 done
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_checkpoints_survive_a_kill(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    with run_server(["--data-dir", state], expect_exit=None) as d:
        lam, kin, _ = clients(d)
        make_function(lam, "kesm-kill")
        kin.create_stream(StreamName="kesm-kill-s", ShardCount=2)
        put(kin, "kesm-kill-s", [(f"p{i}", f"c-{i}") for i in range(40)])
        m = lam.create_event_source_mapping(EventSourceArn=stream_arn("kesm-kill-s"), FunctionName="kesm-kill",
                                            StartingPosition="TRIM_HORIZON", BatchSize=10)
        wait_for(lambda: len(seen(d, "c-")) >= 40, 60, "the first records")
        before = set(seen(d, "c-"))
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
    with run_server(["--data-dir", state]) as d:
        lam, kin, _ = clients(d)
        assert lam.get_event_source_mapping(UUID=m["UUID"])["State"] in ("Enabled", "Creating", "Updating")
        put(kin, "kesm-kill-s", [(f"p{i}", f"c-{i}") for i in range(40, 50)])
        wait_for(lambda: {f"c-{i}" for i in range(40, 50)} <= set(seen(d, "c-")), 60, "the new records")
        # At least once: a batch whose answer the kill cut off runs again, at most one per shard;
        # everything before it is behind the checkpoint and does not.
        again = set(seen(d, "c-")) & before
        assert len(again) <= 2 * 10, f"records done before the kill ran again: {sorted(again)}"
        # and every one of them is counted as a possible duplicate
        metrics = d.request("GET", "/metrics").body.decode()
        line = next(x for x in metrics.splitlines()
                    if x.startswith("rapid_esm_redelivered_total{") and m["UUID"] in x)
        assert float(line.rsplit(" ", 1)[1]) >= len(again)


def test_on_failure_to_a_function(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, kin, _ = clients(daemon)
    make_function(lam, "kesm-src")
    lam.create_function(FunctionName="kesm-dest", Runtime="python3.12", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": python_zip(
                            "import json\ndef handler(e, c):\n    print('DEST ' + json.dumps(e), flush=True)\n")})
    wait_active(lam, "kesm-dest")
    kin.create_stream(StreamName="kesm-dest-s", ShardCount=1)
    put(kin, "kesm-dest-s", [("k", "poison")])
    m = lam.create_event_source_mapping(
        EventSourceArn=stream_arn("kesm-dest-s"), FunctionName="kesm-src", StartingPosition="TRIM_HORIZON",
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:kesm-dest"}})
    line = daemon.wait_for_line(r"DEST \{", timeout=60)
    record = json.loads(line.split("DEST ", 1)[1])
    assert record["KinesisBatchInfo"]["batchSize"] == 1
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestContext"]["functionArn"] == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:kesm-src"
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_filter_criteria_on_stream_data(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, kin, _ = clients(daemon)
    make_function(lam, "kesm-filter")
    kin.create_stream(StreamName="kesm-filter-s", ShardCount=1)
    docs = [{"f": "f-1", "kind": "keep"}, {"f": "f-2", "kind": "drop"}, {"f": "f-3", "kind": "keep"}]
    put(kin, "kesm-filter-s", [("k", json.dumps(d)) for d in docs] + [("k", "not json")])
    m = lam.create_event_source_mapping(
        EventSourceArn=stream_arn("kesm-filter-s"), FunctionName="kesm-filter", StartingPosition="TRIM_HORIZON",
        FilterCriteria={"Filters": [{"Pattern": json.dumps({"data": {"kind": ["keep"]}})}]})
    put(kin, "kesm-filter-s", [("k", json.dumps({"f": "f-4", "kind": "keep"}))])
    wait_for(lambda: any('"f-4"' in x for x in seen(daemon, "{")), 30, "the last kept record")
    kept = [json.loads(x)["f"] for x in seen(daemon, "{") if '"f-' in x]
    assert kept == ["f-1", "f-3", "f-4"]
    assert "not json" not in seen(daemon, "not")
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_tumbling_windows_carry_state_to_a_final_invoke(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, kin, _ = clients(daemon)
    lam.create_function(FunctionName="kesm-tw", Runtime="python3.12", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": python_zip(
                            "import base64, json\n"
                            "def handler(e, c):\n"
                            "    print('TW ' + json.dumps({'final': e['isFinalInvokeForWindow'], 'state': e['state'],\n"
                            "          'n': len(e['Records']), 'window': e['window'], 'shard': e['shardId']}), flush=True)\n"
                            "    add = sum(int(base64.b64decode(r['kinesis']['data'])) for r in e['Records'])\n"
                            "    return {'state': {'total': e['state'].get('total', 0) + add}}\n")})
    wait_active(lam, "kesm-tw")
    kin.create_stream(StreamName="kesm-tw-s", ShardCount=1)
    m = lam.create_event_source_mapping(EventSourceArn=stream_arn("kesm-tw-s"), FunctionName="kesm-tw",
                                        StartingPosition="TRIM_HORIZON", TumblingWindowInSeconds=2, BatchSize=2)
    assert m["TumblingWindowInSeconds"] == 2
    put(kin, "kesm-tw-s", [("k", str(i)) for i in range(1, 6)])

    def invokes() -> list[dict]:  # type: ignore[type-arg]
        return [json.loads(line.split("TW ", 1)[1]) for line in list(daemon.lines) if "TW {" in line]

    # the records may straddle a window boundary: the finals' totals add up either way
    wait_for(lambda: sum(i["state"].get("total", 0) for i in invokes() if i["final"]) == 15, 60,
             "the final invokes' state")
    got = invokes()
    assert sum(i["n"] for i in got if not i["final"]) == 5 and all(i["n"] == 0 for i in got if i["final"])
    assert all(i["shard"] == "shardId-000000000000" for i in got)
    assert got[0]["state"] == {}  # a window starts with no state
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_parallelization_keeps_order_per_partition_key(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, kin, _ = clients(daemon)
    make_function(lam, "kesm-par")
    kin.create_stream(StreamName="kesm-par-s", ShardCount=1)
    items = [(f"key{i % 9}", f"q-{i}") for i in range(90)]
    put(kin, "kesm-par-s", items)
    m = lam.create_event_source_mapping(EventSourceArn=stream_arn("kesm-par-s"), FunctionName="kesm-par",
                                        StartingPosition="TRIM_HORIZON", BatchSize=30, ParallelizationFactor=4)
    assert m["ParallelizationFactor"] == 4
    wait_for(lambda: len(seen(daemon, "q-")) >= 90, 60, "every record")
    got = batches(daemon, "q-")
    assert sorted(seen(daemon, "q-")) == sorted(d for _, d in items)
    for key in {k for k, _ in items}:
        order = [int(d[2:]) for b in got for d, k in zip(b["data"], b["keys"]) if k == key]
        assert order == sorted(order)
    assert all(len({k for k in b["keys"]}) < 9 for b in got)  # each batch holds the keys of its lane only
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_a_batch_that_always_fails_blocks_only_its_shard(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, kin, _ = clients(daemon)
    make_function(lam, "kesm-block")
    kin.create_stream(StreamName="kesm-block-s", ShardCount=2)
    shard0, shard1 = "1", str(2 ** 127 + 1)  # explicit hash keys: one record for each shard
    kin.put_records(StreamName="kesm-block-s", Records=[
        {"Data": b"poison", "PartitionKey": "a", "ExplicitHashKey": shard0},
        {"Data": b"x-behind", "PartitionKey": "a", "ExplicitHashKey": shard0},
        {"Data": b"x-other-1", "PartitionKey": "b", "ExplicitHashKey": shard1},
        {"Data": b"x-other-2", "PartitionKey": "b", "ExplicitHashKey": shard1}])
    m = lam.create_event_source_mapping(EventSourceArn=stream_arn("kesm-block-s"), FunctionName="kesm-block",
                                        StartingPosition="TRIM_HORIZON", BatchSize=10)  # retries without end
    wait_for(lambda: {"x-other-1", "x-other-2"} <= set(seen(daemon, "x-")), 30, "the other shard's records")
    wait_for(lambda: len([b for b in batches(daemon, "poison")]) >= 3, 30, "the failing batch retried")
    assert "x-behind" not in seen(daemon, "x-")  # behind the failing batch, on its shard
    lam.delete_event_source_mapping(UUID=m["UUID"])
