"""The Runtime API state machine of one runtime process.

Theory of operation
-------------------
A runtime process talks to its Runtime API in a fixed rhythm::

    Started --next--> Ready --dispatch--> Running --response|error--> ResponseSent --next--> Ready ...
         \\--init/error--> InitError

``next`` is the runtime's ``GET /invocation/next``; ``dispatch`` is the host handing it an
event; ``response``/``error`` are its ``POST /invocation/{id}/response|error``; ``init_error``
is ``POST /init/error``. ``exit`` (the process ended) is legal from every state and is final.

Every call a runtime makes is first checked here; a call that has no entry in the table is
out of order and is answered 403 ``InvalidStateTransition`` (the RIE's words). Whether a
request id is the right one is a separate question the caller asks first (400
``InvalidRequestID``), because the RIE answers it first.

This module holds the table and nothing else: no I/O, no clock.
"""

from __future__ import annotations

import enum

from rapid.core.errors import InvalidStateTransition


class RuntimeState(enum.Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's own hash is Python code

    # The values are the RIE's state names (core/states.go): they appear in 403 messages.
    INITIALIZING = "Started"
    READY = "Ready"
    INVOKING = "Running"
    RESPONDED = "RuntimeResponseSentState"
    INIT_FAILED = "InitError"
    EXITED = "Exited"


class RuntimeEvent(enum.Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's own hash is Python code

    # The value is the RIE's name for the state the call asks to enter.
    NEXT = "Ready"
    DISPATCH = "Running"
    RESPONSE = "RuntimeResponseSentState"
    ERROR = "InvocationErrorResponse"
    INIT_ERROR = "InitError"
    EXIT = "Exited"


S, E = RuntimeState, RuntimeEvent

TRANSITIONS: dict[tuple[RuntimeState, RuntimeEvent], RuntimeState] = {
    (S.INITIALIZING, E.NEXT): S.READY,
    (S.INITIALIZING, E.INIT_ERROR): S.INIT_FAILED,
    (S.READY, E.DISPATCH): S.INVOKING,
    (S.INVOKING, E.RESPONSE): S.RESPONDED,
    (S.INVOKING, E.ERROR): S.RESPONDED,
    (S.RESPONDED, E.NEXT): S.READY,
}
# A process can end at any moment, whatever it was doing.
for _state in RuntimeState:
    if _state is not S.EXITED:
        TRANSITIONS[(_state, E.EXIT)] = S.EXITED


class RuntimeMachine:
    """The current state of one runtime process, advanced only through the table."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = RuntimeState.INITIALIZING

    def can(self, event: RuntimeEvent) -> bool:
        return (self.state, event) in TRANSITIONS

    def advance(self, event: RuntimeEvent) -> RuntimeState:
        """Apply ``event``; raise ``InvalidStateTransition`` if the table has no such move."""
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise InvalidStateTransition(self.state.value, event.value) from None
        return self.state

    def __repr__(self) -> str:
        return f"<RuntimeMachine {self.state.value}>"
