"""The durable queue and the records, without processes: targets, AWS's record shape, the
SQLite store's group commit, outcomes in one transaction, recovery after a crash."""

import asyncio
import json
import sqlite3

import pytest

from rapid.events import destinations as dest
from rapid.events import metrics
from rapid.events.destinations import Response, TargetError, parse_target
from rapid.events.sqlite_db import read_messages, read_snapshot
from rapid.events.sqlite_store import SQLiteStore
from rapid.events.store import Entry, Finish, StoreBusy

R, A = "us-east-1", "000000000000"
ARN = f"arn:aws:lambda:{R}:{A}:function:f:$LATEST"


# -- targets ------------------------------------------------------------------------------

def test_targets_of_every_kind():
    t = parse_target(f"arn:aws:lambda:{R}:{A}:function:g", region=R, account=A, functions={"f", "g"}, owner="f")
    assert (t.kind, t.address, t.internal) == ("lambda", "g", True)
    t = parse_target(f"arn:aws:sqs:{R}:{A}:failures", region=R, account=A)
    assert (t.kind, t.address) == ("sqs", "failures")
    t = parse_target("file:///var/log/records.ndjson", region=R, account=A)
    assert (t.kind, t.address, t.internal) == ("file", "/var/log/records.ndjson", False)
    t = parse_target("http://127.0.0.1:9/hook", region=R, account=A)
    assert (t.kind, t.address) == ("http", "http://127.0.0.1:9/hook")


@pytest.mark.parametrize("value, words", [
    (f"arn:aws:lambda:{R}:{A}:function:nope", "The destination ARN arn:aws:lambda:us-east-1:000000000000:function:nope is invalid."),
    (f"arn:aws:lambda:{R}:{A}:function:f", "You can't specify the function as a destination for itself."),
    (f"arn:aws:lambda:eu-west-1:{A}:function:g", "is invalid"),
    (f"arn:aws:sqs:{R}:{A}:q.fifo", "FIFO"),
    (f"arn:aws:sns:{R}:{A}:topic", "not supported by rapid"),
    ("file://relative/path", "file:///absolute/path"),
    ("http:///nohost", "no host"),
])
def test_bad_targets_say_why(value, words):
    with pytest.raises(TargetError) as exc:
        parse_target(value, region=R, account=A, functions={"f", "g"}, owner="f")
    assert words in str(exc.value)


def test_aws_destination_pattern():
    assert dest.matches_aws_pattern(f"arn:aws:sqs:{R}:{A}:q")
    assert dest.matches_aws_pattern("file:///x") and dest.matches_aws_pattern("https://x")
    assert not dest.matches_aws_pattern("invalid")


# -- records ------------------------------------------------------------------------------

def test_failure_record_is_awss_shape():
    body = dest.record(
        request_id="e4b46cbf", function_arn=ARN, condition="RetriesExhausted", invoke_count=3,
        payload=b'{"ORDER_IDS": ["1"]}',
        response=Response(200, b'{"errorMessage":"boom","errorType":"Boom"}', "Unhandled"),
        version="$LATEST", now=1573755365.568,
    )
    assert json.loads(body) == {
        "version": "1.0",
        "timestamp": "2019-11-14T18:16:05.568Z",
        "requestContext": {"requestId": "e4b46cbf", "functionArn": ARN, "condition": "RetriesExhausted",
                           "approximateInvokeCount": 3},
        "requestPayload": {"ORDER_IDS": ["1"]},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "boom", "errorType": "Boom"},
    }
    assert list(json.loads(body)) == ["version", "timestamp", "requestContext", "requestPayload",
                                      "responseContext", "responsePayload"]


def test_success_record_has_no_function_error_and_keeps_any_payload():
    body = json.loads(dest.record(
        request_id="c2a6f2ae", function_arn=ARN, condition="Success", invoke_count=1, payload=b"{}",
        response=Response(200, b"not json at all"), version="$LATEST", now=0,
    ))
    assert body["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert body["responsePayload"] == "not json at all"
    empty = json.loads(dest.record(request_id="x", function_arn=ARN, condition="Success", invoke_count=1,
                                   payload=b"[1]", response=Response(200, b""), version="$LATEST", now=0))
    assert empty["responsePayload"] is None and empty["requestPayload"] == [1]


def test_dead_letter_attributes_and_wrapping():
    resp = Response(200, json.dumps({"errorMessage": "é" * 1000, "errorType": "X"}).encode(), "Unhandled")
    attrs = dest.dead_letter_attributes("rid-1", resp)
    assert attrs["RequestID"] == "rid-1" and attrs["ErrorCode"] == 200
    assert len(attrs["ErrorMessage"].encode()) <= 1024 and attrs["ErrorMessage"].startswith("éé")
    assert dest.sqs_attributes(attrs)["ErrorCode"] == {"DataType": "Number", "StringValue": "200"}
    assert dest.sqs_attributes(attrs)["RequestID"] == {"DataType": "String", "StringValue": "rid-1"}
    wrapped = json.loads(dest.wrapped_dead_letter(b'{"a": 1}', attrs))
    assert wrapped == {"body": {"a": 1}, "attributes": attrs}
    throttled = dest.dead_letter_attributes("r", Response(429, b'{"Type":"User","message":"Rate Exceeded."}'))
    assert (throttled["ErrorCode"], throttled["ErrorMessage"]) == (429, "Rate Exceeded.")


# -- the store ----------------------------------------------------------------------------

def entry(rid, function="f", now=100.0):
    return Entry(0, rid, function, "", "Root=1-x", now, now)


def call(method, *args):
    fut = asyncio.get_running_loop().create_future()

    def done(result, error):
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)

    method(*args, done)
    return fut


