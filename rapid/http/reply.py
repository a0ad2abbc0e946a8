"""A response that comes later, written the moment it is given.

A handler that must wait returns a future, and its connection writes the answer from the
future's done callback. An ``asyncio.Future`` runs done callbacks on a later turn of the
loop (a handle scheduled, then run); for the two waits on the invoke path, the invoker's
answer and the runtime's held ``/next``, that hop is pure cost: the answer is ready, and the
connection only has to write it. A ``Reply`` is a Future (it can be awaited, and
``isinstance(reply, asyncio.Future)`` holds, so every caller that awaits an Invoke keeps
working) that also takes *immediate* listeners (``when_answered``): they run inside
``answer`` (or ``cancel``), before it returns.

So when a runtime posts its response, the invoker's answer is written before the runtime's
``202``, in the same turn: the invoker can send its next invoke while the runtime reads its
``202`` and comes back to ``/next``, and the two often arrive together.

Ordinary done callbacks (``add_done_callback``, a task awaiting it) still run on a later
turn, as asyncio's do. A listener added after the answer is scheduled like those.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class Reply(asyncio.Future):  # type: ignore[type-arg]
    __slots__ = ("_listeners",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self._listeners: list[Callable[[Reply], None]] | None = []

    def when_answered(self, listener: Callable[[Reply], None]) -> None:
        """Call ``listener(self)`` as soon as this is answered or cancelled."""
        listeners = self._listeners
        if listeners is None or self.done():
            self.add_done_callback(listener)  # already over: on the next turn, as asyncio would
        else:
            listeners.append(listener)

    def answer(self, value: Any) -> None:
        """Set the result (once; later answers are ignored) and tell the listeners now."""
        if self.done():
            return
        self.set_result(value)
        self._tell()

    def cancel(self, msg: Any = None) -> bool:
        if not super().cancel(msg):
            return False
        self._tell()
        return True

    def _tell(self) -> None:
        listeners, self._listeners = self._listeners, None
        if listeners:
            for listener in listeners:
                listener(self)

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled() else "answered" if self.done() else "pending"
        return f"<Reply {state}>"
