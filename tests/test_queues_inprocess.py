"""The in-process side of the built-in SQS and Kinesis, as the event source mapping pollers
will use it: receive (waiting without a task), delete, change visibility, read a shard; and
the same objects answering the HTTP protocol in the same loop."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from rapid.http.message import Request
from rapid.queues.sqs_api import SqsAPI
from rapid.queues.sqs_live import LiveQueues
from rapid.queues.sqs_errors import SqsError
from rapid.queues.store import Journal
from rapid.streams.kinesis_api import KinesisAPI


def call(api, op, body, prefix="AmazonSQS"):
    req = Request("POST", "/")
    req.headers = {"x-amz-target": f"{prefix}.{op}", "host": "127.0.0.1:9"}
    req.body = json.dumps(body).encode()
    return api(req, "rid")


async def answer(result):
    resp = await result if isinstance(result, asyncio.Future) else result
    return resp.status, json.loads(resp.body)


@pytest.fixture
async def journal(tmp_path):
    j = Journal(tmp_path)
    j.start(asyncio.get_running_loop())
    yield j
    j.close()


async def test_a_poller_waits_for_a_message_then_deletes_it(journal):
    live = LiveQueues(journal, "us-east-1", "000000000000")
    api = SqsAPI(live)
    status, out = await answer(call(api, "CreateQueue", {"QueueName": "q"}))
    assert status == 200
    waiting = live.receive("q", 10, visibility=30, wait=20)
    await asyncio.sleep(0)
    assert not waiting.done() and "1 waiting" in repr(api)
    status, sent = await answer(call(api, "SendMessage", {"QueueUrl": out["QueueUrl"], "MessageBody": "job"}))
    [m] = await asyncio.wait_for(waiting, 10)
    assert m.body == "job" and m.id == sent["MessageId"] and m.receive_count == 1
    again = await live.receive("q", 10)
    assert again == []  # in flight
    await live.change_visibility("q", m.receipt, 0)
    [back] = await live.receive("q", 10)
    await live.delete("q", [back.receipt])
    status, attrs = await answer(call(api, "GetQueueAttributes", {"QueueUrl": out["QueueUrl"],
                                                                  "AttributeNames": ["All"]}))
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
    with pytest.raises(SqsError):
        await live.receive("nope")
    live.close()


async def test_a_receive_can_take_more_than_ten_for_a_big_batch(journal):
    live = LiveQueues(journal, "us-east-1", "000000000000")
    api = SqsAPI(live)
    _, out = await answer(call(api, "CreateQueue", {"QueueName": "big"}))
    for i in range(25):
        await answer(call(api, "SendMessage", {"QueueUrl": out["QueueUrl"], "MessageBody": str(i)}))
    got = await live.receive("big", 100)
    assert [m.body for m in got] == [str(i) for i in range(25)]
    live.close()


async def test_a_poller_reads_a_shard_after_its_checkpoint(journal):
    api = KinesisAPI(journal, "us-east-1", "000000000000")
    await answer(call(api, "CreateStream", {"StreamName": "s", "ShardCount": 1}, "Kinesis_20131202"))
    seqs = []
    for i in range(3):
        _, out = await answer(call(api, "PutRecord", {"StreamName": "s", "PartitionKey": "k",
                                                      "Data": base64.b64encode(bytes([i])).decode()},
                                   "Kinesis_20131202"))
        seqs.append(int(out["SequenceNumber"]))
    shard = api.service.streams["s"].shards[0]
    got, behind = api.read("s", shard.id, shard.base, 2)
    assert [r.seq for r in got] == seqs[:2] and behind >= 0
    got, behind = api.read("s", shard.id, seqs[1], 100)
    assert [r.data for r in got] == [b"\x02"] and behind == 0


async def test_members_of_the_wrong_type_are_refused_not_crashed_on(journal):
    sqs = SqsAPI(LiveQueues(journal, "us-east-1", "000000000000"))
    kinesis = KinesisAPI(journal, "us-east-1", "000000000000")
    for api, op, body in [(sqs, "AmazonSQS.CreateQueue", {"QueueName": ["q"]}),
                          (sqs, "AmazonSQS.ListQueues", {"NextToken": [1]}),
                          (kinesis, "Kinesis_20131202.CreateStream", {"StreamName": "s", "StreamModeDetails": 1}),
                          (kinesis, "Kinesis_20131202.ListStreams", {"Limit": "x"})]:
        prefix, _, name = op.partition(".")
        status, out = await answer(call(api, name, body, prefix))
        assert status == 400 and out["__type"].endswith(("SerializationException", "ValidationException", "MissingParameterException",
                                                          "InvalidParameterValueException")), (op, out)
    assert sqs.service.queues == {} and kinesis.service.streams == {}


async def test_a_fifo_long_poll_is_answered_when_a_delete_opens_the_group(journal):
    live = LiveQueues(journal, "us-east-1", "000000000000")
    api = SqsAPI(live)
    _, out = await answer(call(api, "CreateQueue", {"QueueName": "g.fifo", "Attributes": {
        "FifoQueue": "true", "ContentBasedDeduplication": "true"}}))
    for body in ("first", "second"):
        await answer(call(api, "SendMessage", {"QueueUrl": out["QueueUrl"], "MessageBody": body,
                                               "MessageGroupId": "g"}))
    [first] = await live.receive("g.fifo", 1, visibility=600)
    waiting = live.receive("g.fifo", 10, wait=20)  # the group is held by "first"
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await live.delete("g.fifo", [first.receipt])
    [second] = await asyncio.wait_for(waiting, 5)
    assert second.body == "second"
    live.close()


async def test_a_batch_entry_of_the_wrong_type_fails_alone(journal):
    live = LiveQueues(journal, "us-east-1", "000000000000")
    api = SqsAPI(live)
    _, out = await answer(call(api, "CreateQueue", {"QueueName": "b"}))
    status, res = await answer(call(api, "SendMessageBatch", {"QueueUrl": out["QueueUrl"], "Entries": [
        {"Id": "good", "MessageBody": "ok"}, {"Id": "bad", "MessageBody": "x", "MessageAttributes": {"a": 1}}]}))
    assert status == 200 and [e["Id"] for e in res["Successful"]] == ["good"]
    assert [e["Id"] for e in res["Failed"]] == ["bad"]
    [m] = await live.receive("b", 10)
    assert m.body == "ok"
    live.close()
