"""The deadlines of one instance's invocations, enforced by one timer.

Theory of operation
-------------------
Every invocation an instance runs has a deadline (its start plus the function's timeout).
A timer per invocation (armed at dispatch, cancelled at the answer) costs a timer start
and a timer stop on the loop per invoke, for a timer that almost never fires. Here one
timer serves them all, and it is lazy: ``arm`` only records the deadline, and moves the
timer only when the new deadline comes *before* the one it is set for; ``disarm`` only
forgets the deadline, and leaves the timer alone. When the timer fires it looks at what is
recorded: each invocation whose deadline has passed is handed to ``on_due`` (which times
it out), and the timer is set again for the earliest deadline left, if any. Under a
steady load the timer is set about once per timeout period, not twice per invoke.

An invocation is timed out no earlier than its deadline by ``time.monotonic()``: the
loop's clock ticks in whole milliseconds and may fire a little early, in which case the
timer is set again for what is left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from rapid.core.invocation import Invocation


class Deadlines:
    __slots__ = ("_due", "_loop", "_on_due", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_due: Callable[[Invocation], None]) -> None:
        self._loop = loop
        self._on_due = on_due
        self._due: dict[str, tuple[float, Invocation]] = {}  # request id -> (monotonic deadline, invocation)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # the monotonic time the timer is set for

    def arm(self, inv: Invocation, at: float) -> None:
        """``inv`` must be over by ``at`` (monotonic), or ``on_due`` gets it."""
        self._due[inv.request_id] = (at, inv)
        if self._timer is None:
            self._set(at)
        elif at < self._timer_at:
            self._timer.cancel()
            self._set(at)

    def disarm(self, request_id: str) -> None:
        """The invocation is over: its deadline no longer counts."""
        self._due.pop(request_id, None)

    def cancel(self) -> None:
        """Forget every deadline (the instance is ending)."""
        self._due.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._due

    def __len__(self) -> int:
        return len(self._due)

    def _set(self, at: float) -> None:
        self._timer_at = at
        self._timer = self._loop.call_later(max(0.0, at - time.monotonic()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = time.monotonic()
        due = [inv for at, inv in self._due.values() if at <= now]
        for inv in due:
            if self._due.pop(inv.request_id, None) is not None:  # (an earlier one may have ended them all)
                self._on_due(inv)
        if self._due and self._timer is None:
            self._set(min(at for at, _inv in self._due.values()))

    def __repr__(self) -> str:
        when = f" next in {self._timer_at - time.monotonic():.3f}s" if self._timer is not None else ""
        return f"<Deadlines {len(self._due)} armed{when}>"
