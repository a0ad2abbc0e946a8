"""The idle freeze: an instance is stopped once it stayed idle for the grace, not before."""

from __future__ import annotations

import asyncio

from rapid.host import idle_freeze
from rapid.host.idle_freeze import IdleFreeze


async def _wait(cond, seconds=5.0):
    deadline = asyncio.get_running_loop().time() + seconds
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


def test_an_idle_instance_is_frozen_after_the_grace_and_thawed_by_work():
    calls = []

    async def main():
        f = IdleFreeze(asyncio.get_running_loop(), lambda: calls.append("freeze") or True,
                       lambda: calls.append("thaw"))
        f.idle()
        assert not f.frozen and calls == []  # not at once
        await _wait(lambda: f.frozen)
        assert calls == ["freeze"]
        f.busy()
        assert not f.frozen and calls == ["freeze", "thaw"]
        f.busy()  # running already: nothing to do
        assert calls == ["freeze", "thaw"]

    asyncio.run(main())


def test_work_within_the_grace_costs_no_stop_and_no_continue():
    calls = []

    async def main():
        f = IdleFreeze(asyncio.get_running_loop(), lambda: calls.append("freeze") or True,
                       lambda: calls.append("thaw"))
        for _ in range(50):  # back-to-back invokes, each idle far less than the grace
            f.idle()
            f.busy()
        await asyncio.sleep(idle_freeze.GRACE * 5)
        assert calls == [] and not f.frozen
        f.idle()  # then it rests: frozen once
        await _wait(lambda: f.frozen)
        assert calls == ["freeze"]

    asyncio.run(main())


def test_an_instance_that_may_not_freeze_stays_running_and_cancel_stops_the_timer():
    async def main():
        f = IdleFreeze(asyncio.get_running_loop(), lambda: False, lambda: None)
        f.idle()
        await asyncio.sleep(idle_freeze.GRACE * 5)
        assert not f.frozen  # e.g. freeze = false, or several invocations per instance
        g = IdleFreeze(asyncio.get_running_loop(), lambda: True, lambda: None)
        g.idle()
        g.cancel()
        await asyncio.sleep(idle_freeze.GRACE * 5)
        assert not g.frozen and repr(g) == "<IdleFreeze running>"

    asyncio.run(main())
