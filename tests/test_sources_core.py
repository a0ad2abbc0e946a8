"""The event source mapping core, synchronously: filter patterns, batching, the event
records, ReportBatchItemFailures as AWS reads it, and a Kinesis shard's retries."""

from __future__ import annotations

import base64
import json

import pytest

from rapid.queues.sqs_model import Message
from rapid.sources import batching, filters, records, responses, stream_retry
from rapid.sources.filters import FilterError
from rapid.sources.responses import Outcome
from rapid.streams.kinesis import Record

T0 = 1_700_000_000.0


# -- filters -----------------------------------------------------------------------------------

def sqs_passes(pattern: dict, body: str) -> bool:
    patterns = filters.parse_criteria({"Filters": [{"Pattern": json.dumps(pattern)}]})
    record = {"messageId": "m", "body": body, "attributes": {"ApproximateReceiveCount": "1"}}
    return filters.matches_any(patterns, filters.sqs_view(record, patterns))


@pytest.mark.parametrize("pattern,body,expected", [
    ({"body": {"code": ["BBBB"]}}, '{"code": "BBBB"}', True),
    ({"body": {"code": ["BBBB"]}}, '{"code": "AAAA"}', False),
    ({"body": {"n": [{"numeric": [">", 9999]}]}}, '{"n": 10000}', True),
    ({"body": {"n": [{"numeric": [">", 0, "<=", 5]}]}}, '{"n": 5}', True),
    ({"body": {"n": [{"numeric": [">", 0, "<=", 5]}]}}, '{"n": 6}', False),
    ({"body": {"n": [{"numeric": ["=", 3]}]}}, '{"n": 3.0}', True),
    ({"body": {"n": [{"numeric": [">", 0]}]}}, '{"n": "7"}', False),  # a string is not a number
    ({"body": {"city": [{"prefix": "Sea"}]}}, '{"city": "Seattle"}', True),
    ({"body": {"file": [{"suffix": ".png"}]}}, '{"file": "a.PNG"}', False),
    ({"body": {"file": [{"suffix": {"equals-ignore-case": ".png"}}]}}, '{"file": "a.PNG"}', True),
    ({"body": {"s": [{"equals-ignore-case": "ok"}]}}, '{"s": "OK"}', True),
    ({"body": {"s": [{"anything-but": ["a", "b"]}]}}, '{"s": "c"}', True),
    ({"body": {"s": [{"anything-but": ["a", "b"]}]}}, '{"s": "a"}', False),
    ({"body": {"s": [{"anything-but": ["a"]}]}}, '{"t": 1}', False),  # absent: anything-but does not match
    ({"body": {"s": [{"anything-but": {"prefix": "tmp"}}]}}, '{"s": "tmpx"}', False),
    ({"body": {"s": [{"exists": True}]}}, '{"s": null}', True),
    ({"body": {"s": [{"exists": False}]}}, '{"t": 1}', True),
    ({"body": {"s": [{"exists": False}]}}, '{"s": 1}', False),
    ({"body": {"s": [None]}}, '{"s": null}', True),
    ({"body": {"s": [""]}}, '{"s": ""}', True),
    ({"body": {"tags": ["red"]}}, '{"tags": ["blue", "red"]}', True),  # any element of an array
    ({"body": {"a": {"b": [1]}}}, '{"a": {"b": 1}}', True),
    ({"body": {"a": ["x"], "b": ["y"]}}, '{"a": "x", "b": "z"}', False),  # keys are ANDed
    ({"body": {"$or": [{"a": ["x"]}, {"b": ["y"]}]}}, '{"a": "no", "b": "y"}', True),
    ({"body": {"$or": [{"a": ["x"]}, {"b": ["y"]}]}}, '{"a": "no", "b": "no"}', False),
    ({"body": {"code": ["BBBB"]}}, "plain text", False),  # a JSON pattern drops a plain-string body
    ({"body": [{"prefix": "Result: "}]}, "Result: ok", True),  # a plain-string pattern
    ({"body": [{"prefix": "{"}]}, '{"a": 1}', False),  # ...never matches a JSON body
])
def test_sqs_patterns(pattern, body, expected):
    assert sqs_passes(pattern, body) is expected


