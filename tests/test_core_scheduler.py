"""The pool's placement rule, as a pure function: cases, then invariants over a small grid."""

from __future__ import annotations

import itertools

import pytest

from rapid.core.scheduler import Dispatch, PoolView, Start, plan


def view(idle=(), starting=0, busy=0, queued=0, limit=1, resets=0) -> PoolView:
    return PoolView(idle=list(idle), starting=starting, busy=busy, queued=queued, limit=limit, resets=resets)


# -- cases --------------------------------------------------------------------------------

def test_nothing_queued_does_nothing() -> None:
    assert plan(view()) == []
    assert plan(view(idle=[1, 2], limit=5)) == []
    assert plan(view(busy=1, starting=1, limit=5, resets=2)) == []


def test_first_invoke_starts_one_instance() -> None:
    assert plan(view(queued=1)) == [Start()]


def test_idle_instance_gets_the_work_without_a_start() -> None:
    assert plan(view(idle=[7], queued=1)) == [Dispatch(7)]


def test_most_recently_used_idle_instance_goes_first() -> None:
    # idle is least recently used first; the most recent is at the end.
    assert plan(view(idle=[1, 2, 3], queued=1, limit=3)) == [Dispatch(3)]
    assert plan(view(idle=[1, 2, 3], queued=2, limit=3)) == [Dispatch(3), Dispatch(2)]
    assert plan(view(idle=[5, 9, 4], queued=3, limit=3)) == [Dispatch(4), Dispatch(9), Dispatch(5)]


def test_more_work_than_idle_instances_starts_the_rest_within_limit() -> None:
    assert plan(view(idle=[1], queued=4, limit=3)) == [Dispatch(1), Start(), Start()]
    assert plan(view(idle=[1], queued=4, limit=10)) == [Dispatch(1), Start(), Start(), Start()]


def test_starting_instances_cover_queued_work() -> None:
    assert plan(view(starting=1, queued=1, limit=5)) == []
    assert plan(view(starting=2, queued=3, limit=5)) == [Start()]
    assert plan(view(starting=3, queued=3, limit=5)) == []


def test_limit_counts_idle_starting_and_busy() -> None:
    assert plan(view(busy=1, queued=1, limit=1)) == []
    assert plan(view(busy=2, queued=5, limit=3)) == [Start()]
    assert plan(view(busy=1, starting=1, queued=5, limit=3)) == [Start()]
    assert plan(view(idle=[1], busy=1, queued=5, limit=3)) == [Dispatch(1), Start()]
    assert plan(view(idle=[1, 2], busy=1, starting=1, queued=5, limit=4)) == [Dispatch(2), Dispatch(1)]


def test_many_queued_limit_one_busy_does_nothing() -> None:
    assert plan(view(busy=1, queued=100, limit=1)) == []


def test_limit_zero_starts_nothing() -> None:
    assert plan(view(queued=1, limit=0)) == []
    assert plan(view(queued=5, limit=0, resets=3)) == []


def test_over_limit_pool_still_dispatches_to_idle_but_starts_nothing() -> None:
    # A pool above its limit (e.g. the limit was lowered) still uses what it has.
    assert plan(view(idle=[1], busy=3, queued=4, limit=2)) == [Dispatch(1)]


def test_resets_start_suppressed_first_then_plain() -> None:
    assert plan(view(queued=1, resets=1)) == [Start(suppressed=True)]
    assert plan(view(queued=3, limit=3, resets=1)) == [Start(suppressed=True), Start(), Start()]
    assert plan(view(queued=3, limit=5, resets=2)) == [
        Start(suppressed=True), Start(suppressed=True), Start()]
    # More resets than work: only as many suppressed starts as there is work.
    assert plan(view(queued=1, limit=5, resets=3)) == [Start(suppressed=True)]
    # Resets wait for room like any start.
    assert plan(view(busy=1, queued=2, limit=1, resets=1)) == []


def test_idle_dispatch_comes_before_resets() -> None:
    assert plan(view(idle=[4], queued=2, limit=3, resets=1)) == [Dispatch(4), Start(suppressed=True)]
    assert plan(view(idle=[4], queued=1, limit=3, resets=1)) == [Dispatch(4)]


