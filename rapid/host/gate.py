"""The host's admission gate: every invocation asks ``rapid.core.admission`` before it runs.

Theory of operation
-------------------
Three callers start invocations: the synchronous edges (Invoke, response streaming,
function URLs), the async dispatcher (``rapid.events.dispatcher``) and the event source
mappings' pollers (``rapid.sources.invoker``). All of them end in ``Function.submit``, and
the gate is asked there, so one rule and one ``Ledger`` hold across all three:

- a synchronous invocation reaches ``enter`` with no ticket: the rule admits it (a ticket is
  taken) or throttles it (settled at once with AWS's 429 and its ``Reason``);
- the dispatcher and the pollers ask first (``room`` / ``decide``), take their tickets
  (``take``) and ``bind`` each to its invocation before submitting it, so ``enter`` lets it
  through; when there is no room they do not submit: they ``watch`` the function and are
  called back when a unit of its limit (or of the unreserved pool) comes free.

A ticket is given back when its invocation settles (``bind`` chains ``on_settled``), or by
its taker when it never submitted one. Giving back wakes the watchers, on the next turn of
the loop. The pool below still places invocations on instances and remains the backstop: if
it throttles an admitted invocation (an instance that is still dying holds a place), the
async dispatcher and the pollers treat that 429 as a throttle and wait, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from rapid.core.admission import Decision, Ledger, Limits, Ticket, Work, admits_sync, decide, room
from rapid.core.errors import throttled
from rapid.core.invocation import Invocation, InvocationEvent, Outcome
from rapid.wake import wait_set

if TYPE_CHECKING:
    from rapid.host.function import Function
    from rapid.host.host import Host

_SYNC = Work.SYNC  # (read per invoke: see rapid.host.slots)


class Gate:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.ledger = Ledger()
        self.bound: dict[Invocation, Ticket] = {}  # admitted invocations not yet settled
        self._watchers: dict[str, list[Callable[[], None]]] = {}  # reserved functions' waiters
        self._unreserved_watchers: list[Callable[[], None]] = []
        self._wake_scheduled = False
        self._due: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"<Gate {self.ledger!r} bound={len(self.bound)}>"

    # -- the rule -------------------------------------------------------------------------

    def limits(self, fn: Function) -> Limits:
        cfg = self.host.config
        return Limits(fn.reserved, self.host.unreserved_total, cfg.async_concurrency, cfg.overflow == "queue")

    def room(self, fn: Function, work: Work) -> int:
        return room(work, self.ledger.usage(fn.name), self.limits(fn))

    def decide(self, fn: Function, work: Work) -> Decision:
        return decide(work, self.ledger.usage(fn.name), self.limits(fn))

    # -- tickets --------------------------------------------------------------------------

    def take(self, fn: Function, work: Work) -> Ticket:
        return self.ledger.take(fn.name, work, fn.reserved is not None)

    def give_back(self, ticket: Ticket) -> None:
        if self.ledger.give_back(ticket):
            self._freed(ticket.function, ticket.unreserved)

    def bind(self, ticket: Ticket, inv: Invocation) -> None:
        """``ticket`` is ``inv``'s: given back when ``inv`` settles."""
        self.bound[inv] = ticket
        then = inv.on_settled

        def settled(i: Invocation) -> None:
            self.bound.pop(i, None)
            self.give_back(ticket)
            if then is not None:
                then(i)

        inv.on_settled = settled

    def enter(self, fn: Function, inv: Invocation) -> bool:
        """``Function.submit`` asks: may ``inv`` go into the pool? An invocation without a
        ticket is synchronous: admitted, or throttled here (False: it is settled)."""
        if inv in self.bound:
            return True
        ledger, host = self.ledger, self.host
        if not admits_sync(fn.reserved, host.unreserved_total, ledger.by_function.get(fn.name, 0), ledger.unreserved,
                           host.config.overflow == "queue"):
            reason = ("ReservedFunctionConcurrentInvocationLimitExceeded" if fn.reserved is not None
                      else "ConcurrentInvocationLimitExceeded")
            self.host.feed.throttle(fn.name, 1)
            inv.settle(InvocationEvent.FAIL, Outcome(b"", status="error", service_error=throttled(reason)))
            return False
        self.bind(self.take(fn, _SYNC), inv)
        return True

    # -- waiting for room -----------------------------------------------------------------

    def watch(self, fn: Function, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when a unit of ``fn``'s limit may have come free."""
        if fn.reserved is None:
            self._unreserved_watchers.append(callback)
        else:
            self._watchers.setdefault(fn.name, []).append(callback)

    async def wait(self, fn: Function, timeout: float) -> None:
        """Until a unit of ``fn``'s limit may have come free, or ``timeout`` seconds."""
        freed = asyncio.Event()
        self.watch(fn, freed.set)
        await wait_set(freed, timeout)  # (the pollers wait in a loop: a stop's cancel must hold)

    def changed(self, name: str) -> None:
        """A function's reservation changed: everyone waiting may look again."""
        self._freed(name, True)

    def _freed(self, name: str, unreserved: bool) -> None:
        woken = self._watchers.pop(name, None)
        if woken:
            self._due.extend(woken)
        if unreserved and self._unreserved_watchers:
            self._due.extend(self._unreserved_watchers)
            self._unreserved_watchers = []
        if self._due and not self._wake_scheduled:
            self._wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._wake)

    def _wake(self) -> None:
        self._wake_scheduled = False
        due, self._due = self._due, []
        for callback in due:
            callback()
