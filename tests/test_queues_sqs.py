"""The built-in SQS through boto3 and the AWS CLI against a real daemon: every operation,
and the semantics users rely on (visibility, redrive, FIFO groups and dedup, long polling,
MD5s checked by the client, kill -9 durability, async destinations visible as messages)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import boto3
import botocore.config
import botocore.exceptions
import pytest

from tests.daemon import EXAMPLES, ROOT, make_function, run_cli, run_server

ARGS = ["--function", f"echo={EXAMPLES / 'shell-echo'}"]
ACCOUNT = "000000000000"


def client(d, service="sqs"):
    return boto3.client(service, endpoint_url=d.url, region_name="us-east-1", aws_access_key_id="k",
                        aws_secret_access_key="s")


def code(exc_info):
    return exc_info.value.response["Error"]["Code"]


def wait_for(probe, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with run_server([*ARGS, "--data-dir", str(tmp_path_factory.mktemp("sqs"))]) as d:
        yield d


@pytest.fixture
def sqs(daemon):
    return client(daemon)


def test_queue_lifecycle(sqs):
    url = sqs.create_queue(QueueName="life", Attributes={"VisibilityTimeout": "7", "DelaySeconds": "0"})["QueueUrl"]
    assert url.endswith(f"/{ACCOUNT}/life")
    assert sqs.create_queue(QueueName="life", Attributes={"VisibilityTimeout": "7"})["QueueUrl"] == url
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.create_queue(QueueName="life", Attributes={"VisibilityTimeout": "8"})
    assert code(e) == "QueueAlreadyExists"
    assert sqs.get_queue_url(QueueName="life")["QueueUrl"] == url
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "7" and attrs["QueueArn"] == f"arn:aws:sqs:us-east-1:{ACCOUNT}:life"
    assert attrs["ApproximateNumberOfMessages"] == "0" and "FifoQueue" not in attrs
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"ReceiveMessageWaitTimeSeconds": "1"})
    only = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ReceiveMessageWaitTimeSeconds"])["Attributes"]
    assert only == {"ReceiveMessageWaitTimeSeconds": "1"}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Bogus"])
    assert code(e) == "InvalidAttributeName"
    assert url in sqs.list_queues(QueueNamePrefix="lif")["QueueUrls"]
    sqs.create_queue(QueueName="life2")
    page = sqs.list_queues(QueueNamePrefix="life", MaxResults=1)
    assert len(page["QueueUrls"]) == 1 and page["NextToken"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    sqs.purge_queue(QueueUrl=url)
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "0"
    sqs.tag_queue(QueueUrl=url, Tags={"team": "a", "env": "dev"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["env"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "a"}
    tagged = sqs.create_queue(QueueName="tagged", tags={"k": "v"})["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=tagged)["Tags"] == {"k": "v"}
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as e:
        sqs.get_queue_url(QueueName="life")
    assert code(e) == "AWS.SimpleQueueService.NonExistentQueue"
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-query-error"] == \
        "AWS.SimpleQueueService.NonExistentQueue;Sender"


def test_send_receive_attributes_and_md5s_checked_by_the_client(sqs):
    url = sqs.create_queue(QueueName="attrs")["QueueUrl"]
    attrs = {"s": {"DataType": "String", "StringValue": "héllo"}, "n": {"DataType": "Number", "StringValue": "42"},
             "b": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}, "c": {"DataType": "String.custom",
                                                                             "StringValue": "v"}}
    sent = sqs.send_message(QueueUrl=url, MessageBody="body ✓", MessageAttributes=attrs,
                            MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String",
                                                                        "StringValue": "Root=1-abc"}})
    from rapid.queues import md5  # the digests are checked against AWS's samples in test_queues_sqs_core

    assert sent["MD5OfMessageBody"] == md5.of_body("body ✓")
    assert sent["MD5OfMessageAttributes"] == md5.of_attributes(
        {**attrs, "b": {"DataType": "Binary", "BinaryValue": "AP8="}})
    assert sent["MD5OfMessageSystemAttributes"] == md5.of_attributes(
        {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc"}})
    [m] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"],
                              MessageSystemAttributeNames=["All"])["Messages"]
    assert m["Body"] == "body ✓" and m["MessageId"] == sent["MessageId"]
    assert m["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert m["MessageAttributes"]["b"]["BinaryValue"] == b"\x00\xff"
    assert m["Attributes"]["ApproximateReceiveCount"] == "1" and m["Attributes"]["AWSTraceHeader"] == "Root=1-abc"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=attrs)
    [m] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["s"])["Messages"]
    assert set(m["MessageAttributes"]) == {"s"} and "Attributes" not in m


def test_errors_in_aws_words(sqs):
    url = sqs.create_queue(QueueName="errs")["QueueUrl"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x" * (256 * 1024 + 1))
    assert code(e) == "InvalidParameterValue" and "Message must be shorter than 262144 bytes" in str(e.value)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="garbage")
    assert code(e) == "ReceiptHandleIsInvalid"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "1"}, {"Id": "a", "MessageBody": "2"}])
    assert code(e) == "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(11)])
    assert code(e) == "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.create_queue(QueueName="bad name")
    assert code(e) == "InvalidParameterValue"


def test_batches_and_visibility(sqs):
    url = sqs.create_queue(QueueName="batch", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    out = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "1"}, {"Id": "b", "MessageBody": "2"}, {"Id": "bad", "MessageBody": "\x01"}])
    assert sorted(s["Id"] for s in out["Successful"]) == ["a", "b"]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in out["Failed"]] == [("bad", "InvalidMessageContents", True)]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in got) == ["1", "2"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # both in flight
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "2"
    ch = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "x", "ReceiptHandle": got[0]["ReceiptHandle"], "VisibilityTimeout": 0}])
    assert [s["Id"] for s in ch["Successful"]] == ["x"]
    [back] = sqs.receive_message(QueueUrl=url)["Messages"]
    assert back["MessageId"] == got[0]["MessageId"]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=back["ReceiptHandle"], VisibilityTimeout=0)
    d = sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": f"e{i}", "ReceiptHandle": m["ReceiptHandle"]}
                                                         for i, m in enumerate(got)])
    assert len(d["Successful"]) == 2
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == counts["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_long_poll_is_answered_by_a_send(daemon, sqs):
    url = sqs.create_queue(QueueName="poll")["QueueUrl"]
    got = {}
    waiter = threading.Thread(target=lambda: got.update(sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20)))
    waiter.start()
    time.sleep(0.3)  # let the receive park (not a timing assertion: the answer is the same either way)
    client(daemon).send_message(QueueUrl=url, MessageBody="wake up")
    waiter.join(25)
    assert not waiter.is_alive() and got["Messages"][0]["Body"] == "wake up"
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)  # ends empty at the deadline


def test_long_poll_sees_a_message_coming_back_into_view(sqs):
    url = sqs.create_queue(QueueName="comeback")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m")
    [m] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)["Messages"]
    [again] = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20)["Messages"]
    assert again["MessageId"] == m["MessageId"] and again["ReceiptHandle"] != m["ReceiptHandle"]


def test_redrive_to_the_dead_letter_queue(sqs):
    dlq = sqs.create_queue(QueueName="dead")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="source", Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "2"})})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):
        [m] = sqs.receive_message(QueueUrl=url)["Messages"]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    [dead] = sqs.receive_message(QueueUrl=dlq, AttributeNames=["All"])["Messages"]
    assert dead["Body"] == "poison" and dead["MessageId"] == m["MessageId"]
    assert dead["Attributes"]["DeadLetterQueueSourceArn"].endswith(":source")
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [url]


def test_fifo_order_groups_and_dedup(sqs):
    url = sqs.create_queue(QueueName="jobs.fifo", Attributes={"FifoQueue": "true",
                                                               "ContentBasedDeduplication": "true"})["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"a{i}", MessageGroupId="A")
    first = sqs.send_message(QueueUrl=url, MessageBody="b0", MessageGroupId="B")
    again = sqs.send_message(QueueUrl=url, MessageBody="b0", MessageGroupId="B")  # content-based duplicate
    assert again["MessageId"] == first["MessageId"] and first["SequenceNumber"]
    batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in batch] == ["a0", "a1", "a2", "b0"]
    assert batch[0]["Attributes"]["MessageGroupId"] == "A"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # every group in flight
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=batch[3]["ReceiptHandle"], VisibilityTimeout=0)
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]] == ["b0"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x")
    assert code(e) == "MissingParameter"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.create_queue(QueueName="plain.fifo")
    assert code(e) == "InvalidParameterValue"


def test_aws_cli_round_trip(daemon):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1"}
    aws = [os.path.join(os.path.dirname(sys.executable), "aws"), "--endpoint-url", daemon.url, "sqs"]
    run = lambda *a: json.loads(subprocess.run([*aws, *a], env=env, check=True, capture_output=True,
                                               timeout=60).stdout or b"{}")
    url = run("create-queue", "--queue-name", "cli")["QueueUrl"]
    sent = run("send-message", "--queue-url", url, "--message-body", "from the cli")
    got = run("receive-message", "--queue-url", url)["Messages"][0]
    assert got["Body"] == "from the cli" and got["MessageId"] == sent["MessageId"]
    run("delete-message", "--queue-url", url, "--receipt-handle", got["ReceiptHandle"])


def test_kill_9_keeps_every_acknowledged_message(tmp_path):
    data = tmp_path / "data"
    with run_server([*ARGS, "--data-dir", str(data)], expect_exit=None) as d:
        sqs = client(d)
        url = sqs.create_queue(QueueName="durable", Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
        ids = {sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")["MessageId"] for i in range(20)}
        [taken] = sqs.receive_message(QueueUrl=url)["Messages"]
        fifo = sqs.create_queue(QueueName="durable.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        first = sqs.send_message(QueueUrl=fifo, MessageBody="once", MessageGroupId="g", MessageDeduplicationId="d1")
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
    with run_server([*ARGS, "--data-dir", str(data)]) as d:
        sqs = client(d)
        url = sqs.get_queue_url(QueueName="durable")["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]) == ("19", "1")
        seen = set()
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                break
            seen.update(m["MessageId"] for m in got)
        assert seen | {taken["MessageId"]} == ids
        sqs.delete_message(QueueUrl=url, ReceiptHandle=taken["ReceiptHandle"])  # the old handle still works
        fifo = sqs.get_queue_url(QueueName="durable.fifo")["QueueUrl"]
        again = sqs.send_message(QueueUrl=fifo, MessageBody="once", MessageGroupId="g", MessageDeduplicationId="d1")
        assert again["MessageId"] == first["MessageId"]  # deduplication survives the crash
        [m] = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)["Messages"]
        assert m["Body"] == "once"


FAIL = """#!/bin/sh
while true; do
  h=$(mktemp); curl -sS -D "$h" -o /dev/null "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next"
  id=$(grep -i lambda-runtime-aws-request-id "$h" | tr -d '\\r' | cut -d' ' -f2)
  curl -sS -o /dev/null -d '{"errorMessage":"nope","errorType":"Boom"}' \\
    "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/$id/error"
