"""One lazy timer for an instance's invocation deadlines (rapid.host.deadlines), on a real loop."""

from __future__ import annotations

import asyncio
import time

from rapid.core.invocation import Invocation
from rapid.host.deadlines import Deadlines


def _inv(rid: str) -> Invocation:
    return Invocation(request_id=rid, payload=b"{}", function_arn="arn:aws:lambda:us-east-1:000000000000:function:f", trace_id="Root=1-0-0",
                      timeout=1.0)


class Recorder:
    def __init__(self) -> None:
        self.due: list[tuple[str, float]] = []
        self.fired = asyncio.Event()

    def __call__(self, inv: Invocation) -> None:
        self.due.append((inv.request_id, time.monotonic()))
        self.fired.set()


async def _until(cond, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_an_armed_invocation_is_due_no_earlier_than_its_deadline() -> None:
    rec = Recorder()
    d = Deadlines(asyncio.get_running_loop(), rec)
    at = time.monotonic() + 0.05
    d.arm(_inv("a"), at)
    await _until(lambda: rec.due)
    assert rec.due[0][0] == "a" and rec.due[0][1] >= at
    assert "a" not in d and len(d) == 0


async def test_a_disarmed_invocation_is_never_due_and_the_next_one_still_is() -> None:
    rec = Recorder()
    d = Deadlines(asyncio.get_running_loop(), rec)
    now = time.monotonic()
    d.arm(_inv("first"), now + 0.03)
    d.disarm("first")  # answered in time: the timer stays set, finds nothing, moves on
    d.arm(_inv("second"), now + 0.08)
    await _until(lambda: rec.due)
    await asyncio.sleep(0.05)
    assert [rid for rid, _t in rec.due] == ["second"]
    assert rec.due[0][1] >= now + 0.08


async def test_an_earlier_deadline_moves_the_timer_forward() -> None:
    rec = Recorder()
    d = Deadlines(asyncio.get_running_loop(), rec)
    now = time.monotonic()
    d.arm(_inv("late"), now + 10.0)
    d.arm(_inv("early"), now + 0.03)
    await _until(lambda: rec.due)
    assert [rid for rid, _t in rec.due] == ["early"]
    assert "late" in d
    d.cancel()
    assert len(d) == 0


async def test_several_due_at_once_are_all_handed_over_unless_one_ends_the_rest() -> None:
    rec = Recorder()
    d = Deadlines(asyncio.get_running_loop(), rec)
    now = time.monotonic()
    for rid in ("a", "b", "c"):
        d.arm(_inv(rid), now + 0.02)
    await _until(lambda: len(rec.due) == 3)
    assert sorted(rid for rid, _t in rec.due) == ["a", "b", "c"]

    ended: list[str] = []

    def end_all(inv: Invocation) -> None:  # as an instance's timeout does: it dies, and with it the rest
        ended.append(inv.request_id)
        d2.cancel()

    d2 = Deadlines(asyncio.get_running_loop(), end_all)
    for rid in ("x", "y"):
        d2.arm(_inv(rid), time.monotonic() + 0.02)
    await _until(lambda: ended)
    await asyncio.sleep(0.05)
    assert len(ended) == 1 and len(d2) == 0
