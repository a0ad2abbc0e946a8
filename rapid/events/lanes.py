"""A function's queue of async events (``Lane``) and when the dispatcher looks at them again
(``Wakeup``).

The dispatcher never polls: it pumps its lanes when something changed (an event queued, an
attempt settled, the gate has room again: ``Wakeup.soon``, at most one pump per loop turn)
or when the earliest due time among its lanes comes (``Wakeup.at``: one timer, moved
earlier when a sooner time arrives, never later).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from rapid.events.store import Entry


class Lane:
    """One function's waiting events, and its async work in flight."""

    __slots__ = ("heap", "inflight", "name", "paused_until", "streak", "watching")

    def __init__(self, name: str) -> None:
        self.name = name
        self.heap: list[Entry] = []
        self.inflight = 0  # async attempts submitted (or being marked) and not settled
        self.paused_until = 0.0  # epoch: backing off after a throttle
        self.streak = 0  # consecutive throttles of this function's async attempts
        self.watching = False  # the gate calls back when the function has room again

    def __repr__(self) -> str:
        return f"<Lane {self.name} queued={len(self.heap)} inflight={self.inflight} streak={self.streak}>"


class Wakeup:
    """Calls ``pump`` once soon after any number of ``soon()`` in a loop turn, and at the
    earliest time ``at()`` was given; ``stop()`` ends both for good."""

    __slots__ = ("_loop", "_pump", "_scheduled", "_stopped", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, pump: Callable[[], None]) -> None:
        self._loop = loop
        self._pump = pump
        self._scheduled = False
        self._stopped = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def soon(self) -> None:
        if not self._scheduled and not self._stopped:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def at(self, when: float) -> None:
        """At epoch time ``when`` at the latest."""
        if self._stopped or (when >= self._timer_at and self._timer is not None):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_later(max(0.0, when - time.time()), self._on_timer)

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _run(self) -> None:
        self._scheduled = False
        self._pump()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        self.soon()

    def __repr__(self) -> str:
        timer = f" at={self._timer_at:.3f}" if self._timer is not None else ""
        return f"<Wakeup{' scheduled' if self._scheduled else ''}{' stopped' if self._stopped else ''}{timer}>"