def test_filters_are_ored_and_none_means_everything():
    patterns = filters.parse_criteria({"Filters": [{"Pattern": '{"body": {"a": [1]}}'},
                                                   {"Pattern": '{"body": {"a": [2]}}'}]})
    view = lambda b: filters.sqs_view({"body": b}, patterns)
    assert filters.matches_any(patterns, view('{"a": 2}')) and not filters.matches_any(patterns, view('{"a": 3}'))
    assert filters.matches_any(filters.parse_criteria(None), {"body": "x"})


@pytest.mark.parametrize("text", [
    "not json", "[]", "{}", '{"a": "x"}', '{"a": []}', '{"a": [{"prefix": 1}]}', '{"a": [{"bogus": 1}]}',
    '{"a": [{"numeric": [">", "x"]}]}', '{"a": [{"numeric": ["<", 5, ">", 1]}]}', '{"a": [{"numeric": [">", 5, "<", 1]}]}',
    '{"a": [{"exists": "yes"}]}', '{"$or": [{"a": [1]}]}', '{"a": [{"prefix": "x", "suffix": "y"}]}',
    '{"a": [{"anything-but": []}]}',
])
def test_malformed_patterns_are_refused_in_aws_words(text):
    with pytest.raises(FilterError) as e:
        filters.parse_criteria({"Filters": [{"Pattern": text}]})
    assert e.value.message == "Invalid filter pattern definition."


def test_at_most_five_filters():
    with pytest.raises(FilterError):
        filters.parse_criteria({"Filters": [{"Pattern": '{"a": [1]}'}] * 6})


def test_kinesis_pattern_on_decoded_data_and_metadata():
    def rec(data: bytes, key="pk-1"):
        return {"kinesis": {"partitionKey": key, "data": base64.b64encode(data).decode()}}

    p = filters.parse_criteria({"Filters": [{"Pattern": '{"data": {"temp": [{"numeric": [">=", 40]}]}}'}]})
    assert filters.matches_any(p, filters.kinesis_view(rec(b'{"temp": 46}')))
    assert not filters.matches_any(p, filters.kinesis_view(rec(b'{"temp": 12}')))
    assert not filters.matches_any(p, filters.kinesis_view(rec(b"not json")))
    meta = filters.parse_criteria({"Filters": [{"Pattern": '{"partitionKey": [{"prefix": "pk-"}]}'}]})
    assert filters.matches_any(meta, filters.kinesis_view(rec(b"not json")))


# -- batching ----------------------------------------------------------------------------------

def test_batch_size_window_and_payload_cap():
    b = batching.Batcher(batching.Policy(batch_size=3, window=5.0))
    assert b.add("a", 10, T0) == [] and b.add("b", 10, T0 + 1) == []
    assert b.due(T0 + 4.9) is None and b.deadline() == T0 + 5
    [full] = b.add("c", 10, T0 + 2)
    assert full.items == ["a", "b", "c"] and full.payload == batching.ENVELOPE + 30 + 2
    b.add("d", 10, T0 + 10)
    assert b.due(T0 + 14) is None and b.due(T0 + 15).items == ["d"]
    cap = batching.Batcher(batching.Policy(batch_size=100, window=0, max_payload=batching.ENVELOPE + 25))
    assert cap.add("x", 12, T0) == []
    [first] = cap.add("y", 13, T0)  # 12 + 1 + 13 would pass 25: x goes alone
    assert first.items == ["x"] and cap.due(T0).items == ["y"]
    [exact] = [*cap.add("p", 12, T0), *cap.add("q", 12, T0)]  # 12 + 1 + 12 is exactly the cap: one batch
    assert exact.items == ["p", "q"] and exact.payload == batching.ENVELOPE + 25


