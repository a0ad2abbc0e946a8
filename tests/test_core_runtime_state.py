"""The Runtime API state machine of one runtime process: every (state, event) pair."""

from __future__ import annotations

import itertools

import pytest

from rapid.core.errors import InvalidStateTransition, RuntimeAPIError
from rapid.core.runtime_state import RuntimeEvent as E
from rapid.core.runtime_state import RuntimeMachine
from rapid.core.runtime_state import RuntimeState as S

# Written out by hand from the module's theory of operation, not read back from TRANSITIONS:
#   (spawned) --next--> Ready --dispatch--> Invoking --response|error--> Responded --next--> Ready
#   (spawned) --init/error--> InitFailed; exit from anywhere but Exited, and Exited is final.
EXPECTED = {
    (S.INITIALIZING, E.NEXT): S.READY,
    (S.INITIALIZING, E.INIT_ERROR): S.INIT_FAILED,
    (S.INITIALIZING, E.EXIT): S.EXITED,
    (S.READY, E.DISPATCH): S.INVOKING,
    (S.READY, E.EXIT): S.EXITED,
    (S.INVOKING, E.RESPONSE): S.RESPONDED,
    (S.INVOKING, E.ERROR): S.RESPONDED,
    (S.INVOKING, E.EXIT): S.EXITED,
    (S.RESPONDED, E.NEXT): S.READY,
    (S.RESPONDED, E.EXIT): S.EXITED,
    (S.INIT_FAILED, E.EXIT): S.EXITED,
}
# The RIE's names (core/states.go and the names of the states a call asks to enter), written
# out as literals: a 403's text must not be built from the enum it is testing.
STATE_NAME = {
    S.INITIALIZING: "Started",
    S.READY: "Ready",
    S.INVOKING: "Running",
    S.RESPONDED: "RuntimeResponseSentState",
    S.INIT_FAILED: "InitError",
    S.EXITED: "Exited",
}
TARGET_NAME = {
    E.NEXT: "Ready",
    E.DISPATCH: "Running",
    E.RESPONSE: "RuntimeResponseSentState",
    E.ERROR: "InvocationErrorResponse",
    E.INIT_ERROR: "InitError",
    E.EXIT: "Exited",
}
ALL_PAIRS = list(itertools.product(S, E))
LEGAL = [p for p in ALL_PAIRS if p in EXPECTED]
ILLEGAL = [p for p in ALL_PAIRS if p not in EXPECTED]

# How a real runtime reaches each state from a fresh process.
PATH_TO = {
    S.INITIALIZING: [],
    S.READY: [E.NEXT],
    S.INVOKING: [E.NEXT, E.DISPATCH],
    S.RESPONDED: [E.NEXT, E.DISPATCH, E.RESPONSE],
    S.INIT_FAILED: [E.INIT_ERROR],
    S.EXITED: [E.EXIT],
}


def machine_in(state: S) -> RuntimeMachine:
    m = RuntimeMachine()
    for event in PATH_TO[state]:
        m.advance(event)
    assert m.state is state
    return m


def _id(pair: tuple[S, E]) -> str:
    return f"{pair[0].name}-{pair[1].name}"


def test_pair_counts() -> None:
    # 6 states x 6 events; 11 legal moves. Guards against the enums growing unnoticed.
    assert len(ALL_PAIRS) == 36
    assert len(LEGAL) == 11
    assert len(ILLEGAL) == 25


def test_every_state_and_event_has_its_rie_name() -> None:
    assert set(STATE_NAME) == set(S) and set(TARGET_NAME) == set(E)


def test_new_machine_is_initializing() -> None:
    m = RuntimeMachine()
    assert m.state is S.INITIALIZING
    assert repr(m) == "<RuntimeMachine Started>"


@pytest.mark.parametrize("pair", LEGAL, ids=_id)
def test_legal_transition(pair: tuple[S, E]) -> None:
    state, event = pair
    m = machine_in(state)
    assert m.can(event)
    assert m.advance(event) is EXPECTED[pair]
    assert m.state is EXPECTED[pair]


