"""One invocation's life: its transition table and exactly-once settling."""

from __future__ import annotations

import itertools
import json

import msgspec
import pytest

from rapid.core.errors import (
    FunctionError,
    response_too_large,
    runtime_exited,
    shutting_down,
    timed_out,
)
from rapid.core.invocation import (
    IllegalInvocationTransition,
    Invocation,
    Outcome,
    function_failure,
    platform_failure,
    success,
)
from rapid.core.invocation import InvocationEvent as Ev
from rapid.core.invocation import InvocationState as St

encode = msgspec.json.Encoder().encode  # what the host hands platform_failure

RID = "f83d9f5b-91c2-46ef-8f27-956c2efb047a"

# Written by hand from the module docstring.
EXPECTED = {
    (St.QUEUED, Ev.DISPATCH): St.RUNNING,
    (St.QUEUED, Ev.FAIL): St.FAILED,
    (St.QUEUED, Ev.TIME_OUT): St.TIMED_OUT,
    (St.RUNNING, Ev.RESPOND): St.SUCCEEDED,
    (St.RUNNING, Ev.FAIL): St.FAILED,
    (St.RUNNING, Ev.TIME_OUT): St.TIMED_OUT,
}
FINAL = [St.SUCCEEDED, St.FAILED, St.TIMED_OUT]
SETTLING = [Ev.RESPOND, Ev.FAIL, Ev.TIME_OUT]
ALL_PAIRS = list(itertools.product(St, Ev))
PATH_TO = {
    St.QUEUED: [],
    St.RUNNING: [Ev.DISPATCH],
    St.SUCCEEDED: [Ev.DISPATCH, Ev.RESPOND],
    St.FAILED: [Ev.FAIL],
    St.TIMED_OUT: [Ev.TIME_OUT],
}


def make(**kw) -> Invocation:
    base = {
        "request_id": RID,
        "payload": b"{}",
        "function_arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
        "timeout": 3.0,
        "trace_id": "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
    }
    base.update(kw)
    return Invocation(**base)


def inv_in(state: St, **kw) -> Invocation:
    inv = make(**kw)
    for event in PATH_TO[state]:
        inv.advance(event)
    assert inv.state is state
    return inv


def _id(pair) -> str:
    return f"{pair[0].name}-{pair[1].name}"


def test_new_invocation() -> None:
    inv = make()
    assert inv.state is St.QUEUED
    assert not inv.settled
    assert inv.outcome is None
    assert repr(inv) == f"<Invocation {RID} Queued>"


def test_table_size() -> None:
    assert len(ALL_PAIRS) == 20
    assert sum(p in EXPECTED for p in ALL_PAIRS) == 6


@pytest.mark.parametrize("pair", [p for p in ALL_PAIRS if p in EXPECTED], ids=_id)
def test_legal(pair) -> None:
    state, event = pair
    inv = inv_in(state)
    assert inv.advance(event) is EXPECTED[pair]
    assert inv.state is EXPECTED[pair]
    assert inv.settled == (EXPECTED[pair] in FINAL)


@pytest.mark.parametrize("pair", [p for p in ALL_PAIRS if p not in EXPECTED], ids=_id)
def test_illegal(pair) -> None:
    state, event = pair
    inv = inv_in(state)
    with pytest.raises(IllegalInvocationTransition) as info:
        inv.advance(event)
    assert state.value in str(info.value) and event.value in str(info.value)
    assert inv.state is state


@pytest.mark.parametrize("state", FINAL, ids=lambda s: s.name)
def test_final_states_have_no_way_out(state: St) -> None:
    inv = inv_in(state)
    assert inv.settled
    for event in Ev:
        with pytest.raises(IllegalInvocationTransition):
            inv.advance(event)
        assert inv.state is state


# -- settle -------------------------------------------------------------------------------

class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Invocation, St, Outcome | None]] = []

    def __call__(self, inv: Invocation) -> None:
        # Record what the callback sees at the moment it runs.
        self.calls.append((inv, inv.state, inv.outcome))


SETTLE_FROM = [(St.QUEUED, Ev.FAIL), (St.QUEUED, Ev.TIME_OUT)] + [(St.RUNNING, e) for e in SETTLING]


@pytest.mark.parametrize("start, event", SETTLE_FROM, ids=lambda x: x.name)
def test_settle_once_calls_back_with_the_invocation(start: St, event: Ev) -> None:
    rec = Recorder()
    inv = inv_in(start, on_settled=rec)
    outcome = Outcome(b"first")
    assert inv.settle(event, outcome) is True
    assert inv.settled
    assert inv.state is EXPECTED[(start, event)]
    assert inv.outcome is outcome
    # Called exactly once, with the invocation itself, already final and carrying the outcome.
    assert rec.calls == [(inv, EXPECTED[(start, event)], outcome)]
    assert rec.calls[0][0] is inv


