"""Admission: may one more invocation of a function start now? One rule for all three ways in.

Theory of operation
-------------------
Lambda counts a function's concurrency as its invocations in flight, whoever asked for them:
a synchronous invoke (Invoke, a function URL), an asynchronous event taken from the queue,
or a batch an event source mapping's poller sends. Reserved concurrency caps that count for
the function; every function without a reservation shares the account's unreserved
concurrency. This module decides, with no I/O, whether one more invocation of a given kind
may start, from a ``Ledger`` of what is in flight::

    kind    room left            no room left             reserved concurrency 0
    ------  -------------------  -----------------------  ----------------------
    SYNC    ADMIT                THROTTLE (429)           THROTTLE
    ASYNC   ADMIT (within its    WAIT (the event stays    THROTTLE (the event goes
            share, see below)    queued, to its max age)  to its failure target)
    POLL    ADMIT                WAIT (the batch waits;   WAIT (the mapping does
                                 it never fails)          not poll)

(with ``overflow = "queue"``, a synchronous invoke with no room is admitted and waits in the
pool's queue: rapid's own option, not AWS's.)

"Room" is ``limit - in flight``, where the limit is the reserved concurrency of a reserved
function, else the unreserved concurrency, counted over every unreserved function. Async
work has a share inside that room, so a burst of events neither starves synchronous callers
nor starts hundreds of instances on a small machine: at most ``async_cap`` events of a
function at once, and never the last unit of its limit when the limit is above 1 (so a
function with reserved concurrency 2 always has room for one synchronous caller). Pollers
have no share of their own: their ScalingConfig and scaling steps bound them before they
ask, and then they may use the whole limit, as Lambda's pollers do.

A ``Ticket`` is one unit taken: ``Ledger.take`` counts it, ``Ledger.give_back`` uncounts
it, exactly once. The host's gate (``rapid.host.gate``) asks ``room`` / ``decide``, takes
tickets and gives them back when the invocation settles.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Work(enum.Enum):
    __hash__ = object.__hash__

    SYNC = "sync"
    ASYNC = "async"
    POLL = "poll"


class Decision(enum.Enum):
    __hash__ = object.__hash__

    ADMIT = "admit"
    WAIT = "wait"
    THROTTLE = "throttle"


_ASYNC = Work.ASYNC  # read per ticket (an enum member costs a slow attribute read on Python 3.11)


@dataclass(frozen=True, slots=True)
class Limits:
    """What bounds one function now."""

    reserved: int | None  # the function's reserved concurrency; None: it draws on the unreserved pool
    unreserved: int  # the account's concurrency less every reservation
    async_cap: int = 16  # async events of one function at once (the server's ``async_concurrency``)
    queue_sync: bool = False  # ``overflow = "queue"``: a sync invoke with no room waits instead of a 429


@dataclass(frozen=True, slots=True)
class Usage:
    """What is in flight that counts against one function's limit."""

    function: int  # this function's invocations in flight, of every kind and version
    async_: int  # of those, async events
    unreserved: int  # invocations in flight of every function without a reservation


def room(work: Work, usage: Usage, limits: Limits) -> int:
    """How many more invocations of ``work`` may start now (0: none)."""
    if limits.reserved is not None:
        limit, used = limits.reserved, usage.function
    else:
        limit, used = limits.unreserved, usage.unreserved
    free = max(0, limit - used)
    if work is Work.ASYNC:
        own_limit = limits.reserved if limits.reserved is not None else limits.unreserved
        share = min(limits.async_cap, own_limit - 1 if own_limit > 1 else own_limit)
        free = min(free, max(0, share - usage.async_))
    return free


def admits_sync(reserved: int | None, unreserved: int, in_flight: int, unreserved_in_flight: int,
                queue_sync: bool) -> bool:
    """``decide(Work.SYNC, ...) is Decision.ADMIT`` from the plain counts (``Limits`` and
    ``Usage``'s fields), for the gate's every synchronous invoke: no object is built."""
    if reserved is not None:
        return reserved != 0 and (in_flight < reserved or queue_sync)
    return unreserved_in_flight < unreserved or queue_sync


def decide(work: Work, usage: Usage, limits: Limits) -> Decision:
    """Admit one more invocation of ``work``, make it wait, or throttle it (the table above)."""
    if limits.reserved == 0:
        return Decision.WAIT if work is Work.POLL else Decision.THROTTLE
    if room(work, usage, limits) > 0:
        return Decision.ADMIT
    if work is Work.SYNC:
        return Decision.ADMIT if limits.queue_sync else Decision.THROTTLE
    return Decision.WAIT


@dataclass(slots=True, eq=False)
class Ticket:
    """One unit of a function's concurrency, taken until its invocation settles."""

    function: str
    work: Work
    unreserved: bool  # counted in the unreserved pool (the function had no reservation when taken)
    held: bool = True

    def __repr__(self) -> str:
        return f"<Ticket {self.function} {self.work.value}{' unreserved' if self.unreserved else ''}" \
               f"{'' if self.held else ' returned'}>"


class Ledger:
    """Invocations in flight, by function and kind, and in the unreserved pool. No I/O."""

    __slots__ = ("by_function", "async_by_function", "unreserved")

    def __init__(self) -> None:
        self.by_function: dict[str, int] = {}
        self.async_by_function: dict[str, int] = {}
        self.unreserved = 0

    def usage(self, function: str) -> Usage:
        return Usage(self.by_function.get(function, 0), self.async_by_function.get(function, 0), self.unreserved)

    def take(self, function: str, work: Work, reserved: bool) -> Ticket:
        self.by_function[function] = self.by_function.get(function, 0) + 1
        if work is _ASYNC:
            self.async_by_function[function] = self.async_by_function.get(function, 0) + 1
        if not reserved:
            self.unreserved += 1
        return Ticket(function, work, not reserved)

    def give_back(self, ticket: Ticket) -> bool:
        """Uncount ``ticket``; False (and nothing done) if it was given back already."""
        if not ticket.held:
            return False
        ticket.held = False
        name = ticket.function
        left = self.by_function.get(name, 0) - 1
        if left > 0:
            self.by_function[name] = left
        else:
            self.by_function.pop(name, None)
        if ticket.work is _ASYNC:
            left = self.async_by_function.get(name, 0) - 1
            if left > 0:
                self.async_by_function[name] = left
            else:
                self.async_by_function.pop(name, None)
        if ticket.unreserved:
            self.unreserved -= 1
        return True

    def __repr__(self) -> str:
        return f"<Ledger {sum(self.by_function.values())} in flight, {self.unreserved} unreserved>"
