"""The built-in SQS queues, Kinesis streams and event source mappings of a cluster, on a
real nats-server and real rapid daemons (loopback only): one node owns them (a KV lease),
the others forward; their journal is a JetStream stream, replayed by the node that takes
over when the owner dies.

- SendMessage on one node, ReceiveMessage and DeleteMessage on another; a Kinesis
  PutRecord on one node, GetRecords on another.
- An SQS mapping created on a node that does not own the queues drains a queue; the owner
  is killed (SIGKILL) mid-drain; another node takes over and the mapping keeps draining:
  every message reaches the function, the only duplicates are messages the dead node had
  already handed to the function, none is lost, none lands in the dead-letter queue.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.config
import pytest

from tests.cluster import collector as shared_collector, metric
from tests.control import ROLE, python_zip, wait_active
from tests.daemon import Daemon, run_cli, run_server, unique, wait_until
from tests.nats import nats_server

pytestmark = pytest.mark.slow

ENV = {"RAPID_SHUTDOWN_TIMEOUT": "2"}
HANDLER = """import json, os, time, urllib.request
def handler(event, context):
    bodies = [r["body"] for r in event["Records"]]
    urllib.request.urlopen(urllib.request.Request(os.environ["COLLECT"], data=json.dumps(bodies).encode()),
                           timeout=30).read()
    time.sleep(0.3)  # handled, not yet deleted: a kill now makes these come back (at least once)
    return {}
"""


def aws(node: Daemon, service: str):  # type: ignore[no-untyped-def]
    return boto3.client(service, endpoint_url=node.url, region_name="us-east-1", aws_access_key_id="k",
                        aws_secret_access_key="s",
                        config=botocore.config.Config(retries={"max_attempts": 0}, read_timeout=60))


@contextlib.contextmanager
def collector() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every body the function was handed, in order."""
    seen: list[str] = []
    with shared_collector(seen.extend) as url:
        yield url, seen


def owner(nodes: list[Daemon]) -> list[Daemon]:
    return [n for n in nodes if metric(n, "rapid_cluster_queues_owner") == 1]


