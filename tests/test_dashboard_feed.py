"""The dashboard's feed keeps the recent past in bounded memory and batches live events
(rapid.dashboard.feed), and its edge serves loopback clients only."""

from __future__ import annotations

import asyncio

from rapid.api.dashboard import is_loopback
from rapid.dashboard.feed import INVOCATION_FIELDS, Feed, error_type_of


def _invoke(feed: Feed, n: int, status: str = "success", function: str = "fn") -> None:
    feed.invocation(function, "$LATEST", f"r-{n}", 1.5, 2, None, 17, status, None if status == "success" else "E")


def test_rings_are_bounded_and_newest_first():
    feed = Feed(max_invocations=3, max_lines=4)
    for n in range(10):
        _invoke(feed, n)
        feed.line("fn", f"r-{n}", f"line {n}")
    assert [r["requestId"] for r in feed.recent()] == ["r-9", "r-8", "r-7"]
    assert [e["text"] for e in feed.log_lines()] == ["line 6", "line 7", "line 8", "line 9"]
    assert feed.log_lines(request_id="r-8")[0]["text"] == "line 8"
    assert feed.log_lines(request_id="r-1") == []  # fell out of the ring
    assert feed.log_lines(contains="7") == [feed.log_lines()[1]]


def test_recent_filters_by_function_and_limits():
    feed = Feed()
    for n in range(5):
        _invoke(feed, n, function="a" if n % 2 else "b")
    assert [r["requestId"] for r in feed.recent("a")] == ["r-3", "r-1"]
    assert len(feed.recent(limit=2)) == 2


def test_per_minute_counts():
    feed = Feed()
    _invoke(feed, 1)
    _invoke(feed, 2, status="error")
    _invoke(feed, 3, status="timeout")
    feed.throttle("fn", 4)
    minutes = feed.minutes("fn")
    assert len(minutes) == 60 and minutes[-1][1:] == [3, 2, 4]
    assert all(m[1:] == [0, 0, 0] for m in minutes[:-1])
    assert feed.minutes("other")[-1][1:] == [0, 0, 0]


async def test_live_batches_only_while_someone_listens():
    feed = Feed(interval=0.01)
    _invoke(feed, 0)  # nobody listens: nothing is held for later
    batches = []
    stop = feed.subscribe(batches.append)
    _invoke(feed, 1)
    feed.line("fn", "r-1", "hello")
    feed.throttle("fn")
    for _ in range(100):
        if batches:
            break
        await asyncio.sleep(0.01)
    (batch,) = batches
    assert [dict(zip(INVOCATION_FIELDS, r))["requestId"] for r in batch["invocations"]] == ["r-1"]
    assert [r[4] for r in batch["logs"]] == ["hello"] and batch["throttles"][0][:2] == ("fn", 1)
    assert batch["dropped"] == 0
    stop()
    _invoke(feed, 2)
    await asyncio.sleep(0.05)
    assert len(batches) == 1


async def test_a_burst_past_the_batch_cap_is_counted_not_held(monkeypatch):
    import rapid.dashboard.feed as module

    monkeypatch.setattr(module, "_MAX_BATCH", 5)
    feed = Feed(interval=0.01)
    batches = []
    feed.subscribe(batches.append)
    for n in range(8):
        feed.line("fn", None, str(n))
    for _ in range(100):
        if batches:
            break
        await asyncio.sleep(0.01)
    assert len(batches[0]["logs"]) == 5 and batches[0]["dropped"] == 3
    assert len(feed.lines) == 8  # the ring still has every line


def test_error_type_of_prefers_the_functions_own_words():
    assert error_type_of(b'{"errorType": "ValueError", "errorMessage": "x"}', "Runtime.Unknown") == "ValueError"
    assert error_type_of(b"not json", "Runtime.Unknown") == "Runtime.Unknown"
    assert error_type_of(b'{"errorMessage": "x"}', "Sandbox.Timedout") == "Sandbox.Timedout"


def test_only_loopback_peers_are_served():
    for peer in (("127.0.0.1", 1), ("127.8.9.1", 1), ("::1", 1, 0, 0), ("::ffff:127.0.0.1", 1, 0, 0)):
        assert is_loopback(peer), peer
    for peer in (("10.0.0.1", 1), ("192.168.1.2", 1), ("::ffff:10.0.0.1", 1, 0, 0), ("2001:db8::1", 1, 0, 0), None):
        assert not is_loopback(peer), peer
