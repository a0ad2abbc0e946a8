"""Waiting for an ``asyncio.Event`` with a bound, without losing a cancellation.

On Python 3.11, ``asyncio.wait_for`` cancelled after its inner wait has already finished
returns that result and drops the cancellation (fixed in 3.12). A loop that waits that way
and is cancelled at shutdown just as its event is set carries on for ever, and whatever
awaits it (a ``stop()``, the daemon's exit) never returns: the cluster's lease renewal hung
a node's SIGTERM so. ``asyncio.timeout`` keeps the cancellation; every loop that waits for
an event with a bound uses :func:`wait_set`.
"""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, timeout: float | None) -> bool:
    """Whether ``event`` was set within ``timeout`` seconds (``None``: no bound)."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