def test_queues_and_streams_across_nodes(tmp_path: Path) -> None:
    with nats_server() as nats, contextlib.ExitStack() as stack:
        nodes = [stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / f"n{i}")],
                                                env=ENV)) for i in range(2)]
        wait_until(lambda: len(owner(nodes)) == 1, timeout=20, what="one owner of the queues")
        first, second = aws(nodes[0], "sqs"), aws(nodes[1], "sqs")
        name = f"q-{unique()}"
        url = first.create_queue(QueueName=name)["QueueUrl"]
        # Each node names the queue at its own address (the Host the caller used), as the owner answers.
        assert second.get_queue_url(QueueName=name)["QueueUrl"] == url.replace(nodes[0].url, nodes[1].url)
        for i in range(3):
            first.send_message(QueueUrl=url, MessageBody=f"m{i}")
        got: list[dict] = []  # type: ignore[type-arg]
        wait_until(lambda: got.extend(second.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                             WaitTimeSeconds=1).get("Messages", [])) or len(got) >= 3,
                   timeout=20, what="the messages on the other node")
        assert sorted(m["Body"] for m in got) == ["m0", "m1", "m2"]
        for m in got:
            second.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        # The older query protocol (form-encoded Action=..., XML answers) is forwarded too.
        owner_node = owner(nodes)[0]
        other = nodes[1] if owner_node is nodes[0] else nodes[0]
        form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        reply = other.request("POST", "/", f"Action=SendMessage&QueueUrl={url}&MessageBody=by%20query"
                              "&Version=2012-11-05".encode(), form)
        assert reply.status == 200 and b"<SendMessageResponse" in reply.body, reply.body
        via_query = second.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
        assert [m["Body"] for m in via_query] == ["by query"]
        second.delete_message(QueueUrl=url, ReceiptHandle=via_query[0]["ReceiptHandle"])
        attrs = first.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")
        # An SQS error keeps its shape through the forward.
        with pytest.raises(second.exceptions.QueueDoesNotExist):
            second.get_queue_url(QueueName=f"missing-{unique()}")

        k1, k2 = aws(nodes[0], "kinesis"), aws(nodes[1], "kinesis")
        stream = f"s-{unique()}"
        k2.create_stream(StreamName=stream, ShardCount=1)
        wait_until(lambda: k1.describe_stream(StreamName=stream)["StreamDescription"]["StreamStatus"] == "ACTIVE",
                   timeout=20, what="the stream active")
        put = k1.put_record(StreamName=stream, Data=b"hello", PartitionKey="p")
        shard = k2.describe_stream(StreamName=stream)["StreamDescription"]["Shards"][0]["ShardId"]
        it = k2.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = k2.get_records(ShardIterator=it)["Records"]
        assert [(r["Data"], r["SequenceNumber"]) for r in records] == [(b"hello", put["SequenceNumber"])]
        assert sum(metric(n, "rapid_cluster_queues_forwarded_total") for n in nodes) > 0
        table = run_cli(["cluster", "status", "--cluster", nats.url])
        assert table.returncode == 0 and "built-in queues, streams and mappings: owned by" in table.stdout, table.stdout
        # The owner stops cleanly: it gives the queues back at once, the other node replays the
        # journal and serves what the first one had accepted.
        first.send_message(QueueUrl=url, MessageBody="kept")
        leaving = owner(nodes)[0]
        staying = nodes[1] if leaving is nodes[0] else nodes[0]
        assert leaving.stop() == 0
        wait_until(lambda: owner([staying]) == [staying], timeout=20, what="the other node to take the queues")
        kept = aws(staying, "sqs").receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
        assert [m["Body"] for m in kept] == ["kept"]
        it = aws(staying, "kinesis").get_shard_iterator(StreamName=stream, ShardId=shard,
                                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        assert [r["Data"] for r in aws(staying, "kinesis").get_records(ShardIterator=it)["Records"]] == [b"hello"]


def test_sqs_mapping_keeps_draining_when_its_owner_dies(tmp_path: Path) -> None:
    total = 400
    with nats_server() as nats, collector() as (collect, seen), contextlib.ExitStack() as stack:
        def node(i: int, **kw: object) -> Daemon:
            return stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / f"n{i}")],
                                                  env=ENV, **kw))  # type: ignore[arg-type]

        victim = node(0, expect_exit=None)  # started first, alone: it takes the queues
        wait_until(lambda: owner([victim]) == [victim], timeout=20, what="node 0 to own the queues")
        survivors = [node(1), node(2)]
        lam = aws(survivors[0], "lambda")
        sqs = aws(survivors[1], "sqs")
        name = f"drain-{unique()}"
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(HANDLER)}, Timeout=3,
                            Environment={"Variables": {"COLLECT": collect}})
        wait_active(lam, name)
        # Reserved: the owner's pollers run it only under cluster-wide leases (the dead node's expire).
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
        dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(QueueName=name, Attributes={
            "VisibilityTimeout": "6",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "4"})})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for start in range(0, total, 10):
            client = aws(survivors[start // 10 % 2], "sqs")
            client.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"b{i}"}
                                                             for i in range(start, start + 10)])
        # Made on a node that does not own the queues: it is the owner's, in the shared bucket.
        wait_until(lambda: lam.get_function(FunctionName=name), timeout=10, what="the function")
        mapping = aws(survivors[1], "lambda").create_event_source_mapping(
            FunctionName=name, EventSourceArn=arn, BatchSize=10)
        wait_until(lambda: lam.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Enabled",
                   timeout=20, what="the mapping enabled")
        wait_until(lambda: len(seen) >= 60, timeout=60, what="the mapping to drain some")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        before = set(seen)
        wait_until(lambda: len(owner(survivors)) == 1, timeout=30, what="another node to take the queues over")
        expected = {f"b{i}" for i in range(total)}
        wait_until(lambda: set(seen) >= expected, timeout=120,
                   what=f"every message: {len(expected - set(seen))} missing")
        counts: dict[str, int] = {}
        for body in seen:
            counts[body] = counts.get(body, 0) + 1
        duplicates = {body: n for body, n in counts.items() if n > 1}
        print(f"{total} messages, {len(before)} handled before the kill, {sum(duplicates.values()) - len(duplicates)} "
              f"duplicates")
        # At least once, and only what the dead node had already handed to the function runs twice.
        assert set(duplicates) <= before, sorted(set(duplicates) - before)[:10]
        assert all(n <= 2 for n in duplicates.values()), duplicates
        wait_until(lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                   ["ApproximateNumberOfMessages"] == "0", timeout=30, what="the queue empty")
        attrs = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessages"] == "0", "a message went to the dead-letter queue"
        # The mapping lives on with the new owner, seen from any node.
        assert aws(survivors[0], "lambda").get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Enabled"
        assert sum(metric(n, "rapid_cluster_queues_takeovers_total") for n in survivors) == 1