@pytest.mark.parametrize("pair", ILLEGAL, ids=_id)
def test_illegal_transition_is_403_and_changes_nothing(pair: tuple[S, E]) -> None:
    state, event = pair
    m = machine_in(state)
    assert not m.can(event)
    with pytest.raises(InvalidStateTransition) as info:
        m.advance(event)
    err = info.value
    assert isinstance(err, RuntimeAPIError)
    assert err.status == 403
    assert err.error_type == "InvalidStateTransition"
    expected_message = (
        f"State transition from {STATE_NAME[state]} to {TARGET_NAME[event]} failed for runtime. "
        "Error: State transition is not allowed"
    )
    assert err.message == expected_message
    assert err.body() == {"errorMessage": expected_message, "errorType": "InvalidStateTransition"}
    assert m.state is state
    # ...and the machine still works afterwards: the process can always end.
    if state is not S.EXITED:
        assert m.advance(E.EXIT) is S.EXITED


@pytest.mark.parametrize(
    "state, event, message",
    [
        # The two 403s a runtime commonly meets, worded exactly as the RIE words them.
        (S.READY, E.INIT_ERROR,
         "State transition from Ready to InitError failed for runtime. Error: State transition is not allowed"),
        (S.INIT_FAILED, E.NEXT,
         "State transition from InitError to Ready failed for runtime. Error: State transition is not allowed"),
    ],
)
def test_rie_wording_literal(state: S, event: E, message: str) -> None:
    with pytest.raises(InvalidStateTransition) as info:
        machine_in(state).advance(event)
    assert info.value.message == message


def test_init_error_while_invoking_names_the_rie_state() -> None:
    # The RIE calls the state of a runtime that holds an event "Running"
    # (core/states.go: RuntimeRunningStateName = "Running"), and the module claims to word
    # 403s as the RIE does. A runtime posting /init/error mid-invoke is told:
    with pytest.raises(InvalidStateTransition) as info:
        machine_in(S.INVOKING).advance(E.INIT_ERROR)
    assert info.value.message == (
        "State transition from Running to InitError failed for runtime. "
        "Error: State transition is not allowed"
    )


def test_happy_path_many_invokes() -> None:
    m = RuntimeMachine()
    seen = [m.advance(E.NEXT)]
    for i in range(5):
        seen.append(m.advance(E.DISPATCH))
        seen.append(m.advance(E.RESPONSE if i % 2 == 0 else E.ERROR))
        seen.append(m.advance(E.NEXT))
    seen.append(m.advance(E.EXIT))
    assert seen == [S.READY] + [S.INVOKING, S.RESPONDED, S.READY] * 5 + [S.EXITED]


def test_init_failure_path() -> None:
    m = RuntimeMachine()
    assert m.advance(E.INIT_ERROR) is S.INIT_FAILED
    for event in E:
        if event is not E.EXIT:
            with pytest.raises(InvalidStateTransition):
                m.advance(event)
            assert m.state is S.INIT_FAILED
    assert m.advance(E.EXIT) is S.EXITED


@pytest.mark.parametrize("state", [s for s in S if s is not S.EXITED], ids=lambda s: s.name)
def test_exit_from_every_live_state_is_final(state: S) -> None:
    m = machine_in(state)
    assert m.advance(E.EXIT) is S.EXITED
    for event in E:
        assert not m.can(event)
        with pytest.raises(InvalidStateTransition) as info:
            m.advance(event)
        assert info.value.message.startswith(f"State transition from Exited to {TARGET_NAME[event]} failed")
        assert m.state is S.EXITED


def test_double_response_is_refused() -> None:
    m = machine_in(S.RESPONDED)
    for event in (E.RESPONSE, E.ERROR, E.DISPATCH, E.INIT_ERROR):
        with pytest.raises(InvalidStateTransition):
            m.advance(event)
        assert m.state is S.RESPONDED
