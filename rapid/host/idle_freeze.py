"""Freezing an idle instance, a moment after it became idle.

Lambda freezes an execution environment between invokes: background work in user code
stalls until the next event. rapid does the same (SIGSTOP to the instance's process group,
or its freezer cgroup), but not at the very instant the runtime parks its ``/next``: under
load the next invocation arrives within microseconds, and a stop and a continue per invoke
(two ``kill`` calls and two SIGCHLDs to the daemon) were a fifth of the daemon's CPU.

So an instance that becomes idle is frozen once it has stayed idle for ``GRACE`` seconds.
One timer serves many invocations: it is armed when the instance first becomes idle; when
it fires it looks at when the instance *last* became idle, and re-arms for the rest of the
grace if work came and went meanwhile. An instance that gets work before the grace is over
is never stopped, so it needs no continue either. What a user can observe is unchanged: an
idle instance is frozen (2 ms after its last answer rather than at once), a busy one runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

GRACE = 0.002  # seconds an instance stays idle before it is frozen


class IdleFreeze:
    __slots__ = ("_due", "_freeze", "_loop", "_thaw", "_timer", "frozen")

    def __init__(self, loop: asyncio.AbstractEventLoop, freeze: Callable[[], bool], thaw: Callable[[], None]) -> None:
        self._loop = loop
        self._freeze = freeze  # stops the processes; False if this instance is not frozen at all
        self._thaw = thaw
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0  # monotonic time the freeze is due; 0: not due
        self.frozen = False

    def idle(self) -> None:
        """The instance has nothing to run: freeze it ``GRACE`` from now, unless work comes."""
        if self.frozen:
            return
        self._due = time.monotonic() + GRACE
        if self._timer is None:
            self._timer = self._loop.call_later(GRACE, self._fire)

    def busy(self) -> None:
        """Work arrived (or the instance is ending): run, now."""
        self._due = 0.0
        if self.frozen:
            self.frozen = False
            self._thaw()

    def cancel(self) -> None:
        self._due = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        due = self._due
        if not due:
            return
        left = due - time.monotonic()
        if left > 0.0005:  # it was busy in between: the grace runs from its last idle moment
            self._timer = self._loop.call_later(left, self._fire)
            return
        self._due = 0.0
        self.frozen = self._freeze()

    def __repr__(self) -> str:
        state = "frozen" if self.frozen else "due" if self._due else "running"
        return f"<IdleFreeze {state}>"