done
"""


def test_an_async_on_failure_record_is_a_message_of_the_queue(tmp_path):
    fn = make_function(tmp_path / "fail", FAIL)
    (tmp_path / "rapid.toml").write_text(f"""
data_dir = "{tmp_path / 'data'}"
async_time_scale = 0.01

[functions.fail]
path = "{fn}"
maximum_retry_attempts = 0
on_failure = "arn:aws:sqs:us-east-1:{ACCOUNT}:failures"
dead_letter = "arn:aws:sqs:us-east-1:{ACCOUNT}:dead-letters"
""")
    with run_server(["--config", str(tmp_path / "rapid.toml")]) as d:
        r = d.request("POST", "/2015-03-31/functions/fail/invocations", b'{"k": 1}',
                      {"X-Amz-Invocation-Type": "Event"})
        assert r.status == 202
        sqs = client(d)
        url = wait_for(lambda: _url_or_none(sqs, "failures"), 30, "the queue made by the first record")
        [m] = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20)["Messages"]
        record = json.loads(m["Body"])
        assert record["requestContext"]["condition"] == "RetriesExhausted"
        assert record["requestPayload"] == {"k": 1}
        assert record["responsePayload"]["errorType"] == "Boom"
        dlq = wait_for(lambda: _url_or_none(sqs, "dead-letters"), 30, "the dead-letter queue")
        [dead] = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=20, MessageAttributeNames=["All"])["Messages"]
        assert json.loads(dead["Body"]) == {"k": 1}  # a dead letter is the event itself
        attrs = dead["MessageAttributes"]
        assert attrs["ErrorCode"] == {"StringValue": "200", "DataType": "Number"}
        assert attrs["ErrorMessage"]["StringValue"] == "nope" and attrs["RequestID"]["StringValue"] == r.headers[
            "x-amzn-requestid"]
        from rapid.queues import md5

        assert dead["MD5OfMessageAttributes"] == md5.of_attributes(attrs)
        sqs.delete_message(QueueUrl=dlq, ReceiptHandle=dead["ReceiptHandle"])
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        assert run_cli(["queue", "--data-dir", str(tmp_path / "data"), "--messages", "failures"]).stdout == ""


def _url_or_none(sqs, name):
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        return None


def test_error_bodies_as_the_json_protocol_carries_them(daemon):
    bad = daemon.request("POST", "/", json.dumps({"QueueUrl": "http://x/000000000000/none"}).encode(),
                         {"X-Amz-Target": "AmazonSQS.ReceiveMessage", "Content-Type": "application/x-amz-json-1.0"})
    assert bad.status == 400 and bad.headers["content-type"] == "application/x-amz-json-1.0"
    assert bad.json() == {"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "The specified queue does not exist."}
    assert bad.headers["x-amzn-query-error"] == "AWS.SimpleQueueService.NonExistentQueue;Sender"
    missing = daemon.request("POST", "/", b"{}", {"X-Amz-Target": "AmazonSQS.CreateQueue",
                                                  "Content-Type": "application/x-amz-json-1.0"})
    assert missing.json()["__type"] == "com.amazon.coral.service#MissingParameterException"
    assert missing.headers["x-amzn-query-error"] == "MissingParameter;Sender"
    unknown = daemon.request("POST", "/", b"{}", {"X-Amz-Target": "AmazonSQS.Frobnicate",
                                                  "Content-Type": "application/x-amz-json-1.0"})
    assert unknown.status == 400 and "Frobnicate" in unknown.json()["message"]
    garbage = daemon.request("POST", "/", b"{not json", {"X-Amz-Target": "AmazonSQS.ListQueues"})
    assert garbage.status == 400 and garbage.json()["__type"].endswith("#SerializationException")


JS_SDK = ROOT / ".cache" / "js-sdk" / "node_modules"
JS_CLIENTS = """
const { SQSClient, CreateQueueCommand, SendMessageCommand, SendMessageBatchCommand, ReceiveMessageCommand,
        DeleteMessageCommand } = require("@aws-sdk/client-sqs");
