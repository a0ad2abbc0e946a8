"""One invocation, from the invoker's request to its answer.

Theory of operation
-------------------
::

    Queued --dispatch--> Running --respond--> Succeeded
       |                    |----fail------> Failed      (function error, crash, oversize)
       |                    '----time_out--> TimedOut
       |--fail----> Failed        (init failed, shutting down)
       '--time_out--> TimedOut    (a suppressed init used the whole timeout)

An invocation is *settled* once it reaches a final state; settling happens exactly once
(the table has no move out of a final state), so an event is never answered twice, however
the runtime, the timer and the process reaper race. The outcome is handed to
``on_settled``, a callback the async layer sets: the core never touches a future.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass, field

from rapid.core.errors import FunctionError, ServiceError


class InvocationState(enum.Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's own hash is Python code

    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"


class InvocationEvent(enum.Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's own hash is Python code

    DISPATCH = "dispatch"
    RESPOND = "respond"
    FAIL = "fail"
    TIME_OUT = "time_out"


_Q, _R = InvocationState.QUEUED, InvocationState.RUNNING
TRANSITIONS: dict[tuple[InvocationState, InvocationEvent], InvocationState] = {
    (_Q, InvocationEvent.DISPATCH): _R,
    (_Q, InvocationEvent.FAIL): InvocationState.FAILED,
    (_Q, InvocationEvent.TIME_OUT): InvocationState.TIMED_OUT,
    (_R, InvocationEvent.RESPOND): InvocationState.SUCCEEDED,
    (_R, InvocationEvent.FAIL): InvocationState.FAILED,
    (_R, InvocationEvent.TIME_OUT): InvocationState.TIMED_OUT,
}
FINAL = frozenset({InvocationState.SUCCEEDED, InvocationState.FAILED, InvocationState.TIMED_OUT})


class IllegalInvocationTransition(Exception):
    pass


@dataclass(slots=True)
class Outcome:
    """What the invoker is told: the body, and whether it is a function error."""

    body: bytes
    content_type: str = "application/json"
    function_error: bool = False
    # For the REPORT line: success | error | timeout, and the normalised error type.
    status: str = "success"
    error_type: str | None = None
    # Set when the invocation never ran and the invoker gets a service error instead
    # (the daemon is shutting down): rendered as AWS renders its own errors.
    service_error: ServiceError | None = None
    produced: int | None = None  # bytes the runtime sent, when the body went on as a stream


@dataclass(slots=True, eq=False)
class Invocation:
    request_id: str
    payload: bytes
    function_arn: str  # the ARN as invoked (carries the qualifier when one was given)
    timeout: float  # seconds
    trace_id: str
    client_context: str | None = None
    cognito_identity: str | None = None
    tail_log: bool = False
    state: InvocationState = InvocationState.QUEUED
    deadline_epoch_ms: int = 0  # the same instant on the wall clock, for the runtime
    started: float = 0.0  # monotonic, when the invoke phase began (dispatch or suppressed init)
    outcome: Outcome | None = None
    log_lines: list[str] | None = None  # kept only when the invoker asked for the log tail
    # InvokeWithResponseStream: where a streaming runtime's bytes go as they arrive
    # (``begin(content_type, pause, resume)``, ``chunk(bytes)``); None: answered whole.
    stream: Any = field(default=None, repr=False)
    on_settled: Callable[[Invocation], None] | None = field(default=None, repr=False)

    def advance(self, event: InvocationEvent) -> InvocationState:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise IllegalInvocationTransition(f"{self.state.value} --{event.value}-->") from None
        return self.state

    @property
    def settled(self) -> bool:
        return self.state in FINAL

    def settle(self, event: InvocationEvent, outcome: Outcome) -> bool:
        """Move to a final state with ``outcome``; False (and nothing done) if already final."""
        if self.state in FINAL:
            return False
        if TRANSITIONS.get((self.state, event)) not in FINAL:
            raise IllegalInvocationTransition(f"{event.value} does not settle a {self.state.value} invocation")
        self.advance(event)
        self.outcome = outcome
        if self.on_settled is not None:
            self.on_settled(self)
        return True

    def __repr__(self) -> str:
        return f"<Invocation {self.request_id} {self.state.value}>"


def success(body: bytes, content_type: str | None) -> Outcome:
    return Outcome(body, content_type or "application/json")


def function_failure(
    body: bytes, error_type: str, status: str = "error", content_type: str = "application/json"
) -> Outcome:
    return Outcome(body, content_type, True, status, error_type)


def platform_failure(error: FunctionError, request_id: str, encode: Callable[[object], bytes]) -> Outcome:
    """An error the platform detected (timeout, crash, entrypoint), rendered as AWS does."""
    return Outcome(encode(error.body(request_id)), "application/json", True, error.status, error.error_type)
