"""The built-in Kinesis through boto3 against a real daemon: every operation, iterators,
paging, errors in Kinesis's shapes, and records surviving kill -9."""

from __future__ import annotations

import hashlib
import signal
import time

import boto3
import botocore.exceptions
import pytest

from tests.daemon import EXAMPLES, run_server

ARGS = ["--function", f"echo={EXAMPLES / 'shell-echo'}"]


def client(d):
    return boto3.client("kinesis", endpoint_url=d.url, region_name="us-east-1", aws_access_key_id="k",
                        aws_secret_access_key="s")


@pytest.fixture(scope="module")
def kinesis(tmp_path_factory):
    with run_server([*ARGS, "--data-dir", str(tmp_path_factory.mktemp("kinesis"))]) as d:
        yield client(d)


def code(e):
    return e.value.response["Error"]["Code"]


def test_stream_lifecycle(kinesis):
    kinesis.create_stream(StreamName="life", ShardCount=3)
    kinesis.get_waiter("stream_exists").wait(StreamName="life", WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    summary = kinesis.describe_stream_summary(StreamName="life")["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE" and summary["OpenShardCount"] == 3
    assert summary["RetentionPeriodHours"] == 24
    assert summary["StreamARN"] == "arn:aws:kinesis:us-east-1:000000000000:stream/life"
    desc = kinesis.describe_stream(StreamName="life")["StreamDescription"]
    assert [s["ShardId"] for s in desc["Shards"]] == [f"shardId-{i:012d}" for i in range(3)]
    assert desc["Shards"][-1]["HashKeyRange"]["EndingHashKey"] == str(2**128 - 1)
    assert kinesis.list_shards(StreamARN=summary["StreamARN"])["Shards"] == desc["Shards"]
    assert "life" in kinesis.list_streams()["StreamNames"]
    kinesis.increase_stream_retention_period(StreamName="life", RetentionPeriodHours=48)
    assert kinesis.describe_stream_summary(StreamName="life")["StreamDescriptionSummary"]["RetentionPeriodHours"] == 48
    kinesis.decrease_stream_retention_period(StreamName="life", RetentionPeriodHours=24)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kinesis.create_stream(StreamName="life", ShardCount=1)
    assert code(e) == "ResourceInUseException"
    kinesis.create_stream(StreamName="od", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    od = kinesis.describe_stream_summary(StreamName="od")["StreamDescriptionSummary"]
    assert od["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"} and od["OpenShardCount"] == 4
    kinesis.delete_stream(StreamName="life")
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.describe_stream_summary(StreamName="life")


def test_put_and_read_every_way(kinesis):
    kinesis.create_stream(StreamName="rw", ShardCount=2)
    shards = kinesis.list_shards(StreamName="rw")["Shards"]
    one = kinesis.put_record(StreamName="rw", Data=b"first", PartitionKey="user-1")
    h = int(hashlib.md5(b"user-1").hexdigest(), 16)
    owner = next(s for s in shards if int(s["HashKeyRange"]["StartingHashKey"]) <= h
                 <= int(s["HashKeyRange"]["EndingHashKey"]))
    assert one["ShardId"] == owner["ShardId"]
    out = kinesis.put_records(StreamName="rw", Records=[{"Data": f"r{i}".encode(), "PartitionKey": "user-1"}
                                                         for i in range(5)])
    assert out["FailedRecordCount"] == 0
    seqs = [one["SequenceNumber"], *(r["SequenceNumber"] for r in out["Records"])]
    assert [int(s) for s in seqs] == sorted(int(s) for s in seqs) and len(set(seqs)) == 6

    def read(**kw):
        it = kinesis.get_shard_iterator(StreamName="rw", ShardId=owner["ShardId"], **kw)["ShardIterator"]
        return [r["Data"] for r in kinesis.get_records(ShardIterator=it)["Records"]]

    assert read(ShardIteratorType="TRIM_HORIZON") == [b"first", b"r0", b"r1", b"r2", b"r3", b"r4"]
    assert read(ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[3]) == [b"r2", b"r3", b"r4"]
    assert read(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[3]) == [b"r3", b"r4"]
    assert read(ShardIteratorType="AT_TIMESTAMP", Timestamp=time.time() + 3600) == []
    assert read(ShardIteratorType="AT_TIMESTAMP", Timestamp=time.time() - 3600)[0] == b"first"
    latest = kinesis.get_shard_iterator(StreamName="rw", ShardId=owner["ShardId"],
                                        ShardIteratorType="LATEST")["ShardIterator"]
    page = kinesis.get_records(ShardIterator=latest)
    assert page["Records"] == [] and page["MillisBehindLatest"] == 0
    kinesis.put_record(StreamName="rw", Data=b"after", PartitionKey="user-1")
    page = kinesis.get_records(ShardIterator=page["NextShardIterator"], Limit=1)
    assert [r["Data"] for r in page["Records"]] == [b"after"] and page["Records"][0]["PartitionKey"] == "user-1"
    assert page["Records"][0]["ApproximateArrivalTimestamp"].year >= 2024


def test_errors_in_kinesis_shapes(kinesis):
    kinesis.create_stream(StreamName="errs", ShardCount=1)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kinesis.put_record(StreamName="errs", Data=b"x" * (1024 * 1024 + 1), PartitionKey="k")
    assert code(e) == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kinesis.put_record(StreamName="missing", Data=b"x", PartitionKey="k")
    assert code(e) == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kinesis.get_shard_iterator(StreamName="errs", ShardId="shardId-000000000007", ShardIteratorType="LATEST")
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kinesis.get_records(ShardIterator="bm90IGFuIGl0ZXJhdG9y")
    assert code(e) == "InvalidArgumentException"


def test_kill_9_keeps_every_acknowledged_record(tmp_path):
    data = tmp_path / "data"
    with run_server([*ARGS, "--data-dir", str(data)], expect_exit=None) as d:
        k = client(d)
        k.create_stream(StreamName="durable", ShardCount=2)
        sent = [k.put_record(StreamName="durable", Data=f"{i}".encode(), PartitionKey=f"p{i}") for i in range(20)]
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
    with run_server([*ARGS, "--data-dir", str(data)]) as d:
        k = client(d)
        seen = {}
        for shard in k.list_shards(StreamName="durable")["Shards"]:
            it = k.get_shard_iterator(StreamName="durable", ShardId=shard["ShardId"],
                                      ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            for r in k.get_records(ShardIterator=it)["Records"]:
                seen[r["SequenceNumber"]] = r["Data"]
        assert seen == {s["SequenceNumber"]: f"{i}".encode() for i, s in enumerate(sent)}
        more = k.put_record(StreamName="durable", Data=b"next", PartitionKey="p0")
        assert int(more["SequenceNumber"]) > max(int(s["SequenceNumber"]) for s in sent if s["ShardId"] ==
                                                 more["ShardId"])