def test_plan_does_not_mutate_the_view() -> None:
    idle = [1, 2, 3]
    v = PoolView(idle=idle, starting=0, busy=0, queued=2, limit=3)
    plan(v)
    assert idle == [1, 2, 3]
    assert plan(v) == plan(v)


# -- invariants over every small pool -------------------------------------------------------
#
# From the docstring: dispatch the oldest work to idle instances, MRU first; then start as
# many as the queue *still* needs, minus the instances already starting (each of which will
# take the queue head at its first /next), never letting idle+starting+busy exceed the limit;
# the first min(resets, starts) starts are suppressed (each carries an invocation with it).
# So, with D dispatches and S starts:
#   D == min(queued, idle)
#   S == max(0, min(limit - running, queued - D - starting))
#   D + S + starting >= queued or the pool is at its limit    (no work is left stranded)
#   D + S <= queued                                           (never more places than work)

GRID = list(itertools.product(
    range(4),  # idle count
    range(3),  # starting
    range(3),  # busy
    range(6),  # queued
    range(6),  # limit
    range(3),  # resets
))


def _all_views():
    for n_idle, starting, busy, queued, limit, resets in GRID:
        yield view(idle=range(10, 10 + n_idle), starting=starting, busy=busy,
                   queued=queued, limit=limit, resets=resets)


def test_invariants_over_the_grid() -> None:
    count = 0
    for v in _all_views():
        count += 1
        actions = plan(v)
        dispatches = [a for a in actions if isinstance(a, Dispatch)]
        starts = [a for a in actions if isinstance(a, Start)]
        assert len(dispatches) + len(starts) == len(actions)
        running = len(v.idle) + v.starting + v.busy
        D, S = len(dispatches), len(starts)

        # Dispatches: all first, to distinct idle instances, most recently used first.
        assert actions[:D] == dispatches
        assert [d.instance for d in dispatches] == list(reversed(v.idle))[:D]
        assert D <= min(v.queued, len(v.idle))
        assert D == min(v.queued, len(v.idle))

        # Starts: within the limit, only for work nobody is going to take.
        assert S <= max(0, v.limit - running)
        assert S <= max(0, v.queued - D - v.starting)
        assert S == max(0, min(v.limit - running, v.queued - D - v.starting))
        assert D + S <= v.queued
        assert running + S <= max(v.limit, running)

        # Suppressed starts come first and number min(resets, S).
        flags = [s.suppressed for s in starts]
        assert flags == [True] * min(v.resets, S) + [False] * (S - min(v.resets, S))

        # Liveness: if work is left with nobody to take it, the pool is full.
        if D + S + v.starting < v.queued:
            assert running + S >= v.limit

        if v.queued == 0:
            assert actions == []
    assert count == len(GRID) == 4 * 3 * 3 * 6 * 6 * 3


def test_replanning_after_carrying_out_a_plan_adds_nothing() -> None:
    # Carry out the plan (dispatched instances become busy, starts become starting or,
    # for suppressed ones, busy with the work they took) and plan again: nothing more to do.
    for v in _all_views():
        actions = plan(v)
        D = sum(isinstance(a, Dispatch) for a in actions)
        plain = sum(isinstance(a, Start) and not a.suppressed for a in actions)
        suppressed = sum(isinstance(a, Start) and a.suppressed for a in actions)
        dispatched = {a.instance for a in actions if isinstance(a, Dispatch)}
        after = view(
            idle=[i for i in v.idle if i not in dispatched],
            starting=v.starting + plain,
            busy=v.busy + D + suppressed,
            queued=v.queued - D - suppressed,
            limit=v.limit,
            resets=v.resets - suppressed,
        )
        assert plan(after) == [], (v, actions, after)


@pytest.mark.parametrize("limit", range(1, 5))
def test_burst_fills_exactly_to_the_limit(limit: int) -> None:
    assert plan(view(queued=10, limit=limit)) == [Start()] * limit
