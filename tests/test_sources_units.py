"""The pure parts the pollers lean on: a tumbling window's bounds and state, the FIFO rule
after a partial failure, and the mappings' metrics page."""

from __future__ import annotations

from rapid.events import metrics as events_metrics
from rapid.queues.sqs_model import Message
from rapid.registry.mappings import Mapping
from rapid.sources import metrics
from rapid.sources.sqs_poller import _fifo_order
from rapid.sources.stats import Stats
from rapid.sources.tumbling import Window
from rapid.streams.kinesis import Record


def rec(seq: int, arrival: float) -> Record:
    return Record(seq, "k", b"x", arrival)


def test_a_window_takes_the_records_of_its_bucket_only() -> None:
    w = Window(60)
    records = [rec(1, 125.0), rec(2, 179.9), rec(3, 180.0), rec(4, 200.0)]
    assert w.take(records) == records[:2] and w.start == 120.0
    assert not w.ended_by(records[:2]) and w.ended_by(records[2:])
    assert not w.due(179.0) and w.due(180.0)
    fields = w.fields("shardId-000000000000", "arn:s", final=False)
    assert fields["window"] == {"start": "1970-01-01T00:02:00.000Z", "end": "1970-01-01T00:03:00.000Z"}
    assert fields["state"] == {} and fields["isFinalInvokeForWindow"] is False
    w.absorb(b'{"state": {"n": 2}, "batchItemFailures": []}')
    assert w.state == {"n": 2}
    w.absorb(b"not json")
    w.absorb(b'{"state": "no"}')
    assert w.state == {"n": 2}  # only an object replaces it
    w.close()
    assert w.start is None and w.state == {} and w.take(records[2:]) == records[2:] and w.start == 180.0


def msg(mid: str, group: str) -> Message:
    m = Message.__new__(Message)
    m.id, m.group = mid, group
    return m


def test_after_a_fifo_failure_the_rest_of_its_group_stays() -> None:
    batch = [(msg("a1", "a"), {}), (msg("b1", "b"), {}), (msg("a2", "a"), {}), (msg("b2", "b"), {}),
             (msg("a3", "a"), {})]
    delete = ["a1", "b1", "b2", "a3"]  # a2 failed
    assert _fifo_order(batch, {"a2"}, delete) == ["a1", "b1", "b2"]


def test_the_metrics_page_and_the_table() -> None:
    m = Mapping(uuid="u-1", function="f", qualifier=None, source_arn="arn:aws:sqs:r:a:q", kind="sqs", batch_size=10)
    k = Mapping(uuid="u-2", function="g", qualifier="live", source_arn="arn:aws:kinesis:r:a:stream/s",
                kind="kinesis", batch_size=100)
    text = metrics.render({"u-1": m, "u-2": k}, {"u-1": Stats(batches=3, records=25, oldest_age_ms=1500),
                                                 "u-2": Stats(iterator_age_ms=400, given_up=2)})
    assert 'rapid_esm_records_total{uuid="u-1",function="f"} 25' in text
    assert 'rapid_esm_oldest_message_age_seconds{uuid="u-1",function="f"} 1.500' in text
    assert 'rapid_esm_iterator_age_seconds{uuid="u-2",function="g"} 0.400' in text
    assert "rapid_esm_iterator_age_seconds{uuid=\"u-1\"" not in text  # SQS has no iterator
    table = events_metrics.table(events_metrics.parse(text))
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.startswith("u-")}
    assert rows["u-1"][1:5] == ["f", "3", "25", "0"] and rows["u-1"][-1] == "1.5"
    assert rows["u-2"][-2:] == ["2", "0.4"]


def test_a_window_reads_answers_as_lambda_does() -> None:
    from rapid.sources.tumbling import MAX_STATE

    w = Window(60)
    w.take([rec(1, 125.0)])
    assert w.read(b'{"state": {"n": 1}}') == "ok" and w.state == {"n": 1}
    assert w.read(b'{"batchItemFailures": []}') == "missing" and w.state == {"n": 1}
    assert w.read(b"not json") == "missing" and w.read(None) == "missing" and w.read(b'{"state": 3}') == "missing"
    big = '{"state": {"k": "' + "x" * MAX_STATE + '"}}'
    assert w.read(big.encode()) == "early" and len(w.state["k"]) == MAX_STATE
    assert w.fields("s", "arn", final=True, early=True)["isWindowTerminatedEarly"] is True
    w.terminate_early()
    assert w.start == 120.0 and w.state == {}  # the same window goes on, fresh
    assert w.fields("s", "arn", final=False)["isWindowTerminatedEarly"] is False


def test_a_window_is_saved_and_restored_with_its_checkpoint(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rapid.registry.mappings import MappingStore
    from rapid.registry.sqlite_store import SQLiteRegistryStore, read_records
    from rapid.sources.stats import decode, encode

    w = Window(60)
    assert w.saved() is None
    w.take([rec(1, 125.0)])
    w.read(b'{"state": {"n": 7}}')
    store = SQLiteRegistryStore(str(tmp_path))
    ms = MappingStore(store)
    ms.put(Mapping(uuid="u1", function="f", qualifier=None, source_arn="arn:s", kind="kinesis", batch_size=1))
    ms.checkpoint("u1", "shardId-000000000000", 10 ** 55, w.saved())
    ms.checkpoint("u1", "shardId-000000000001", 5)
    assert ms.checkpoints("u1") == {"shardId-000000000000": 10 ** 55, "shardId-000000000001": 5}
    seq, saved, inflight = ms.positions("u1")["shardId-000000000000"]
    assert inflight is None
    ms.checkpoint("u1", "shardId-000000000001", 5, None, inflight=9)
    assert ms.positions("u1")["shardId-000000000001"] == (5, None, 9)
    again = Window(60)
    again.restore(saved)
    assert (seq, again.start, again.state) == (10 ** 55, 120.0, {"n": 7})
    ms.put_stats("u1", encode(Stats(batches=3, records=9, last_result="OK")))
    ms.put_stats("gone", b"{}")  # no such mapping: not written
    assert decode(ms.stats()["u1"]) == Stats(batches=3, records=9, last_result="OK") and "gone" not in ms.stats()
    assert [k for k, _ in read_records(str(tmp_path), "mapping-stats")] == ["u1"]  # what rapid queue reads
    ms.delete("u1")
    assert ms.positions("u1") == {} and ms.stats() == {}
    store.close()
    assert decode(b"garbage") == Stats()
