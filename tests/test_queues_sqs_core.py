"""The SQS core with a clock the test controls: visibility, delay, redrive, FIFO groups and
deduplication, retention, receipt handles, and the MD5s AWS computes."""

from __future__ import annotations

import itertools

import pytest

from rapid.queues import md5
from rapid.queues.sqs import Service
from rapid.queues.sqs_errors import SqsError

T0 = 1_700_000_000.0


def service() -> Service:
    counter = itertools.count(1)
    return Service("us-east-1", "000000000000", lambda: f"m{next(counter)}")


def test_visibility_timeout_hides_then_returns_a_message_with_a_new_receipt():
    s = service()
    q = s.create_queue("q", {"VisibilityTimeout": "30"}, T0)
    s.send(q, {"MessageBody": "a"}, T0)
    [m] = s.receive(q, 10, None, T0)
    first = m.receipt
    assert s.receive(q, 10, None, T0 + 29.9) == []
    assert q.counts(T0 + 29.9) == {"visible": 0, "inflight": 1, "delayed": 0}
    [again] = s.receive(q, 10, None, T0 + 30)
    assert again.receive_count == 2 and again.receipt != first
    s.change_visibility(q, again.receipt, 0, T0 + 31)
    assert q.counts(T0 + 31)["visible"] == 1
    s.delete(q, again.receipt)
    assert q.messages == {}


def test_change_visibility_of_a_visible_message_is_not_in_flight():
    s = service()
    q = s.create_queue("q", None, T0)
    s.send(q, {"MessageBody": "a"}, T0)
    [m] = s.receive(q, 1, 5, T0)
    with pytest.raises(SqsError) as e:
        s.change_visibility(q, m.receipt, 10, T0 + 6)
    assert e.value.query_code == "AWS.SimpleQueueService.MessageNotInflight"
    with pytest.raises(SqsError) as e:
        s.delete(q, "not-a-handle")
    assert e.value.query_code == "ReceiptHandleIsInvalid"


def test_delay_counts_as_delayed_until_due():
    s = service()
    q = s.create_queue("q", {"DelaySeconds": "10"}, T0)
    s.send(q, {"MessageBody": "queue delay"}, T0)
    s.send(q, {"MessageBody": "own delay", "DelaySeconds": 0}, T0)
    assert q.counts(T0) == {"visible": 1, "inflight": 0, "delayed": 1}
    assert [m.body for m in s.receive(q, 10, None, T0 + 10)] == ["queue delay", "own delay"]


def test_redrive_moves_a_message_after_max_receive_count():
    s = service()
    dlq = s.create_queue("dlq", None, T0)
    policy = '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq", "maxReceiveCount": 2}'
    q = s.create_queue("q", {"RedrivePolicy": policy, "VisibilityTimeout": "1"}, T0)
    s.send(q, {"MessageBody": "poison"}, T0)
    assert len(s.receive(q, 1, None, T0)) == 1
    assert len(s.receive(q, 1, None, T0 + 1)) == 1
    assert s.receive(q, 1, None, T0 + 2) == []  # the third receive moves it instead
    [m] = s.receive(dlq, 1, None, T0 + 2)
    assert m.body == "poison" and m.source_arn == "arn:aws:sqs:us-east-1:000000000000:q" and m.receive_count == 1


def test_redrive_policy_checked_in_aws_words():
    s = service()
    with pytest.raises(SqsError) as e:
        s.create_queue("q", {"RedrivePolicy": '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:none", '
                                              '"maxReceiveCount": 2}'}, T0)
    assert "Dead letter target does not exist" in e.value.message
    with pytest.raises(SqsError) as e:
        s.create_queue("q", {"RedrivePolicy": '{"maxReceiveCount": 2}'}, T0)
    assert e.value.query_code == "InvalidAttributeValue" and "deadLetterTargetArn" in e.value.message


def test_fifo_group_in_order_one_batch_at_a_time():
    s = service()
    q = s.create_queue("q.fifo", {"FifoQueue": "true", "ContentBasedDeduplication": "true"}, T0)
    for i in range(3):
        s.send(q, {"MessageBody": f"a{i}", "MessageGroupId": "A"}, T0)
        s.send(q, {"MessageBody": f"b{i}", "MessageGroupId": "B"}, T0)
    first = s.receive(q, 2, None, T0)
    assert [m.body for m in first] == ["a0", "b0"]
    assert s.receive(q, 10, None, T0 + 1) == []  # both groups have a message in flight
    s.delete(q, first[0].receipt)
    assert [m.body for m in s.receive(q, 10, None, T0 + 1)] == ["a1", "a2"]  # B still locked
    assert int(first[1].sequence_number) < int(q.messages[[k for k in q.messages][-1]].sequence_number)


