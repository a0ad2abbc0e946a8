"""The extension rhythm and register's rules, with no process and no socket."""

import pytest

from rapid.core.errors import RuntimeAPIError
from rapid.core.extension_state import (
    MAX_EXTENSIONS,
    TRANSITIONS,
    ExtensionEvent as E,
    ExtensionMachine,
    ExtensionState as S,
    extension_line,
    init_ready,
    parse_register,
    shutdown_budget_ms,
)


def test_external_rhythm():
    m = ExtensionMachine("agent", internal=False)
    assert m.state is S.LAUNCHED
    for event, state in [(E.REGISTER, S.REGISTERED), (E.NEXT, S.READY), (E.DELIVER, S.RUNNING),
                         (E.NEXT, S.READY), (E.DELIVER, S.RUNNING), (E.EXIT, S.EXITED)]:
        assert m.advance(event) is state


def test_internal_starts_registered():
    assert ExtensionMachine("x", internal=True).state is S.REGISTERED


@pytest.mark.parametrize("state,event", [
    (S.LAUNCHED, E.NEXT), (S.REGISTERED, E.REGISTER), (S.REGISTERED, E.DELIVER), (S.RUNNING, E.DELIVER),
    (S.INIT_ERROR, E.NEXT), (S.EXIT_ERROR, E.NEXT), (S.EXITED, E.NEXT), (S.EXITED, E.EXIT),
])
def test_illegal_moves_are_403(state, event):
    m = ExtensionMachine("agent", internal=False)
    m.state = state
    with pytest.raises(RuntimeAPIError) as info:
        m.advance(event)
    assert info.value.status == 403 and info.value.error_type == "Extension.InvalidExtensionState"
    assert m.state is state


def test_exit_is_legal_everywhere_but_exited():
    for state in S:
        assert ((state, E.EXIT) in TRANSITIONS) is (state is not S.EXITED)


def test_errors_end_the_conversation():
    m = ExtensionMachine("agent", internal=True)
    m.advance(E.INIT_ERROR)
    assert m.failed and not m.can(E.NEXT) and not m.can(E.EXIT_ERROR)


def test_init_ready_needs_every_extension_at_next():
    a, b = ExtensionMachine("a", False), ExtensionMachine("b", True)
    assert init_ready([])
    a.advance(E.REGISTER)
    a.advance(E.NEXT)
    assert not init_ready([a, b])
    b.advance(E.NEXT)
    assert init_ready([a, b])


def test_shutdown_budgets():
    assert shutdown_budget_ms(0, 0) == 0
    assert shutdown_budget_ms(0, 2) == 500
    assert shutdown_budget_ms(1, 2) == 2000


def _register(**kw):
    args = dict(name="agent", body=b'{"events":["INVOKE","SHUTDOWN"]}', accept_feature=None, registered=0,
                closed=False, internal=False)
    args.update(kw)
    return parse_register(args.pop("name"), args.pop("body"), args.pop("accept_feature"), **args)


def test_register_parses_events_and_features():
    reg = _register(accept_feature="foo, accountId")
    assert reg.events == ("INVOKE", "SHUTDOWN") and reg.account_id
    assert _register(body=b"").events == ()
    assert _register(body=b'{"events":["INVOKE","INVOKE"]}').events == ("INVOKE",)


@pytest.mark.parametrize("kw,status,error_type", [
    ({"closed": True}, 403, "Extension.RegistrationClosed"),
    ({"name": ""}, 403, "Extension.InvalidExtensionName"),
    ({"registered": MAX_EXTENSIONS}, 403, "Extension.TooManyExtensions"),
    ({"body": b'{"events":["BOOT"]}'}, 403, "Extension.InvalidEventType"),
    ({"body": b'{"events":"INVOKE"}'}, 400, "InvalidRequestFormat"),
    ({"body": b"not json"}, 400, "InvalidRequestFormat"),
    ({"internal": True}, 403, "Extension.InvalidEventType"),  # internal: no SHUTDOWN
])
def test_register_refusals(kw, status, error_type):
    with pytest.raises(RuntimeAPIError) as info:
        _register(**kw)
    assert (info.value.status, info.value.error_type) == (status, error_type)


def test_extension_line():
    assert extension_line("agent", "Ready", ["INVOKE"]) == "EXTENSION\tName: agent\tState: Ready\tEvents: [INVOKE]"
