"""rapid.events.lanes.Wakeup: one pump per loop turn, one timer at the earliest time asked."""

from __future__ import annotations

import asyncio
import time

from rapid.events.lanes import Wakeup


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_many_soon_calls_in_a_turn_pump_once() -> None:
    pumps: list[float] = []
    wake = Wakeup(asyncio.get_running_loop(), lambda: pumps.append(time.time()))
    for _ in range(5):
        wake.soon()
    await _turns(3)
    assert len(pumps) == 1
    wake.soon()
    await _turns(3)
    assert len(pumps) == 2


async def test_the_earliest_time_wins_and_a_later_one_does_not_move_it() -> None:
    pumps: list[float] = []
    wake = Wakeup(asyncio.get_running_loop(), lambda: pumps.append(time.time()))
    start = time.time()
    wake.at(start + 5.0)
    wake.at(start + 0.05)  # sooner: replaces the 5 s timer
    wake.at(start + 3.0)  # later: ignored
    await asyncio.sleep(0.3)
    assert len(pumps) == 1 and pumps[0] - start < 1.0
    assert "at=" not in repr(wake)  # no timer left after it fired


async def test_stop_ends_both() -> None:
    pumps: list[float] = []
    wake = Wakeup(asyncio.get_running_loop(), lambda: pumps.append(time.time()))
    wake.at(time.time() + 0.02)
    wake.stop()
    wake.soon()
    wake.at(time.time())
    await asyncio.sleep(0.1)
    assert pumps == []
    assert "stopped" in repr(wake)
