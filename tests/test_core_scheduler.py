"""The pool's pure decision (rapid.core.scheduler.plan): no processes, no sockets."""

from __future__ import annotations

import itertools

import pytest

from rapid.core.scheduler import Dispatch, PoolView, Start, Throttle, plan


def view(idle=(), starting=0, busy=0, queued=0, limit=10, resets=0, per_instance=1) -> PoolView:
    return PoolView(list(idle), starting, busy, queued, limit, resets, per_instance)


def test_nothing_queued_nothing_to_do() -> None:
    assert plan(view(idle=[1, 2], busy=3)) == []


def test_idle_instances_take_work_most_recently_used_first() -> None:
    assert plan(view(idle=[1, 2, 3], queued=2)) == [Dispatch(3), Dispatch(2)]


def test_more_work_than_idle_instances_starts_the_rest() -> None:
    assert plan(view(idle=[7], queued=3, limit=5)) == [Dispatch(7), Start(), Start()]


def test_starting_instances_cover_the_queue_head() -> None:
    assert plan(view(starting=2, queued=3, limit=5)) == [Start()]
    assert plan(view(starting=3, queued=3, limit=5)) == []


def test_beyond_the_limit_the_newest_are_throttled() -> None:
    assert plan(view(busy=1, queued=1, limit=1)) == [Throttle(1)]
    assert plan(view(busy=2, starting=1, queued=4, limit=4)) == [Start(), Throttle(2)]


def test_reserved_concurrency_zero_throttles_everything() -> None:
    assert plan(view(queued=3, limit=0)) == [Throttle(3)]


def test_an_over_full_pool_still_dispatches_to_idle() -> None:
    assert plan(view(idle=[1], busy=5, queued=4, limit=2)) == [Dispatch(1), Throttle(3)]


def test_resets_start_suppressed_first_then_plain() -> None:
    assert plan(view(queued=3, limit=5, resets=2)) == [Start(True), Start(True), Start()]
    assert plan(view(queued=1, limit=5, resets=2)) == [Start(True)]


def test_per_instance_concurrency_counts_slots() -> None:
    # An instance holding two /next counts twice as idle, once against the limit.
    assert plan(view(idle=[4, 4], queued=2, limit=1, per_instance=2)) == [Dispatch(4), Dispatch(4)]
    # Five waiting, 2 per instance: three starts.
    assert plan(view(queued=5, limit=10, per_instance=2)) == [Start(), Start(), Start()]
    # A starting instance takes up to K of the queue head.
    assert plan(view(starting=1, queued=2, limit=1, per_instance=2)) == []
    assert plan(view(starting=1, queued=3, limit=1, per_instance=2)) == [Throttle(1)]


def model(v: PoolView) -> tuple[int, int, int, int]:
    """(dispatches, starts, suppressed starts, throttled), from the module's docstring."""
    k = v.per_instance
    dispatches = min(v.queued, len(v.idle))
    instances = len(set(v.idle)) + v.starting + v.busy
    room = max(0, v.limit - instances)
    waiting = max(0, v.queued - dispatches - v.starting * k)
    starts = suppressed = 0
    resets = v.resets
    while waiting > 0 and room > 0:
        if resets:
            resets -= 1
            suppressed += 1
            waiting = max(0, waiting - 1 - (k - 1))
        else:
            waiting = max(0, waiting - k)
        starts += 1
        room -= 1
    return dispatches, starts, suppressed, waiting


