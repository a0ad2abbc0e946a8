"""The one admission rule (rapid.core.admission): what sync invokes, async events and
event-source batches may start, from a ledger of what is in flight. Pure: no host."""

from __future__ import annotations

import itertools

import pytest

from rapid.core.admission import Decision, Ledger, Limits, Usage, Work, admits_sync, decide, room

SYNC, ASYNC, POLL = Work.SYNC, Work.ASYNC, Work.POLL


def reserved(n: int, **kw: object) -> Limits:
    return Limits(reserved=n, unreserved=900, **kw)  # type: ignore[arg-type]


def test_the_table_with_room_left() -> None:
    usage = Usage(function=1, async_=0, unreserved=0)
    for work in Work:
        assert decide(work, usage, reserved(3)) is Decision.ADMIT


def test_the_table_with_no_room_left() -> None:
    full = Usage(function=3, async_=0, unreserved=0)
    assert decide(SYNC, full, reserved(3)) is Decision.THROTTLE
    assert decide(ASYNC, full, reserved(3)) is Decision.WAIT
    assert decide(POLL, full, reserved(3)) is Decision.WAIT
    # overflow = "queue": the synchronous invoke waits in the pool instead of a 429
    assert decide(SYNC, full, reserved(3, queue_sync=True)) is Decision.ADMIT


def test_reserved_concurrency_zero() -> None:
    idle = Usage(0, 0, 0)
    assert decide(SYNC, idle, reserved(0)) is Decision.THROTTLE
    assert decide(ASYNC, idle, reserved(0)) is Decision.THROTTLE  # to its failure target, as AWS does
    assert decide(POLL, idle, reserved(0)) is Decision.WAIT  # the mapping does not poll
    assert decide(SYNC, idle, reserved(0, queue_sync=True)) is Decision.THROTTLE


def test_async_never_takes_the_last_unit_of_a_limit_above_one() -> None:
    assert room(ASYNC, Usage(0, 0, 0), reserved(2)) == 1
    assert room(ASYNC, Usage(1, 1, 0), reserved(2)) == 0
    assert room(SYNC, Usage(1, 1, 0), reserved(2)) == 1  # kept for a synchronous caller
    assert room(POLL, Usage(1, 1, 0), reserved(2)) == 1  # pollers may use the whole limit
    assert room(ASYNC, Usage(0, 0, 0), reserved(1)) == 1  # a limit of 1 is all async's when free


def test_async_share_is_capped_by_async_concurrency() -> None:
    assert room(ASYNC, Usage(0, 0, 0), reserved(100, async_cap=16)) == 16
    assert room(ASYNC, Usage(10, 10, 0), reserved(100, async_cap=16)) == 6
    # other work leaves less than the share
    assert room(ASYNC, Usage(97, 0, 0), reserved(100, async_cap=16)) == 3


def test_unreserved_functions_share_the_account_pool() -> None:
    pool = Limits(reserved=None, unreserved=100)
    # this function has 2 in flight, others hold the rest of the pool
    assert room(SYNC, Usage(2, 0, 100), pool) == 0
    assert decide(SYNC, Usage(2, 0, 100), pool) is Decision.THROTTLE
    assert decide(POLL, Usage(2, 0, 100), pool) is Decision.WAIT
    assert room(POLL, Usage(2, 0, 40), pool) == 60
    assert room(ASYNC, Usage(0, 0, 40), pool) == 16


def test_no_interleaving_of_takers_goes_past_the_limit() -> None:
    # Whatever order sync, async and poll work arrive and finish in, a taker that asks
    # first never pushes the function past its reservation.
    limits = reserved(3, async_cap=16)
    for order in itertools.product(Work, repeat=7):
        ledger = Ledger()
        held = []
        for i, work in enumerate(order):
            if decide(work, ledger.usage("f"), limits) is Decision.ADMIT:
                held.append(ledger.take("f", work, reserved=True))
            assert ledger.usage("f").function <= 3
            assert ledger.usage("f").async_ <= 2
            if i % 3 == 2 and held:
                ledger.give_back(held.pop(0))
        for t in held:
            ledger.give_back(t)
        assert ledger.usage("f") == Usage(0, 0, 0)


def test_the_ledger_counts_by_function_kind_and_pool() -> None:
    ledger = Ledger()
    a = ledger.take("a", ASYNC, reserved=False)
    b = ledger.take("b", SYNC, reserved=True)
    c = ledger.take("a", POLL, reserved=False)
    assert ledger.usage("a") == Usage(function=2, async_=1, unreserved=2)
    assert ledger.usage("b") == Usage(function=1, async_=0, unreserved=2)
    assert ledger.give_back(a) is True
    assert ledger.give_back(a) is False  # exactly once
    assert ledger.usage("a") == Usage(1, 0, 1)
    ledger.give_back(b)
    ledger.give_back(c)
    assert (ledger.by_function, ledger.async_by_function, ledger.unreserved) == ({}, {}, 0)
    assert "0 in flight" in repr(ledger) and "returned" in repr(a)


@pytest.mark.parametrize("work", list(Work))
def test_room_is_never_negative(work: Work) -> None:
    assert room(work, Usage(50, 50, 5000), reserved(3)) == 0
    assert room(work, Usage(50, 50, 5000), Limits(None, 100)) == 0


def test_admits_sync_is_decide_for_a_synchronous_invoke() -> None:
    """The gate's shortcut gives the table's answer for every mix of limits and counts."""
    for reserved, unreserved, in_flight, pool_used, queue_sync in itertools.product(
            (None, 0, 1, 3), (0, 1, 4), (0, 1, 3, 4), (0, 1, 4, 5), (False, True)):
        usage, limits = Usage(in_flight, 0, pool_used), Limits(reserved, unreserved, 16, queue_sync)
        expected = decide(Work.SYNC, usage, limits) is Decision.ADMIT
        assert admits_sync(reserved, unreserved, in_flight, pool_used, queue_sync) is expected, (usage, limits)
