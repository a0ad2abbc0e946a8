"""``wait_set``: a bounded wait for an event that never swallows a cancellation."""

import asyncio

from rapid.wake import wait_set


async def _loop_until_cancelled(event: asyncio.Event) -> None:
    while True:  # as the outbox, the pollers and the telemetry senders wait
        await wait_set(event, 10)
        event.clear()


async def test_a_cancel_that_arrives_with_the_event_ends_the_loop() -> None:
    # The event is set and the task cancelled in the same turn of the loop: the wait has
    # finished when the cancellation is delivered. asyncio.wait_for on 3.11 returned the
    # result there and the loop went round for ever.
    for _ in range(20):
        event = asyncio.Event()
        task = asyncio.create_task(_loop_until_cancelled(event))
        await asyncio.sleep(0)
        event.set()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        assert task in done and task.cancelled()


async def test_says_whether_the_event_came_in_time() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_set(event, 5) is True
    assert await wait_set(event, None) is True  # already set, no bound