def test_fifo_deduplication_within_five_minutes():
    s = service()
    q = s.create_queue("q.fifo", {"FifoQueue": "true"}, T0)
    one = s.send(q, {"MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": "d"}, T0)
    two = s.send(q, {"MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": "d"}, T0 + 299)
    assert one.message_id == two.message_id and len(q.messages) == 1
    three = s.send(q, {"MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": "d"}, T0 + 300)
    assert three.message_id != one.message_id and len(q.messages) == 2
    with pytest.raises(SqsError) as e:
        s.send(q, {"MessageBody": "x", "MessageGroupId": "g"}, T0)
    assert "ContentBasedDeduplication" in e.value.message
    with pytest.raises(SqsError) as e:
        s.send(q, {"MessageBody": "x", "MessageDeduplicationId": "d"}, T0)
    assert e.value.query_code == "MissingParameter"


def test_retention_drops_old_messages():
    s = service()
    q = s.create_queue("q", {"MessageRetentionPeriod": "60"}, T0)
    s.send(q, {"MessageBody": "old"}, T0)
    s.send(q, {"MessageBody": "new"}, T0 + 30)
    assert [m.body for m in s.receive(q, 10, None, T0 + 60)] == ["new"]


def test_limits_and_names():
    s = service()
    q = s.create_queue("q", None, T0)
    with pytest.raises(SqsError) as e:
        s.send(q, {"MessageBody": "x" * 262145}, T0)
    assert e.value.query_code == "InvalidParameterValue" and "262144 bytes" in e.value.message
    s.send(q, {"MessageBody": "x" * 262144}, T0)
    with pytest.raises(SqsError) as e:
        s.send(q, {"MessageBody": "bad \x01"}, T0)
    assert e.value.query_code == "InvalidMessageContents"
    with pytest.raises(SqsError):
        s.create_queue("has.dot", None, T0)
    with pytest.raises(SqsError) as e:
        s.create_queue("q", {"VisibilityTimeout": "5"}, T0)
    assert e.value.query_code == "QueueAlreadyExists"
    assert s.create_queue("q", {"VisibilityTimeout": "30"}, T0) is q
    r = s.create_queue("r", {"VisibilityTimeout": "5"}, T0)
    assert s.create_queue("r", None, T0) is r  # only the attributes given are compared
    with pytest.raises(SqsError):
        s.create_queue("r", {"VisibilityTimeout": "30"}, T0)
    with pytest.raises(SqsError) as e:
        s.create_queue("z", {"VisibilityTimeout": "43201"}, T0)
    assert e.value.query_code == "InvalidAttributeValue"
    with pytest.raises(SqsError) as e:
        s.create_queue("z", {"Nope": "1"}, T0)
    assert e.value.query_code == "InvalidAttributeName"


# Published digests (AWS's samples, used as test vectors by other SQS implementations).
MD5_VECTORS = [
    ({"SellerName": {"DataType": "String", "StringValue": "Example Store"}}, "cd28f3b68aeee4b2eac9c66f2f694b58"),
    ({"timestamp": {"DataType": "Number", "StringValue": "1493147359900"}}, "235c5c510d26fb653d073faed50ae77c"),
    ({"test_attribute_name_2": {"DataType": "String", "StringValue": "test_attribute_value_2"},
      "test_attribute_name_1": {"DataType": "String", "StringValue": "test_attribute_value_1"}},
     "d53f3b558fe951154770f25cb63dbba9"),
    ({"test_attribute_name": {"DataType": "Binary", "BinaryValue": "dGVzdF9hdHRyaWJ1dGVfdmFsdWU="}},
     "23f6bd27ea87aab7dfeadcc9aebee495"),
]


@pytest.mark.parametrize("attrs,digest", MD5_VECTORS)
def test_md5_of_attributes_matches_aws(attrs, digest):
    assert md5.of_attributes(attrs) == digest
    assert md5.of_body("hello") == "5d41402abc4b2a76b9719d911017c592"