KINESIS_HANDLER = """import base64, json, os, time, urllib.request
def handler(event, context):
    bodies = [base64.b64decode(r["kinesis"]["data"]).decode() for r in event["Records"]]
    urllib.request.urlopen(urllib.request.Request(os.environ["COLLECT"], data=json.dumps(bodies).encode()),
                           timeout=30).read()
    time.sleep(0.2)
    return {}
"""


def test_kinesis_mapping_resumes_from_its_checkpoint_on_another_node(tmp_path: Path) -> None:
    total = 300
    with nats_server() as nats, collector() as (collect, seen), contextlib.ExitStack() as stack:
        def node(i: int, **kw: object) -> Daemon:
            return stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / f"n{i}")],
                                                  env=ENV, **kw))  # type: ignore[arg-type]

        victim = node(0, expect_exit=None)
        wait_until(lambda: owner([victim]) == [victim], timeout=20, what="node 0 to own the streams")
        survivor = node(1)
        lam, kin = aws(survivor, "lambda"), aws(survivor, "kinesis")
        name = f"kdrain-{unique()}"
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(KINESIS_HANDLER)}, Timeout=10,
                            Environment={"Variables": {"COLLECT": collect}})
        wait_active(lam, name)
        kin.create_stream(StreamName=name, ShardCount=2)
        wait_until(lambda: kin.describe_stream(StreamName=name)["StreamDescription"]["StreamStatus"] == "ACTIVE",
                   timeout=20, what="the stream active")
        arn = kin.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"]
        for start in range(0, total, 50):
            kin.put_records(StreamName=name, Records=[{"Data": f"r{i}".encode(), "PartitionKey": f"k{i}"}
                                                      for i in range(start, start + 50)])
        lam.create_event_source_mapping(FunctionName=name, EventSourceArn=arn, StartingPosition="TRIM_HORIZON",
                                        BatchSize=10)
        wait_until(lambda: len(seen) >= 60, timeout=60, what="the mapping to read some")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        before = len(seen)
        expected = {f"r{i}" for i in range(total)}
        wait_until(lambda: set(seen) >= expected, timeout=120,
                   what=f"every record: {len(expected - set(seen))} missing")
        again = len(seen) - len(set(seen))
        print(f"{total} records, {before} handed to the function before the kill, {again} read again")
        # Resumed from the checkpoints in the shared bucket, not from the start of each shard:
        # only the batches in flight at the kill (one per shard) are read again.
        assert again <= 2 * 10, again
        assert metric(survivor, "rapid_cluster_queues_takeovers_total") == 1


def test_a_long_poll_through_another_node_holds_no_other_call_back(tmp_path: Path) -> None:
    """Calls forwarded to the owner are answered side by side: a ReceiveMessage long-polling
    an empty queue through the other node does not hold a SendMessage behind it."""
    import threading

    with nats_server() as nats, contextlib.ExitStack() as stack:
        nodes = [stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / f"n{i}")],
                                                env=ENV)) for i in range(2)]
        wait_until(lambda: len(owner(nodes)) == 1, timeout=20, what="one owner of the queues")
        other = next(n for n in nodes if n not in owner(nodes))
        sqs = aws(other, "sqs")
        waiting = sqs.create_queue(QueueName=f"wait-{unique()}")["QueueUrl"]
        busy = sqs.create_queue(QueueName=f"busy-{unique()}")["QueueUrl"]
        got: list[dict] = []  # type: ignore[type-arg]
        poll = threading.Thread(target=lambda: got.extend(aws(other, "sqs").receive_message(
            QueueUrl=waiting, WaitTimeSeconds=20).get("Messages", [])))
        poll.start()
        try:
            wait_until(lambda: metric(owner(nodes)[0], "rapid_cluster_queues_served_total") >= 3, timeout=10,
                       what="the long poll to reach the owner")
            sqs.send_message(QueueUrl=busy, MessageBody="not held back")
            assert poll.is_alive(), "the long poll ended before the other call was answered"
            assert [m["Body"] for m in sqs.receive_message(QueueUrl=busy).get("Messages", [])] == ["not held back"]
            sqs.send_message(QueueUrl=waiting, MessageBody="the one it waited for")
        finally:
            poll.join(30)
        assert [m["Body"] for m in got] == ["the one it waited for"]