const { KinesisClient, CreateStreamCommand, PutRecordCommand, GetShardIteratorCommand,
        GetRecordsCommand } = require("@aws-sdk/client-kinesis");
const { NodeHttpHandler } = require("@smithy/node-http-handler");
const conf = { endpoint: process.argv[2], region: "us-east-1",
               credentials: { accessKeyId: "k", secretAccessKey: "s" } };
(async () => {
  const sqs = new SQSClient(conf);  // checks MD5OfMessageBody on send, batch and receive
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: "js" }));
  const attrs = { n: { DataType: "Number", StringValue: "7" } };
  await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: "héllo ✓", MessageAttributes: attrs }));
  await sqs.send(new SendMessageBatchCommand({ QueueUrl, Entries: [{ Id: "a", MessageBody: "two" }] }));
  const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10,
                                                         MessageAttributeNames: ["All"] }));
  for (const m of got.Messages) await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: m.ReceiptHandle }));
  // The Kinesis client speaks HTTP/2 by default; rapid serves HTTP/1.1: the client's own handler for it.
  const k = new KinesisClient({ ...conf, requestHandler: new NodeHttpHandler() });
  await k.send(new CreateStreamCommand({ StreamName: "js", ShardCount: 1 }));
  const put = await k.send(new PutRecordCommand({ StreamName: "js", PartitionKey: "p",
                                                  Data: Buffer.from("rec") }));
  const { ShardIterator } = await k.send(new GetShardIteratorCommand({ StreamName: "js", ShardId: put.ShardId,
                                                                       ShardIteratorType: "TRIM_HORIZON" }));
  const recs = await k.send(new GetRecordsCommand({ ShardIterator }));
  console.log(JSON.stringify({ bodies: got.Messages.map((m) => m.Body).sort(),
                               n: got.Messages.find((m) => m.MessageAttributes).MessageAttributes.n.StringValue,
                               data: Buffer.from(recs.Records[0].Data).toString() }));
})().catch((e) => { console.error(e.name + ": " + e.message); process.exit(1); });
"""


@pytest.mark.slow
def test_the_javascript_sdk_v3(daemon, tmp_path):
    assert (JS_SDK / "@aws-sdk" / "client-sqs").exists(), ".ci/steps/45-js-sqs.sh installs @aws-sdk/client-sqs"
    (tmp_path / "node_modules").symlink_to(JS_SDK)
    (tmp_path / "clients.js").write_text(JS_CLIENTS)
    out = subprocess.run(["node", "clients.js", daemon.url], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"bodies": ["héllo ✓", "two"], "n": "7", "data": "rec"}


def test_off_loopback_the_queues_need_credentials(tmp_path):
    with run_server([*ARGS, "--host", "0.0.0.0", "--data-dir", str(tmp_path / "a")]) as d:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            client(d).list_queues()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        with pytest.raises(botocore.exceptions.ClientError) as e:
            client(d, "kinesis").list_streams()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKIDRAPID\naws_secret_access_key = s3cret\n")
    with run_server([*ARGS, "--host", "0.0.0.0", "--credentials", str(creds), "--data-dir", str(tmp_path / "b")]) as d:
        signed = boto3.client("sqs", endpoint_url=d.url, region_name="us-east-1", aws_access_key_id="AKIDRAPID",
                              aws_secret_access_key="s3cret")
        url = signed.create_queue(QueueName="signed")["QueueUrl"]
        signed.send_message(QueueUrl=url, MessageBody="ok")
        assert signed.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "ok"
        with pytest.raises(botocore.exceptions.ClientError) as e:
            client(d).list_queues()  # the wrong keys
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@pytest.mark.slow
def test_kill_9_under_load_loses_no_acknowledged_send(tmp_path):
    """Senders keep sending while the daemon is killed: every SendMessage that was answered
    200 is on disk after the restart (answered only after the commit)."""
    data = tmp_path / "data"
    acked: list[str] = []
    lock = threading.Lock()
    with run_server([*ARGS, "--data-dir", str(data)], expect_exit=None) as d:
        url = client(d).create_queue(QueueName="load")["QueueUrl"]

        def sender():
            sqs = boto3.client("sqs", endpoint_url=d.url, region_name="us-east-1", aws_access_key_id="k",
                               aws_secret_access_key="s",
                               config=botocore.config.Config(retries={"max_attempts": 0}, connect_timeout=2,
                                                             read_timeout=5))
            while True:
                try:
                    mid = sqs.send_message(QueueUrl=url, MessageBody="m")["MessageId"]
                except Exception:
                    return  # the daemon is gone
                with lock:
                    acked.append(mid)

        threads = [threading.Thread(target=sender) for _ in range(6)]
        for t in threads:
            t.start()
        wait_for(lambda: len(acked) >= 300, 60, "300 acknowledged sends")
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        for t in threads:
            t.join(30)
    with run_server([*ARGS, "--data-dir", str(data)]) as d:
        sqs = client(d)
        seen: set[str] = set()
        while True:
            got = sqs.receive_message(QueueUrl=url.replace(url.split("/")[2], d.url.split("/")[2]),
                                      MaxNumberOfMessages=10, VisibilityTimeout=600).get("Messages", [])
            if not got:
                break
            seen.update(m["MessageId"] for m in got)
        assert set(acked) <= seen, f"{len(set(acked) - seen)} acknowledged messages lost"