@pytest.mark.parametrize(
    "first, second",
    list(itertools.product(SETTLING, SETTLING)),
    ids=lambda e: e.name,
)
def test_second_settle_is_refused(first: Ev, second: Ev) -> None:
    # The runtime's answer, the timer and the reaper race; only the first one counts.
    rec = Recorder()
    inv = inv_in(St.RUNNING, on_settled=rec)
    winner = Outcome(b"winner")
    assert inv.settle(first, winner)
    state = inv.state
    loser = Outcome(b"loser", function_error=True, status="timeout")
    assert inv.settle(second, loser) is False
    assert inv.settle(second, loser) is False
    assert inv.state is state
    assert inv.outcome is winner
    assert len(rec.calls) == 1


def test_settle_without_callback() -> None:
    inv = inv_in(St.RUNNING)
    assert inv.settle(Ev.RESPOND, success(b"1", None))
    assert inv.state is St.SUCCEEDED
    assert not inv.settle(Ev.FAIL, success(b"2", None))
    assert inv.outcome.body == b"1"


def test_settle_respond_while_queued_is_illegal_and_does_nothing() -> None:
    rec = Recorder()
    inv = make(on_settled=rec)
    with pytest.raises(IllegalInvocationTransition):
        inv.settle(Ev.RESPOND, Outcome(b"x"))
    assert inv.state is St.QUEUED
    assert inv.outcome is None
    assert rec.calls == []
    # It can still be settled properly afterwards.
    assert inv.settle(Ev.FAIL, Outcome(b"", service_error=shutting_down()))
    assert len(rec.calls) == 1


def test_refused_while_queued_carries_the_service_error() -> None:
    inv = make()
    err = shutting_down()
    inv.settle(Ev.FAIL, Outcome(b"", service_error=err))
    assert inv.state is St.FAILED
    assert inv.outcome.service_error is err
    assert err.status == 503 and err.code == "ServiceException" and err.kind == "Service"


# -- outcomes -----------------------------------------------------------------------------

def test_success_outcome() -> None:
    o = success(b'{"a":1}', None)
    assert (o.body, o.content_type, o.function_error, o.status, o.error_type) == (
        b'{"a":1}', "application/json", False, "success", None)
    assert success(b"hi", "text/plain").content_type == "text/plain"
    assert success(b"", "").content_type == "application/json"


def test_function_failure_outcome() -> None:
    o = function_failure(b'{"errorType":"MyError"}', "Runtime.Unknown")
    assert (o.function_error, o.status, o.error_type, o.content_type) == (
        True, "error", "Runtime.Unknown", "application/json")
    assert o.service_error is None


def test_platform_failure_timeout_exact_bytes() -> None:
    o = platform_failure(timed_out(3.0), RID, encode)
    assert o.body == (
        b'{"errorType":"Sandbox.Timedout","errorMessage":"RequestId: '
        + RID.encode()
        + b' Error: Task timed out after 3.00 seconds"}'
    )
    assert o.function_error is True
    assert o.status == "timeout"
    assert o.error_type == "Sandbox.Timedout"
    assert o.content_type == "application/json"


@pytest.mark.parametrize("seconds, text", [(1, "1.00"), (600.1, "600.10"), (8.01, "8.01"), (900, "900.00")])
def test_timeout_seconds_have_two_decimals(seconds: float, text: str) -> None:
    body = json.loads(platform_failure(timed_out(seconds), "r", encode).body)
    assert body["errorMessage"] == f"RequestId: r Error: Task timed out after {text} seconds"


def test_platform_failure_runtime_crash_matches_aws() -> None:
    rid = "1d98e743-00c8-4535-ac8b-0d4c7f2ee4a3"
    o = platform_failure(runtime_exited(101), rid, encode)
    assert json.loads(o.body) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: exit status 101",
    }
    assert (o.status, o.error_type, o.function_error) == ("error", "Runtime.ExitError", True)


def test_platform_failure_oversize_has_no_request_id_prefix() -> None:
    o = platform_failure(response_too_large(), RID, encode)
    assert json.loads(o.body) == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
    }
    assert RID.encode() not in o.body
    assert o.error_type == "Function.ResponseSizeTooLarge"


def test_platform_failure_without_request_id() -> None:
    o = platform_failure(FunctionError("Runtime.InvalidEntrypoint", "boom"), "", encode)
    assert json.loads(o.body) == {"errorType": "Runtime.InvalidEntrypoint", "errorMessage": "Error: boom"}


def test_an_event_that_does_not_settle_says_so() -> None:
    inv = make()
    with pytest.raises(IllegalInvocationTransition) as info:
        inv.settle(Ev.DISPATCH, success(b"x", None))
    assert str(info.value) == "dispatch does not settle a Queued invocation"
    assert inv.state is St.QUEUED and inv.outcome is None


def test_function_failure_keeps_the_runtimes_body() -> None:
    out = function_failure(b'{"errorType":"E"}', "E")
    assert (out.body, out.content_type, out.function_error, out.status, out.error_type) == (
        b'{"errorType":"E"}', "application/json", True, "error", "E")
