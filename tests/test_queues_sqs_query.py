"""The built-in SQS in the older query protocol (form-encoded ``Action=...``, XML answers),
with real clients that speak it: boto3 1.26 / botocore 1.29 and the AWS CLI v1 of that
release, in a venv of their own (``.ci/steps/47-sqs-query.sh`` makes it), against a real
daemon; and the raw shapes those clients send (a POST to the queue's own URL, a GET)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.daemon import ROOT, run_server

VENV = ROOT / ".cache" / "boto3-query"
NS = "{http://queue.amazonaws.com/doc/2012-11-05/}"
CLIENT = r'''
import json, sys
import boto3, botocore, botocore.config
assert botocore.session.get_session().get_service_model("sqs").protocol == "query"
url = sys.argv[1]
sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1", aws_access_key_id="k",
                   aws_secret_access_key="s", config=botocore.config.Config(retries={"max_attempts": 0}))
out = {}
q = sqs.create_queue(QueueName="qp", Attributes={"VisibilityTimeout": "7"}, tags={"team": "a"})["QueueUrl"]
out["url"] = q
out["get_url"] = sqs.get_queue_url(QueueName="qp")["QueueUrl"]
out["list"] = sqs.list_queues(QueueNamePrefix="q")["QueueUrls"]
sent = sqs.send_message(QueueUrl=q, MessageBody="hi & <there>", DelaySeconds=0, MessageAttributes={
    "s": {"DataType": "String", "StringValue": "v"}, "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}})
out["sent"] = {k: sent[k] for k in ("MessageId", "MD5OfMessageBody", "MD5OfMessageAttributes")}
got = sqs.receive_message(QueueUrl=q, AttributeNames=["All"], MessageAttributeNames=["All"], WaitTimeSeconds=1,
                          MaxNumberOfMessages=10)["Messages"]
m = got[0]
out["received"] = {"id": m["MessageId"], "body": m["Body"], "md5": m["MD5OfBody"],
                   "count": m["Attributes"]["ApproximateReceiveCount"],
                   "attrs": {k: v.get("StringValue") or list(v["BinaryValue"]) for k, v in m["MessageAttributes"].items()}}
sqs.change_message_visibility(QueueUrl=q, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
m = sqs.receive_message(QueueUrl=q, WaitTimeSeconds=1)["Messages"][0]
sqs.delete_message(QueueUrl=q, ReceiptHandle=m["ReceiptHandle"])
out["attributes"] = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["All"])["Attributes"]
batch = sqs.send_message_batch(QueueUrl=q, Entries=[{"Id": "a", "MessageBody": "one"},
                                                    {"Id": "b", "MessageBody": ""}])
out["batch"] = {"ok": [e["Id"] for e in batch.get("Successful", [])],
                "failed": [(e["Id"], e["Code"], e["SenderFault"]) for e in batch.get("Failed", [])]}
sqs.set_queue_attributes(QueueUrl=q, Attributes={"DelaySeconds": "0", "MaximumMessageSize": "2048"})
sqs.tag_queue(QueueUrl=q, Tags={"env": "dev"})
out["tags"] = sqs.list_queue_tags(QueueUrl=q)["Tags"]
sqs.untag_queue(QueueUrl=q, TagKeys=["team"])
out["tags_after"] = sqs.list_queue_tags(QueueUrl=q)["Tags"]
got = sqs.receive_message(QueueUrl=q, WaitTimeSeconds=1)["Messages"]
changed = sqs.change_message_visibility_batch(QueueUrl=q, Entries=[
    {"Id": "c", "ReceiptHandle": got[0]["ReceiptHandle"], "VisibilityTimeout": 0},
    {"Id": "d", "ReceiptHandle": "not-a-handle", "VisibilityTimeout": 0}])
out["changed"] = {"ok": [e["Id"] for e in changed["Successful"]], "failed": [e["Id"] for e in changed["Failed"]]}
got = sqs.receive_message(QueueUrl=q, WaitTimeSeconds=1)["Messages"]
deleted = sqs.delete_message_batch(QueueUrl=q, Entries=[{"Id": "e", "ReceiptHandle": got[0]["ReceiptHandle"]}])
out["deleted"] = [e["Id"] for e in deleted["Successful"]]
out["max_size"] = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["MaximumMessageSize"])["Attributes"]
errors = {}
for name, call in (("missing_queue", lambda: sqs.get_queue_url(QueueName="nope")),
                   ("bad_value", lambda: sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=11)),
                   ("too_big", lambda: sqs.send_message(QueueUrl=q, MessageBody="x" * (256 * 1024 + 1)))):
    try:
        call()
    except botocore.exceptions.ClientError as exc:
        errors[name] = [exc.response["Error"]["Code"], exc.response["Error"].get("Type"),
                        exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Message"]]
out["errors"] = errors
sqs.purge_queue(QueueUrl=q)
sqs.delete_queue(QueueUrl=q)
out["after_delete"] = sqs.list_queues(QueueNamePrefix="qp").get("QueueUrls", [])
print(json.dumps(out))
'''


def need_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{VENV} is missing: .ci/steps/47-sqs-query.sh makes it")
    return python


def test_boto3_of_the_query_protocol_era(tmp_path: Path) -> None:
    python = need_venv()
    with run_server(["--data-dir", str(tmp_path / "data")]) as d:
        r = subprocess.run([str(python), "-c", CLIENT, d.url], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"})
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
    assert out["url"] == out["get_url"] == f"{d.url}/000000000000/qp" and out["list"] == [out["url"]]
    assert out["received"]["id"] == out["sent"]["MessageId"] and out["received"]["body"] == "hi & <there>"
    assert out["received"]["md5"] == out["sent"]["MD5OfMessageBody"] == "59919580f0435e272d552af879c5b7cc"
    assert out["received"]["attrs"] == {"s": "v", "b": [0, 1]} and out["received"]["count"] == "1"
    assert out["attributes"]["VisibilityTimeout"] == "7"
    assert out["attributes"]["ApproximateNumberOfMessages"] == "0"
    assert out["batch"]["ok"] == ["a"] and out["batch"]["failed"][0][0] == "b" and out["batch"]["failed"][0][2]
    assert out["errors"]["missing_queue"][:3] == ["AWS.SimpleQueueService.NonExistentQueue", "Sender", 400]
    assert out["errors"]["bad_value"][:3] == ["InvalidParameterValue", "Sender", 400]
    assert out["errors"]["too_big"][0] == "InvalidParameterValue"
    assert "Message must be shorter than 2048 bytes" in out["errors"]["too_big"][3]  # the queue's own size
    assert out["tags"] == {"team": "a", "env": "dev"} and out["tags_after"] == {"env": "dev"}
    assert out["changed"] == {"ok": ["c"], "failed": ["d"]} and out["deleted"] == ["e"]
    assert out["max_size"] == {"MaximumMessageSize": "2048"}
    assert out["after_delete"] == []


def test_the_aws_cli_v1_round_trip(tmp_path: Path) -> None:
    need_venv()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    aws = str(VENV / "bin" / "aws")
    with run_server(["--data-dir", str(tmp_path / "data")]) as d:
        def cli(*args: str) -> dict:  # type: ignore[type-arg]
            r = subprocess.run([aws, "--endpoint-url", d.url, "sqs", *args], capture_output=True, text=True,
                               timeout=60, env=env)
            assert r.returncode == 0, r.stderr
            return json.loads(r.stdout) if r.stdout.strip() else {}

        url = cli("create-queue", "--queue-name", "cli-q")["QueueUrl"]
        sent = cli("send-message", "--queue-url", url, "--message-body", "from the cli")
        got = cli("receive-message", "--queue-url", url, "--wait-time-seconds", "1")["Messages"][0]
        assert (got["MessageId"], got["Body"]) == (sent["MessageId"], "from the cli")
        cli("delete-message", "--queue-url", url, "--receipt-handle", got["ReceiptHandle"])
        assert cli("receive-message", "--queue-url", url) == {}
        r = subprocess.run([aws, "--endpoint-url", d.url, "sqs", "get-queue-url", "--queue-name", "none"],
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 255 and "AWS.SimpleQueueService.NonExistentQueue" in r.stderr  # v1's code


def test_raw_query_requests(tmp_path: Path) -> None:
    """What older SDKs send: the form POSTed to the queue's own URL (no QueueUrl parameter),
    a GET with the parameters in the query; errors in SQS's XML."""
    with run_server(["--data-dir", str(tmp_path / "data")]) as d:
        form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        r = d.request("POST", "/", b"Action=CreateQueue&QueueName=raw&Version=2012-11-05", form)
        assert r.status == 200 and r.headers["content-type"] == "text/xml"
        root = ElementTree.fromstring(r.body)
        assert root.tag == f"{NS}CreateQueueResponse"
        assert root.find(f"{NS}CreateQueueResult/{NS}QueueUrl").text.endswith("/000000000000/raw")  # type: ignore[union-attr]
        assert root.find(f"{NS}ResponseMetadata/{NS}RequestId").text == r.headers["x-amzn-requestid"]  # type: ignore[union-attr]
        r = d.request("POST", "/000000000000/raw",
                      b"Action=SendMessage&MessageBody=hello%20world&MessageAttribute.1.Name=k"
                      b"&MessageAttribute.1.Value.DataType=String&MessageAttribute.1.Value.StringValue=v"
                      b"&Version=2012-11-05", form)
        assert r.status == 200, r.body
        sent = ElementTree.fromstring(r.body).find(f"{NS}SendMessageResult")
        assert sent.find(f"{NS}MD5OfMessageBody").text == "5eb63bbbe01eeed093cb22bb8f5acdc3"  # type: ignore[union-attr]
        r = d.request("GET", "/000000000000/raw?Action=ReceiveMessage&MessageAttributeName.1=All&AttributeName.1=All"
                             "&Version=2012-11-05")
        msg = ElementTree.fromstring(r.body).find(f"{NS}ReceiveMessageResult/{NS}Message")
        assert msg is not None and msg.find(f"{NS}Body").text == "hello world"  # type: ignore[union-attr]
        attr = msg.find(f"{NS}MessageAttribute")
        assert attr.find(f"{NS}Name").text == "k" and attr.find(f"{NS}Value/{NS}StringValue").text == "v"  # type: ignore[union-attr]
        names = [a.find(f"{NS}Name").text for a in msg.findall(f"{NS}Attribute")]  # type: ignore[union-attr]
        assert "ApproximateReceiveCount" in names
        # errors: the XML shape, the query code, the status
        r = d.request("POST", "/", b"Action=GetQueueUrl&QueueName=nothing&Version=2012-11-05", form)
        assert r.status == 400
        error = ElementTree.fromstring(r.body)
        assert error.tag == f"{NS}ErrorResponse"
        assert [error.find(f"{NS}Error/{NS}{k}").text for k in ("Type", "Code")] == [  # type: ignore[union-attr]
            "Sender", "AWS.SimpleQueueService.NonExistentQueue"]
        assert error.find(f"{NS}RequestId").text == r.headers["x-amzn-requestid"]  # type: ignore[union-attr]
        r = d.request("POST", "/", b"Action=NoSuchThing&Version=2012-11-05", form)
        assert r.status == 400 and b"<Code>" in r.body
        r = d.request("POST", "/", b"QueueName=x", form)
        assert r.status == 400 and b"<Code>MissingParameter</Code>" in r.body and b"Action" in r.body


def test_a_form_encoded_invoke_is_still_an_invoke(echo_fn) -> None:  # type: ignore[no-untyped-def]
    """urllib sends every POST with data as ``application/x-www-form-urlencoded``: the query
    protocol takes only what no route does, so such an invoke still reaches its function."""
    with run_server(["--function", f"f={echo_fn}"]) as d:
        r = d.request("POST", "/2015-03-31/functions/f/invocations", b'{"hello": "form"}',
                      {"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 200 and json.loads(r.body) == {"hello": "form"}