def test_invariants_over_the_grid() -> None:
    checked = 0
    for idle_n, starting, busy, queued, limit, resets, k in itertools.product(
        range(3), range(3), range(3), range(6), range(6), range(3), (1, 2, 3)
    ):
        v = view(idle=list(range(idle_n)), starting=starting, busy=busy, queued=queued, limit=limit,
                 resets=resets, per_instance=k)
        actions = plan(v)
        d = [a for a in actions if isinstance(a, Dispatch)]
        s = [a for a in actions if isinstance(a, Start)]
        t = [a for a in actions if isinstance(a, Throttle)]
        assert (len(d), len(s), sum(a.suppressed for a in s), sum(a.count for a in t)) == model(v), v
        # Dispatches first, throttles last, suppressed starts before plain ones.
        kinds = [type(a).__name__ for a in actions]
        assert kinds == sorted(kinds, key=["Dispatch", "Start", "Throttle"].index)
        assert [a.suppressed for a in s] == sorted((a.suppressed for a in s), reverse=True)
        # Never past the limit; nothing refused while there was room for it.
        instances = idle_n + starting + busy
        assert len(s) <= max(0, limit - instances)
        if t:
            assert instances + len(s) >= limit
        # Every queued invocation is placed, covered by a starting instance, or refused.
        capacity = len(d) + (starting + len(s)) * k
        assert len(d) + sum(a.count for a in t) <= queued <= capacity + sum(a.count for a in t)
        assert len(t) <= 1
        checked += 1
    assert checked == 3 * 3 * 3 * 6 * 6 * 3 * 3


def test_replanning_after_carrying_out_a_plan_adds_nothing() -> None:
    for queued, limit in itertools.product(range(6), range(4)):
        v = view(idle=[1], busy=1, queued=queued, limit=limit)
        actions = plan(v)
        d = sum(isinstance(a, Dispatch) for a in actions)
        s = sum(isinstance(a, Start) for a in actions)
        t = sum(a.count for a in actions if isinstance(a, Throttle))
        after = view(idle=[], busy=1 + d, starting=s, queued=queued - d - t, limit=limit)
        assert plan(after) == [], (v, actions)


def test_overflow_queue_leaves_the_rest_waiting() -> None:
    v = PoolView([], 0, 2, 5, 2, 0, 1, throttle=False)
    assert plan(v) == []


def test_finishing_instances_cover_the_queue_head_like_starting_ones() -> None:
    # A sequential caller's next invoke waits for the instance that just answered.
    assert plan(PoolView([], 0, 0, 1, 5, finishing=1)) == []
    assert plan(PoolView([], 0, 0, 2, 5, finishing=1)) == [Start()]
    # They count against the limit too.
    assert plan(PoolView([], 0, 1, 3, 2, finishing=1)) == [Throttle(2)]


@pytest.mark.parametrize("queued", [1, 2, 3])
def test_when_every_queued_invocation_has_an_idle_slot_only_dispatches_follow(queued):
    # rapid.host.function takes this case without building the view (its O(1) path): the
    # oldest queued invocation goes to the most recently used idle slot, and nothing else.
    view = PoolView(idle=[4, 7, 9], starting=2, busy=5, queued=queued, limit=3, resets=1)
    assert plan(view) == [Dispatch(i) for i in [9, 7, 4][:queued]]


@pytest.mark.parametrize("starting,busy,finishing,resets", [(0, 4, 0, 0), (1, 2, 1, 0), (2, 0, 2, 3), (0, 5, 0, 1)])
def test_with_no_idle_slot_no_room_and_a_queueing_overflow_nothing_follows(starting, busy, finishing, resets):
    # rapid.host.function skips building the view in this case (a pool at its limit under
    # a queueing load): whatever waits, starts or finishes, the plan is empty.
    for queued in (1, 3, 20):
        view = PoolView([], starting, busy, queued, starting + busy + finishing, resets, 1, throttle=False,
                        finishing=finishing)
        assert plan(view) == []
        over = PoolView([], starting, busy, queued, max(0, starting + busy + finishing - 1), resets, 2,
                        throttle=False, finishing=finishing)
        assert plan(over) == []


@pytest.mark.parametrize("per_instance", [1, 2, 4])
def test_a_finishing_instance_covers_a_queue_no_longer_than_its_slots(per_instance):
    # rapid.host.function skips building the view when the instance that answered last is
    # finishing and the queue fits its slots: whatever else the pool holds, nothing follows.
    for busy, starting, resets, limit in itertools.product((0, 3), (0, 1), (0, 2), (1, 4, 9)):
        for queued in range(1, per_instance + 1):
            view = PoolView([], starting, busy, queued, limit, resets, per_instance, finishing=1)
            assert plan(view) == []