def finish(e, condition="Success", response=None, payload=b"{}", destination=None, dead_letter=None):
    return Finish(entry=e, condition=condition, response=response, payload=payload, function_arn=ARN,
                  version="$LATEST", destination=destination, dead_letter=dead_letter, delivery_window=60.0,
                  now=200.0)


async def test_group_commit_many_events_few_transactions(tmp_path):
    store = SQLiteStore(tmp_path)
    store.open()
    store.start(asyncio.get_running_loop())
    try:
        entries = [entry(f"r{i}") for i in range(500)]
        ids = await asyncio.gather(*(call(store.enqueue, e, b'{"i": 1}', False) for e in entries))
        assert sorted(ids) == list(range(1, 501)) and [e.id for e in entries] == ids
        assert store.operations == 500 and store.batches < 500  # commits were shared
        snap = await call(store.snapshot)
        assert snap.depth == {"f": 500} and snap.counters[("f", "accepted")] == 500
    finally:
        store.close()


async def test_outcome_and_deletion_are_one_transaction(tmp_path):
    store = SQLiteStore(tmp_path / "data")
    store.open()
    store.start(asyncio.get_running_loop())
    records = tmp_path / "out" / "records.ndjson"
    try:
        ok, bad, chained = entry("ok"), entry("bad"), entry("chained")
        for e in (ok, bad, chained):
            await call(store.enqueue, e, b'{"n": 1}', True)
        file_t = parse_target(f"file://{records}", region=R, account=A)
        sqs_t = parse_target(f"arn:aws:sqs:{R}:{A}:dlq", region=R, account=A)
        fn_t = parse_target(f"arn:aws:lambda:{R}:{A}:function:g", region=R, account=A)
        ok.attempts = 1
        done = await call(store.finish, finish(ok, destination=file_t))
        assert done.problems == [] and done.new_entries == []
        error = Response(200, b'{"errorMessage":"boom","errorType":"E"}', "Unhandled")
        bad.attempts = 3
        await call(store.finish, finish(bad, "RetriesExhausted", error, payload=None,  # read from the row
                                        destination=file_t, dead_letter=sqs_t))
        done = await call(store.finish, finish(chained, destination=fn_t))
        assert [e.function for e in done.new_entries] == ["g"]
        snap = await call(store.snapshot)
        assert snap.depth == {"g": 1}  # f's events are gone, g got one
        assert snap.counters[("f", "dead_letters")] == 1 and snap.queues == {"dlq": 1}
        lines = [json.loads(x) for x in records.read_text().splitlines()]
        assert [x["requestContext"]["condition"] for x in lines] == ["Success", "RetriesExhausted"]
        assert lines[1]["requestContext"]["approximateInvokeCount"] == 3
        db = sqlite3.connect(tmp_path / "data" / "events.db")
        (msg,) = read_messages(db, "dlq")
        assert json.loads(msg["Body"]) == {"n": 1}  # the event as-is
        assert msg["MessageAttributes"]["ErrorMessage"] == {"DataType": "String", "StringValue": "boom"}
        (payload,) = db.execute("SELECT payload FROM events WHERE function = 'g'").fetchone()
        assert json.loads(payload)["requestContext"]["requestId"] == "chained"
        db.close()
    finally:
        store.close()


