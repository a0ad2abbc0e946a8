"""Answers rendered from a template (``Response.wire``) are the bytes the generic
renderer makes from their headers: the ``/next`` answer and the Invoke answer."""

from __future__ import annotations

import pytest

from rapid.api.invoke import _answer
from rapid.api.runtime import next_response
from rapid.core.invocation import Invocation, function_failure, success
from rapid.http.message import JOINED_BODY


def _invocation(payload: bytes = b'{"a":1}', **extra: object) -> Invocation:
    inv = Invocation(request_id="8c3b5f0e-9e2d-4a3b-8f1e-0d6c2b7a9e41", payload=payload,
                     function_arn="arn:aws:lambda:us-east-1:000000000000:function:fn", timeout=3.0,
                     trace_id="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
                     **extra)  # type: ignore[arg-type]
    inv.deadline_epoch_ms = 1764000000123
    return inv


@pytest.mark.parametrize("payload", [b"{}", b'{"a":1}', b"x" * 5000])
def test_next_answer_template_is_the_generic_rendering(payload: bytes) -> None:
    resp = next_response(_invocation(payload))
    assert resp.wire is not None
    assert resp.wire == resp.head(True) + resp.body
    assert b"Lambda-Runtime-Deadline-Ms: 1764000000123\r\n" in resp.wire


def test_next_answer_with_identity_or_a_large_event_is_rendered_generically() -> None:
    resp = next_response(_invocation(client_context='{"custom":{"k":"v"}}', cognito_identity='{"id":"x"}'))
    assert resp.wire is None
    names = [name for name, _ in resp.headers]
    assert names[-2:] == ["Lambda-Runtime-Client-Context", "Lambda-Runtime-Cognito-Identity"]
    assert next_response(_invocation(b"x" * JOINED_BODY)).wire is None  # written beside its head


@pytest.mark.parametrize("outcome", [success(b'{"ok":true}', None), function_failure(b'{"errorType":"E"}', "E")])
def test_invoke_answer_template_is_the_generic_rendering(outcome) -> None:
    inv = _invocation()
    inv.outcome = outcome
    resp = _answer(inv, "$LATEST")
    assert resp.wire is not None and resp.wire == resp.head(True) + resp.body
    assert (b"X-Amz-Function-Error: Unhandled\r\n" in resp.wire) == outcome.function_error


def test_invoke_answer_with_a_log_tail_is_rendered_generically() -> None:
    inv = _invocation(tail_log=True)
    inv.log_lines = ["START RequestId: x", "hello"]
    inv.outcome = success(b"{}", None)
    resp = _answer(inv, "1")
    assert resp.wire is None
    assert dict(resp.headers)["X-Amz-Log-Result"]
