"""rapid.cluster.link without a NATS server: the link's own loop, its tasks, and closing.

A closed link refuses work at once (LinkError) and closes the coroutine it was given, so
no caller waits for a loop that will never run it and no coroutine is left never awaited
(the RuntimeWarning a test's second ``release`` once made); ``LinkTasks.stop`` returns
only once the work it cancelled has ended."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings

import pytest

from rapid.cluster.link import Link, LinkError


def test_a_closed_link_refuses_work_and_leaves_no_coroutine_never_awaited() -> None:
    link = Link("nats://127.0.0.1:1", "test")
    assert link.call(asyncio.sleep(0, "ran")) == "ran"
    link.close()
    assert link.loop.is_closed()  # closed by close(), not left to the interpreter's exit
    link.close()  # twice: nothing

    async def never() -> None:
        raise AssertionError("ran on a closed link")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(LinkError):
            link.call(never(), timeout=1)
        with pytest.raises(LinkError):
            link.submit(never())
        gc.collect()
    assert [w for w in caught if "never awaited" in str(w.message)] == []


def test_stopping_link_tasks_waits_until_the_cancelled_work_has_ended() -> None:
    link = Link("nats://127.0.0.1:1", "test")
    tasks = link.tasks()
    started = threading.Event()
    using = {"busy": 0}  # what a store's work would touch (its database)
    ended: list[str] = []

    async def busy(i: int) -> None:
        using["busy"] += 1
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.05)  # cleaning up takes a little while
            using["busy"] -= 1
            ended.append(f"busy {i}")

    async def quick() -> str:
        await asyncio.sleep(0.01)
        ended.append("quick")
        return "done"

    try:
        futures = [tasks.submit(busy(i)) for i in range(50)]
        finished = tasks.submit(quick())
        assert started.wait(5)
        tasks.stop(grace=1.0)
        # When stop returns, nothing it ran is still under way: what it used may be closed.
        assert using["busy"] == 0
        assert sorted(ended) == sorted(["quick"] + [f"busy {i}" for i in range(50)])
        assert finished.result(0) == "done"  # what ended within the grace kept its result
        assert all(f.cancelled() for f in futures)
        with pytest.raises(LinkError):
            tasks.submit(quick())  # stopped: no new work
    finally:
        link.close()
