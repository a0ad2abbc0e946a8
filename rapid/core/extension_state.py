"""The Extensions API (2020-01-01) rules: one extension's rhythm, and what a register says.

Theory of operation
-------------------
An extension talks to its Runtime API in a rhythm much like a runtime's::

    Launched --register--> Registered --next--> Ready --deliver--> Running --next--> Ready ...
                               |                  \\______________________/
                               '--init/error--> InitError      --exit/error--> ExitError

*Launched* is an external extension (an executable in ``/opt/extensions``) whose process
runs but has not registered; an internal one (registered from the runtime's own process)
starts at *Registered*. ``next`` parks the extension until an event is *delivered*; its next
``next`` says it is done with that event. After ``init/error`` or ``exit/error`` no call
succeeds any more. ``exit`` (the process ended) is legal from every state and is final.

The instance's phases are questions asked of all its machines at once (``init_ready``,
``invoke_done``); the instance carries them out. Register's validation is here too: the
events a body may name, the limit of 10, the names. No I/O, no clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from rapid.core.errors import RuntimeAPIError

MAX_EXTENSIONS = 10  # per function, enforced at register (RIE: MaxAgentsAllowed)
EVENT_TYPES = ("INVOKE", "SHUTDOWN")
# Shutdown budgets (ms): with an external extension, only internal ones.
SHUTDOWN_EXTERNAL_MS = 2000
SHUTDOWN_INTERNAL_MS = 500
RUNTIME_SHUTDOWN_SHARE = 0.3  # the runtime's share of the budget after SIGTERM (RIE)


class ExtensionState(enum.Enum):
    __hash__ = object.__hash__

    LAUNCHED = "Launched"
    REGISTERED = "Registered"
    READY = "Ready"
    RUNNING = "Running"
    INIT_ERROR = "InitError"
    EXIT_ERROR = "ExitError"
    EXITED = "Exited"


class ExtensionEvent(enum.Enum):
    __hash__ = object.__hash__

    REGISTER = "register"
    NEXT = "next"
    DELIVER = "deliver"
    INIT_ERROR = "init/error"
    EXIT_ERROR = "exit/error"
    EXIT = "exit"


S, E = ExtensionState, ExtensionEvent

TRANSITIONS: dict[tuple[ExtensionState, ExtensionEvent], ExtensionState] = {
    (S.LAUNCHED, E.REGISTER): S.REGISTERED,
    (S.REGISTERED, E.NEXT): S.READY,
    (S.READY, E.NEXT): S.READY,  # polling again after its connection dropped
    (S.READY, E.DELIVER): S.RUNNING,
    (S.RUNNING, E.NEXT): S.READY,
    (S.REGISTERED, E.INIT_ERROR): S.INIT_ERROR,
    (S.READY, E.INIT_ERROR): S.INIT_ERROR,
    (S.RUNNING, E.INIT_ERROR): S.INIT_ERROR,
    (S.REGISTERED, E.EXIT_ERROR): S.EXIT_ERROR,
    (S.READY, E.EXIT_ERROR): S.EXIT_ERROR,
    (S.RUNNING, E.EXIT_ERROR): S.EXIT_ERROR,
}
for _state in ExtensionState:
    if _state is not S.EXITED:
        TRANSITIONS[(_state, E.EXIT)] = S.EXITED


def invalid_state(name: str, state: ExtensionState, event: ExtensionEvent) -> RuntimeAPIError:
    return RuntimeAPIError(
        403, "Extension.InvalidExtensionState",
        f"State transition from {state.value} to {event.value} failed for extension {name}",
    )


class ExtensionMachine:
    """The current state of one extension, advanced only through the table."""

    __slots__ = ("name", "state")

    def __init__(self, name: str, internal: bool) -> None:
        self.name = name
        self.state = S.REGISTERED if internal else S.LAUNCHED

    def can(self, event: ExtensionEvent) -> bool:
        return (self.state, event) in TRANSITIONS

    def advance(self, event: ExtensionEvent) -> ExtensionState:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise invalid_state(self.name, self.state, event) from None
        return self.state

    @property
    def failed(self) -> bool:
        return self.state in (S.INIT_ERROR, S.EXIT_ERROR)

    def __repr__(self) -> str:
        return f"<ExtensionMachine {self.name} {self.state.value}>"


# -- the phases, asked of every machine ---------------------------------------------------

def init_ready(machines: Iterable[ExtensionMachine]) -> bool:
    """Init's extension half is over: every extension launched or registered called next."""
    return all(m.state is S.READY for m in machines)


def invoke_done(machines: Iterable[tuple[ExtensionMachine, bool]]) -> bool:
    """An invocation's extension half is over: every INVOKE subscriber is back at next.
    ``machines`` pairs each machine with whether it holds this invocation's event."""
    return all(not holding for _m, holding in machines)


def shutdown_budget_ms(externals: int, internals: int) -> int:
    if externals:
        return SHUTDOWN_EXTERNAL_MS
    if internals:
        return SHUTDOWN_INTERNAL_MS
    return 0


# -- register -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Registration:
    name: str
    events: tuple[str, ...]
    account_id: bool  # Lambda-Extension-Accept-Feature: accountId


class _RegisterBody(msgspec.Struct):
    events: list[str] = []


def _forbidden(error_type: str, message: str) -> RuntimeAPIError:
    return RuntimeAPIError(403, error_type, message)


def parse_register(
    name: str | None, body: bytes, accept_feature: str | None, *, registered: int, closed: bool, internal: bool
) -> Registration:
    """What a ``POST /extension/register`` asks, or the 4xx AWS answers it with."""
    if closed:
        raise _forbidden("Extension.RegistrationClosed", "Extension registration closed already")
    if not name:
        raise _forbidden("Extension.InvalidExtensionName", "Empty extension name")
    if registered >= MAX_EXTENSIONS:
        raise _forbidden("Extension.TooManyExtensions", f"Extension limit ({MAX_EXTENSIONS}) reached")
    try:
        parsed = msgspec.json.decode(body or b"{}", type=_RegisterBody)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RuntimeAPIError(400, "InvalidRequestFormat", str(exc)) from None
    events: list[str] = []
    for event in parsed.events:
        if event not in EVENT_TYPES:
            raise _forbidden("Extension.InvalidEventType", f"Invalid event type: {event}")
        if event not in events:
            events.append(event)
    if internal and "SHUTDOWN" in events:
        raise _forbidden(
            "Extension.InvalidEventType", "Internal extensions are not permitted to register for the SHUTDOWN event"
        )
    features = {f.strip() for f in (accept_feature or "").split(",")}
    return Registration(name, tuple(events), "accountId" in features)


def extension_line(name: str, state: str, events: Iterable[str]) -> str:
    """The platform's text line for an extension (``EXTENSION Name: … State: … Events: […]``)."""
    return f"EXTENSION\tName: {name}\tState: {state}\tEvents: [{', '.join(events)}]"


def missing_identifier() -> RuntimeAPIError:
    return _forbidden("Extension.MissingExtensionIdentifier", "Missing Lambda-Extension-Identifier header")


def invalid_identifier() -> RuntimeAPIError:
    return _forbidden("Extension.InvalidExtensionIdentifier", "Invalid Lambda-Extension-Identifier")


def unknown_identifier(ident: str) -> RuntimeAPIError:
    return _forbidden("Extension.UnknownExtensionIdentifier", f"Unknown extension {ident}")