def test_batching_settings_checked():
    assert batching.sqs_policy(None, None, False) == batching.Policy(10, 0.0)
    with pytest.raises(batching.BatchingError) as e:
        batching.sqs_policy(100, 0, False)
    assert "greater than 0 if maximum batch size is greater than 10" in str(e.value)
    assert batching.sqs_policy(10000, 1, False).batch_size == 10000
    with pytest.raises(batching.BatchingError):
        batching.sqs_policy(11, None, True)
    assert batching.kinesis_policy(None, None).batch_size == 100


def test_event_size_counts_the_real_json():
    recs = [{"a": "é"}, {"b": 1}]
    b = batching.Batcher(batching.Policy(10, 0))
    for r in recs:
        b.add(r, len(json.dumps(r, separators=(",", ":")).encode()), T0)
    assert b.due(T0).payload == batching.event_size(recs)


# -- records -----------------------------------------------------------------------------------

def test_sqs_record_shape():
    m = Message("mid", 1, '{"x": 1}', {"a": {"DataType": "String", "StringValue": "v"}}, {}, T0, T0,
                receive_count=1, first_receive=T0 + 1, receipt="rh")
    r = records.sqs_record(m, queue_arn="arn:aws:sqs:us-east-1:000000000000:q", region="us-east-1",
                           sender="000000000000", fifo=False)
    assert list(r) == ["messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
                       "md5OfMessageAttributes", "eventSource", "eventSourceARN", "awsRegion"]
    assert r["attributes"] == {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(T0 * 1000)),
                               "SenderId": "000000000000", "ApproximateFirstReceiveTimestamp": str(int(T0 * 1000) + 1000)}
    assert r["messageAttributes"] == {"a": {"stringValue": "v", "stringListValues": [], "binaryListValues": [],
                                            "dataType": "String"}}
    assert r["eventSource"] == "aws:sqs"


def test_kinesis_record_and_failure_shapes():
    rec = Record(4959, "pk", b"hi", T0)
    r = records.kinesis_record(rec, shard_id="shardId-000000000000", stream_arn="arn:s", region="us-east-1",
                               identity_arn="arn:aws:iam::000000000000:role/rapid")
    assert r["kinesis"] == {"kinesisSchemaVersion": "1.0", "partitionKey": "pk", "sequenceNumber": "4959",
                            "data": "aGk=", "approximateArrivalTimestamp": T0}
    assert r["eventID"] == "shardId-000000000000:4959" and r["eventName"] == "aws:kinesis:record"
    f = records.kinesis_failure(request_id="rid", function_arn="arn:f", condition="RetryAttemptsExhausted",
                                invoke_count=3, status=200, function_error="Unhandled", version="$LATEST",
                                shard_id="shardId-000000000000", stream_arn="arn:s", records=[rec, rec], now=T0)
    assert f["KinesisBatchInfo"]["batchSize"] == 2 and f["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert f["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}


# -- responses ---------------------------------------------------------------------------------

IDS = ["m1", "m2", "m3"]


@pytest.mark.parametrize("body,kind", [
    (None, "success"), (b"", "success"), (b"null", "success"), (b"{}", "success"),
    (b'{"batchItemFailures": null}', "success"), (b'{"batchItemFailures": []}', "success"),
    (b'{"batchItemFailures": [{"itemIdentifier": "m2"}]}', "partial"),
    (b"not json", "failure"), (b'"ok"', "failure"), (b'{"batchItemFailures": "m1"}', "failure"),
    (b'{"batchItemFailures": [{"itemIdentifier": ""}]}', "failure"),
    (b'{"batchItemFailures": [{"itemIdentifier": null}]}', "failure"),
    (b'{"batchItemFailures": [{"itemIdentifer": "m1"}]}', "failure"),  # a bad key name
    (b'{"batchItemFailures": [{"itemIdentifier": "m9"}]}', "failure"),  # not in the batch
    (b'{"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "nope"}]}', "failure"),
])
def test_report_batch_item_failures_as_aws_reads_it(body, kind):
    assert responses.interpret(body, function_error=False, report_failures=True, ids=IDS).kind == kind


def test_without_the_response_type_only_an_error_fails():
    body = b'{"batchItemFailures": [{"itemIdentifier": "m2"}]}'
    assert responses.interpret(body, function_error=False, report_failures=False, ids=IDS).kind == "success"
    assert responses.interpret(body, function_error=True, report_failures=True, ids=IDS).kind == "failure"


