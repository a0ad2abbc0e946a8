"""The outbox: records and dead letters on their way to an HTTP endpoint, or to a file that
could not be written when their event finished, retried with backoff (see ``destinations``).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import Any

from rapid.events import destinations as dest
from rapid.events import policy
from rapid.events.say import say
from rapid.events.store import Delivery, EventStore, call
from rapid.wake import wait_set

MAX_HTTP_DELIVERIES = 16  # concurrent POSTs to HTTP destinations


class Outbox:
    """The outbox rows due, in a heap by due time, and the deliveries in flight."""

    def __init__(self, store: EventStore, loop: asyncio.AbstractEventLoop, scale: float) -> None:
        self.store = store
        self.scale = scale
        self._loop = loop
        self._deliveries: list[Delivery] = []
        self._delivery_wake = asyncio.Event()
        self._delivery_task: asyncio.Task[None] | None = None
        self._delivery_jobs: set[asyncio.Task[None]] = set()
        self._session: Any = None

    def start(self, deliveries: list[Delivery]) -> None:
        """Work on the outbox rows recovered from the store."""
        self._deliveries = list(deliveries)
        heapq.heapify(self._deliveries)
        self._delivery_task = self._loop.create_task(self._delivery_loop())

    def add(self, deliveries: list[Delivery]) -> None:
        """Work on new outbox rows (an event finished)."""
        for d in deliveries:
            heapq.heappush(self._deliveries, d)
        self._delivery_wake.set()

    async def close(self) -> None:
        """Stop: cancel the loop and the deliveries in flight, close the HTTP session."""
        if self._delivery_task is not None:
            self._delivery_task.cancel()
        for job in list(self._delivery_jobs):
            job.cancel()
        await asyncio.gather(*self._delivery_jobs, *(t for t in [self._delivery_task] if t), return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # -- destinations that take time: files that failed, HTTP -------------------------------

    async def _delivery_loop(self) -> None:
        limit = asyncio.Semaphore(MAX_HTTP_DELIVERIES)
        while True:
            if not self._deliveries:
                self._delivery_wake.clear()
                await self._delivery_wake.wait()
                continue
            delay = self._deliveries[0].due_at - time.time()
            if delay > 0:
                self._delivery_wake.clear()
                await wait_set(self._delivery_wake, delay)
                continue
            d = heapq.heappop(self._deliveries)
            await limit.acquire()
            job = self._loop.create_task(self._deliver(d))
            self._delivery_jobs.add(job)

            def finished(t: asyncio.Task[None]) -> None:
                self._delivery_jobs.discard(t)
                limit.release()

            job.add_done_callback(finished)

    async def _deliver(self, d: Delivery) -> None:
        if d.target.startswith("file://"):
            problem: str | None = await call(self._loop, self.store.deliver_file, d)
        else:
            if self._session is None:
                import aiohttp

                self._session = aiohttp.ClientSession()
            problem = await dest.post(self._session, d.target, d.body)
            if problem is None:
                await call(self._loop, self.store.delivery_done, d)
        if problem is None:
            return
        d.tries += 1
        now = time.time()
        d.due_at = now + policy.backoff(d.tries) * self.scale
        drop = d.due_at > d.expires_at
        if drop:
            say(f"destination {d.target} for {d.function}: {problem}; record dropped after {d.tries} tries")
        else:
            say(f"destination {d.target} for {d.function}: {problem}; try {d.tries + 1} in "
                f"{d.due_at - now:.2f} s")
        await call(self._loop, self.store.delivery_failed, d, drop)
        if not drop:
            heapq.heappush(self._deliveries, d)
            self._delivery_wake.set()
