"""The lifecycle of one execution environment (an instance), as a transition table.

Theory of operation
-------------------
::

    Starting --spawn--> Initializing --init_done--> Idle <--settle-- Busy
        |                    |                        '--dispatch-->  |
        |                    '--retire--> Draining
        |--retire--> Draining (it carries an invocation: finish that, then die)
        '--die--> Dead        (every state but Dead dies, once)

- *Starting*: its Runtime API server is opening, its sandbox is being made, its runtime is
  being spawned.
- *Initializing*: the runtime runs its init; it ends at the runtime's first ``/next`` (and
  every extension's ``next``).
- *Idle*: initialised, running nothing (its ``/next`` is held, or on its way back).
- *Busy*: running at least one invocation (or its extensions still work on one).
- *Draining*: told to stop (recycled, its function replaced) while it still carries work;
  it takes nothing new and dies once that work is settled. A draining instance may still
  finish init and dispatch the invocation it was started for.
- *Dead*: ended (timeout, crash, init failure, idle timeout, recycling, shutdown). A dead
  instance is never reused; a second ``die`` is refused, so it ends exactly once.

Whether init already finished is a fact of its own (``InstanceMachine.initialized``): a
draining instance may be before or after it. The table holds no I/O: the instance
(``rapid.host.instance``) performs what each move implies, and its function keeps its
pool counts from the moves it is told about. Illegal moves raise ``IllegalInstanceTransition``.
"""

from __future__ import annotations

import enum


class InstanceState(enum.Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's own hash is Python code

    STARTING = "Starting"
    INITIALIZING = "Initializing"
    IDLE = "Idle"
    BUSY = "Busy"
    DRAINING = "Draining"
    DEAD = "Dead"


class InstanceEvent(enum.Enum):
    __hash__ = object.__hash__

    SPAWN = "spawn"  # the runtime process was started
    INIT_DONE = "init_done"  # the runtime (and every extension) called next
    DISPATCH = "dispatch"  # an invocation was handed to the runtime
    SETTLE = "settle"  # the last invocation it ran is over
    RETIRE = "retire"  # stop once the work it carries is done
    DIE = "die"


S, I, D, B, R, X = (InstanceState.STARTING, InstanceState.INITIALIZING, InstanceState.IDLE, InstanceState.BUSY,
                    InstanceState.DRAINING, InstanceState.DEAD)
E = InstanceEvent
_INIT_DONE = E.INIT_DONE  # (read per advance: a module name costs less than an enum member)

TRANSITIONS: dict[tuple[InstanceState, InstanceEvent], InstanceState] = {
    (S, E.SPAWN): I,
    (S, E.RETIRE): R,
    (I, E.INIT_DONE): D,
    (I, E.RETIRE): R,
    (D, E.DISPATCH): B,
    (B, E.DISPATCH): B,  # more slots (per_instance_concurrency > 1)
    (B, E.SETTLE): D,
    (B, E.RETIRE): R,
    (R, E.SPAWN): R,
    (R, E.INIT_DONE): R,
    (R, E.DISPATCH): R,
    (R, E.SETTLE): R,
    (R, E.RETIRE): R,
}
for _state in (S, I, D, B, R):
    TRANSITIONS[(_state, E.DIE)] = X
del _state

# What the pool counts it as: starting (capacity on its way), or live work.
LIVE = frozenset({S, I, D, B, R})
STARTING = frozenset({S, I})


class IllegalInstanceTransition(Exception):
    pass


class InstanceMachine:
    """One instance's state; ``advance`` moves it by the table or raises."""

    __slots__ = ("initialized", "state")

    def __init__(self) -> None:
        self.state = InstanceState.STARTING
        self.initialized = False

    def can(self, event: InstanceEvent) -> bool:
        return (self.state, event) in TRANSITIONS

    def advance(self, event: InstanceEvent) -> InstanceState:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise IllegalInstanceTransition(f"{self.state.value} --{event.value}-->") from None
        if event is _INIT_DONE:
            self.initialized = True
        return self.state

    @property
    def dead(self) -> bool:
        return self.state is X

    @property
    def starting(self) -> bool:
        """Init has not finished and the instance is alive."""
        return not self.initialized and self.state is not X

    @property
    def retiring(self) -> bool:
        return self.state is R

    def __repr__(self) -> str:
        return f"<InstanceMachine {self.state.value}{' initialized' if self.initialized else ''}>"
