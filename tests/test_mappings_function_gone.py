"""A mapping whose function is deleted, as AWS has it: DeleteFunction leaves the mapping (it
stays Enabled, StateTransitionReason as it was; a stream mapping's LastProcessingResult
says ``PROBLEM: Function not found.``), nothing is taken from the source meanwhile (no SQS
message nears its dead-letter queue, no stream record is skipped), and a function created
again under the name gets everything that waited. DeleteEventSourceMapping still works."""

from __future__ import annotations

import json
import time

import pytest

from tests.control import ROLE, python_zip, wait_active
from tests.daemon import run_server
from tests.test_mappings_kinesis import HANDLER as KHANDLER
from tests.test_mappings_kinesis import put, seen, stream_arn
from tests.test_mappings_sqs import HANDLER, clients, wait_for

ACCOUNT = "000000000000"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):  # type: ignore[no-untyped-def]
    with run_server(["--data-dir", str(tmp_path_factory.mktemp("gone"))]) as d:
        yield d


def sqs_seen(d) -> list[str]:  # type: ignore[no-untyped-def]
    """The bodies the SQS test function logged (``BATCH {...}``; not the stream one's ``KBATCH``)."""
    return [b for line in list(d.lines) if line.startswith("BATCH ") or " BATCH " in line
            for b in json.loads(line.split("BATCH ", 1)[1])["bodies"]]


def delete_and_wait(lam, name: str) -> None:  # type: ignore[no-untyped-def]
    lam.delete_function(FunctionName=name)

    def gone() -> bool:
        try:
            lam.get_function(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            return True
        return False

    wait_for(gone, 20, f"{name} deleted")


def test_sqs_messages_wait_for_a_deleted_function_untouched(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, sqs = clients(daemon)
    code = {"ZipFile": python_zip(HANDLER)}
    lam.create_function(FunctionName="gone-sqs", Runtime="python3.12", Handler="app.handler", Role=ROLE, Code=code)
    wait_active(lam, "gone-sqs")
    dlq = sqs.create_queue(QueueName="gone-sqs-dlq")["QueueUrl"]
    url = sqs.create_queue(QueueName="gone-sqs-q", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:gone-sqs-dlq", "maxReceiveCount": "1"})})["QueueUrl"]
    m = lam.create_event_source_mapping(EventSourceArn=f"arn:aws:sqs:us-east-1:{ACCOUNT}:gone-sqs-q",
                                        FunctionName="gone-sqs", BatchSize=5)
    wait_for(lambda: lam.get_event_source_mapping(UUID=m["UUID"])["State"] == "Enabled", 20, "Enabled")
    sqs.send_message(QueueUrl=url, MessageBody="before")
    wait_for(lambda: "before" in sqs_seen(daemon), 30, "the first message")
    delete_and_wait(lam, "gone-sqs")
    for i in range(6):
        sqs.send_message(QueueUrl=url, MessageBody=f"while-gone-{i}")
    time.sleep(3)  # the workers look for the function once a second; none takes a message
    got = lam.get_event_source_mapping(UUID=m["UUID"])
    assert got["State"] == "Enabled" and got["StateTransitionReason"] == "USER_INITIATED"
    assert "LastProcessingResult" not in got  # SQS mappings do not show one on AWS
    assert [x["UUID"] for x in lam.list_event_source_mappings(FunctionName="gone-sqs")["EventSourceMappings"]] \
        == [m["UUID"]]
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"]) == ("6", "0")
    assert sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessages"] == "0"
    assert not [b for b in sqs_seen(daemon) if b.startswith("while-gone")]
    # The function comes back under its name: the mapping delivers what waited, first receive.
    lam.create_function(FunctionName="gone-sqs", Runtime="python3.12", Handler="app.handler", Role=ROLE, Code=code)
    wait_active(lam, "gone-sqs")
    wait_for(lambda: {f"while-gone-{i}" for i in range(6)} <= set(sqs_seen(daemon)), 30, "the waiting messages")
    wait_for(lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessagesNotVisible"] == "0", 10, "the batch deleted")
    assert sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessages"] == "0"
    gone = lam.delete_event_source_mapping(UUID=m["UUID"])
    assert gone["State"] == "Deleting"


def test_stream_records_wait_for_a_deleted_function(daemon) -> None:  # type: ignore[no-untyped-def]
    lam, sqs = clients(daemon)
    import boto3

    kin = boto3.client("kinesis", endpoint_url=daemon.url, region_name="us-east-1", aws_access_key_id="k",
                       aws_secret_access_key="s")
    code = {"ZipFile": python_zip(KHANDLER)}
    lam.create_function(FunctionName="gone-k", Runtime="python3.12", Handler="app.handler", Role=ROLE, Code=code)
    wait_active(lam, "gone-k")
    kin.create_stream(StreamName="gone-k-s", ShardCount=1)
    m = lam.create_event_source_mapping(EventSourceArn=stream_arn("gone-k-s"), FunctionName="gone-k",
                                        StartingPosition="TRIM_HORIZON", BatchSize=10, MaximumRetryAttempts=1)
    assert m["StateTransitionReason"] == "User action"
    put(kin, "gone-k-s", [("k", "g-0")])
    wait_for(lambda: "g-0" in seen(daemon, "g-"), 30, "the first record")
    delete_and_wait(lam, "gone-k")
    put(kin, "gone-k-s", [("k", f"g-{i}") for i in range(1, 6)])
    got = wait_for(lambda: (x := lam.get_event_source_mapping(UUID=m["UUID"]))["LastProcessingResult"]
                   == "PROBLEM: Function not found." and x, 20, "the mapping to say the function is gone")
    assert got["State"] == "Enabled" and got["StateTransitionReason"] == "User action"
    time.sleep(2)  # retried once a second, never counted as an attempt (MaximumRetryAttempts is 1)
    lam.create_function(FunctionName="gone-k", Runtime="python3.12", Handler="app.handler", Role=ROLE, Code=code)
    wait_active(lam, "gone-k")
    wait_for(lambda: [f"g-{i}" for i in range(6)] == sorted(set(seen(daemon, "g-"))), 30, "every record, in order")
    assert seen(daemon, "g-")[:6] == [f"g-{i}" for i in range(6)]
    wait_for(lambda: lam.get_event_source_mapping(UUID=m["UUID"])["LastProcessingResult"] == "OK", 10, "OK")
    lam.delete_event_source_mapping(UUID=m["UUID"])
