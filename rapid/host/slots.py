"""The slots of one instance: which ``/next`` calls are parked, which invocations run.

An instance takes ``per_instance_concurrency`` invocations at once (1 on Lambda), each on a
slot whose rhythm is a ``RuntimeMachine``. This is the bookkeeping between the Runtime API
calls and those machines, with no I/O: the instance owns the futures' loop and the clocks.
"""

from __future__ import annotations

import asyncio
from collections import deque

from rapid.core.errors import invalid_request_id
from rapid.core.invocation import Invocation
from rapid.core.runtime_state import RuntimeEvent, RuntimeMachine, RuntimeState
from rapid.http.message import Response
from rapid.http.reply import Reply

# Enum members read once: on Python 3.11 ``RuntimeEvent.NEXT`` goes through
# ``EnumType.__getattr__``'s slow attribute path (about 0.1 us a read, per invoke).
_NEXT, _DISPATCH = RuntimeEvent.NEXT, RuntimeEvent.DISPATCH

Parked = tuple[RuntimeMachine, Reply]


class Slots:
    __slots__ = ("machines", "parked", "lost", "running")

    def __init__(self, count: int) -> None:
        self.machines = [RuntimeMachine() for _ in range(count)]
        self.parked: deque[Parked] = deque()  # held /next calls, oldest first
        self.lost: list[RuntimeMachine] = []  # Ready slots whose /next connection dropped
        self.running: dict[str, tuple[Invocation, RuntimeMachine]] = {}

    def for_next(self) -> RuntimeMachine:
        """The slot a ``/next`` call belongs to, moved to Ready; 403 if none may ask now."""
        if self.lost:
            return self.lost.pop()  # its /next connection dropped; it is polling again
        for slot in self.machines:
            if slot.can(_NEXT):
                slot.advance(_NEXT)
                return slot
        self.machines[0].advance(RuntimeEvent.NEXT)  # raises: the machine words the 403
        raise AssertionError("unreachable")

    def park(self, slot: RuntimeMachine, fut: Reply) -> None:
        self.parked.append((slot, fut))

    def hung_up(self, fut: asyncio.Future[Response]) -> bool:
        """A parked ``/next`` was cancelled (the runtime hung up): its slot stays Ready."""
        for i, (slot, f) in enumerate(self.parked):
            if f is fut:
                del self.parked[i]
                self.lost.append(slot)
                return True
        return False

    def unpark(self) -> Parked:
        return self.parked.popleft()

    def cancel_parked(self) -> None:
        while self.parked:
            _slot, fut = self.parked.popleft()
            if not fut.done():
                fut.cancel()

    def dispatch(self, inv: Invocation, slot: RuntimeMachine) -> None:
        slot.advance(_DISPATCH)
        self.running[inv.request_id] = (inv, slot)

    def answering(self, request_id: str) -> tuple[Invocation, RuntimeMachine]:
        """The invocation a ``/response`` or ``/error`` names; 400 if it is not running here."""
        entry = self.running.get(request_id)
        if entry is None or entry[0].settled:
            raise invalid_request_id()
        return entry

    def done(self, request_id: str) -> None:
        self.running.pop(request_id, None)

    def for_init_error(self, initialized: bool) -> RuntimeMachine:
        if not initialized:
            for slot in self.machines:
                if slot.state is RuntimeState.INITIALIZING:
                    return slot
        return self.machines[0]  # init is over: the machine words the 403

    def exit(self) -> set[RuntimeState]:
        """The process ended: every slot is Exited; returns the states they were in."""
        before = {slot.state for slot in self.machines}
        for slot in self.machines:
            if slot.state is not RuntimeState.EXITED:
                slot.advance(RuntimeEvent.EXIT)
        return before

    @property
    def idle(self) -> int:
        return len(self.parked)

    def __repr__(self) -> str:
        states = ",".join(s.state.value for s in self.machines)
        return f"<Slots [{states}] parked={len(self.parked)} running={len(self.running)}>"