def test_sqs_settle():
    partial = responses.interpret(b'{"batchItemFailures": [{"itemIdentifier": "m3"}, {"itemIdentifier": "m1"}]}',
                                  function_error=False, report_failures=True, ids=IDS)
    assert partial.failed == ("m1", "m3")
    assert responses.sqs_settle(partial, IDS) == (["m2"], ["m1", "m3"])
    assert responses.sqs_settle(Outcome("failure"), IDS) == ([], IDS)
    assert responses.sqs_settle(responses.SUCCESS, IDS) == (IDS, [])


# -- a Kinesis shard's retries ------------------------------------------------------------------

RECS = [Record(100 + i, "k", bytes([i]), T0 + i) for i in range(4)]


def test_success_checkpoints_at_the_end():
    plan = stream_retry.settle(stream_retry.Policy(), stream_retry.Attempt(RECS), responses.SUCCESS)
    assert plan.checkpoint == 103 and plan.next == [] and plan.given_up == []


def test_partial_checkpoints_before_the_lowest_failure_and_retries_the_rest():
    outcome = responses.interpret(b'{"batchItemFailures": [{"itemIdentifier": "103"}, {"itemIdentifier": "102"}]}',
                                  function_error=False, report_failures=True, ids=[str(r.seq) for r in RECS])
    plan = stream_retry.settle(stream_retry.Policy(bisect=True), stream_retry.Attempt(RECS), outcome)
    assert plan.checkpoint == 101
    assert [[r.seq for r in a.records] for a in plan.next] == [[102, 103]] and plan.next[0].retries == 1


def test_bisect_isolates_a_bad_record_then_gives_up_on_it():
    policy = stream_retry.Policy(bisect=True, max_retries=2)
    fail = Outcome("failure")
    plan = stream_retry.settle(policy, stream_retry.Attempt(RECS), fail)
    assert [[r.seq for r in a.records] for a in plan.next] == [[100, 101], [102, 103]] and plan.checkpoint is None
    first, second = plan.next
    ok = stream_retry.settle(policy, first, responses.SUCCESS)
    assert ok.checkpoint == 101
    plan = stream_retry.settle(policy, second, fail)
    assert [[r.seq for r in a.records] for a in plan.next] == [[102], [103]]
    assert stream_retry.settle(policy, plan.next[0], responses.SUCCESS).checkpoint == 102
    last = stream_retry.settle(policy, plan.next[1], fail)  # a third failure: 2 retries spent
    assert last.next == [] and last.checkpoint == 103
    assert [([r.seq for r in rs], c) for rs, c in last.given_up] == [([103], "RetryAttemptsExhausted")]


def test_without_bisect_the_same_batch_is_retried_until_the_limit():
    policy = stream_retry.Policy(max_retries=1)
    plan = stream_retry.settle(policy, stream_retry.Attempt(RECS), Outcome("failure"))
    assert plan.next[0].records == RECS and plan.next[0].retries == 1
    plan = stream_retry.settle(policy, plan.next[0], Outcome("failure"))
    assert plan.given_up == [(RECS, "RetryAttemptsExhausted")] and plan.checkpoint == 103
    forever = stream_retry.Policy(max_retries=-1)
    assert stream_retry.settle(forever, stream_retry.Attempt(RECS, 10**6), Outcome("failure")).next


def test_records_past_the_maximum_age_are_given_up():
    policy = stream_retry.check_policy(False, None, 60)
    left, plan = stream_retry.expire(policy, stream_retry.Attempt(RECS), T0 + 62)
    assert [r.seq for r in left.records] == [102, 103]
    assert plan.checkpoint == 101 and plan.given_up[0][1] == "RecordAgeExceeded"
    gone, plan = stream_retry.expire(policy, stream_retry.Attempt(RECS), T0 + 1000)
    assert gone is None and plan.checkpoint == 103
    with pytest.raises(ValueError):
        stream_retry.check_policy(False, None, 59)