async def test_a_file_that_cannot_be_written_goes_to_the_outbox(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = SQLiteStore(tmp_path / "data")
    store.open()
    store.start(asyncio.get_running_loop())
    try:
        e = entry("r")
        await call(store.enqueue, e, b"{}", True)
        t = parse_target(f"file://{blocker}/records.ndjson", region=R, account=A)
        done = await call(store.finish, finish(e, destination=t))
        assert len(done.deliveries) == 1 and "will retry" in done.problems[0]
        snap = await call(store.snapshot)
        assert snap.depth == {} and snap.deliveries == {"f": 1}
        assert snap.counters[("f", "destination_failures")] == 1
        blocker.unlink()  # the way is clear now
        assert await call(store.deliver_file, done.deliveries[0]) is None
        assert json.loads((blocker / "records.ndjson").read_text())["requestContext"]["requestId"] == "r"
    finally:
        store.close()


async def test_torn_last_line_does_not_swallow_the_next_record(tmp_path):
    records = tmp_path / "r.ndjson"
    records.write_bytes(b'{"half a rec')
    store = SQLiteStore(tmp_path / "data")
    store.open()
    store.start(asyncio.get_running_loop())
    try:
        e = entry("r")
        await call(store.enqueue, e, b"{}", True)
        await call(store.finish, finish(e, destination=parse_target(f"file://{records}", region=R, account=A)))
        lines = records.read_text().splitlines()
        assert lines[0] == '{"half a rec' and json.loads(lines[1])["requestContext"]["requestId"] == "r"
    finally:
        store.close()


CRASHER = """
import asyncio, os, sys
from rapid.events.sqlite_store import SQLiteStore
from rapid.events.store import Entry

async def main():
    store = SQLiteStore(sys.argv[1])
    store.open()
    store.start(asyncio.get_running_loop())
    futs = []
    def call(method, *args):
        fut = asyncio.get_running_loop().create_future()
        method(*args, lambda r, e: fut.set_result(r))
        return fut
    a, b, c = (Entry(0, rid, fn, "", "t", 100.0, 100.0) for rid, fn in (("a", "f"), ("b", "f"), ("c", "h")))
    await call(store.enqueue, a, b"{}", True)   # running: its first attempt counted
    await call(store.enqueue, b, b"{}", False)
    await call(store.enqueue, c, b"{}", False)
    await call(store.mark_started, [c])
    os._exit(0)  # a crash: nothing released, nothing closed

asyncio.run(main())
"""


def test_recovery_requeues_and_counts_running_events(tmp_path):
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", CRASHER, str(tmp_path)], check=True, timeout=30)
    again = SQLiteStore(tmp_path)
    rec = again.open()
    try:
        with pytest.raises(StoreBusy):  # one daemon per data dir
            SQLiteStore(tmp_path).open()
        assert rec.redelivered == {"f": 1, "h": 1}
        by_rid = {e.request_id: e for e in rec.entries}
        assert set(by_rid) == {"a", "b", "c"}
        assert (by_rid["a"].attempts, by_rid["b"].attempts, by_rid["c"].attempts) == (1, 0, 1)
        snap = read_snapshot(again._db)
        assert snap.running == {"f": 0, "h": 0}
        assert snap.counters[("f", "redelivered")] == 1 and snap.counters[("h", "redelivered")] == 1
        text = metrics.render(snap)
        assert 'rapid_async_redelivered_total{function="h"} 1' in text
        assert 'rapid_async_queue_depth{function="f"} 2' in text
    finally:
        again.close()
    # Recovered once: a second start finds nothing running and counts nothing more.
    third = SQLiteStore(tmp_path)
    assert third.open().redelivered == {}
    third.close()


async def test_release_on_shutdown_is_not_a_redelivery(tmp_path):
    store = SQLiteStore(tmp_path)
    store.open()
    store.start(asyncio.get_running_loop())
    e = entry("a")
    await call(store.enqueue, e, b"{}", True)
    assert await call(store.release_running, {}) == 1
    store.close()
    again = SQLiteStore(tmp_path)
    rec = again.open()
    again.close()
    assert rec.redelivered == {} and rec.entries[0].attempts == 0


def test_metrics_page_parses_back_to_the_same_figures(tmp_path):
    from rapid.events.store import Snapshot

    snap = Snapshot(now=110.0, depth={'we"ird': 3}, running={'we"ird': 1}, oldest={'we"ird': 100.0},
                    counters={('we"ird', "retries:throttled"): 4, ('we"ird', "retries:function_error"): 2,
                              ('we"ird', "dead_letters"): 1}, deliveries={}, queues={"q": 7})
    text = metrics.render(snap)
    samples = metrics.parse(text)
    assert ("rapid_async_retries_total", {"function": 'we"ird', "reason": "throttled"}, 4.0) in samples
    assert ("rapid_async_oldest_event_age_seconds", {"function": 'we"ird'}, 10.0) in samples
    table = metrics.table(samples)
    row = next(line for line in table.splitlines() if line.startswith('we"ird'))
    assert row.split()[1:7] == ["3", "1", "10.0", "0", "0", "0"] and row.split()[7] == "6"
    # The queues follow the functions, one row each: name, then its message count.
    queues = table.split("\n\n")[1].splitlines()
    assert queues[0].split() == ["queue", "messages"] and queues[1].split() == ["q", "7"]
