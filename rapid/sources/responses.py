"""A function's answer to a batch, read as Lambda reads it. Pure.

Without ``ReportBatchItemFailures`` a batch succeeds unless the function errs. With it, the
answer is ``{"batchItemFailures": [{"itemIdentifier": id}, ...]}`` (a message id for SQS, a
sequence number for Kinesis), and AWS's rules apply:

=====================================================  ========================
the function answered                                  the batch
=====================================================  ========================
an error (``X-Amz-Function-Error``)                    fails whole
nothing, ``null``, ``{}``, ``batchItemFailures`` null  succeeds
``batchItemFailures: []``                              succeeds
failures naming records of the batch                   those records fail
a body that is not JSON, or JSON but not an object     fails whole
an ``itemIdentifier`` that is null, empty, not a
string, or not one of the batch's; an entry without
the ``itemIdentifier`` key (a bad key name)            fails whole
=====================================================  ========================

``sqs_settle`` says which messages to delete; a Kinesis checkpoint comes from
``stream_retry``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["success", "failure", "partial"]


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    failed: tuple[str, ...] = ()  # for "partial": the identifiers, in the batch's order
    reason: str = ""  # why a whole batch failed

    def __repr__(self) -> str:
        return f"<Outcome {self.kind} {list(self.failed) if self.failed else self.reason}>"


SUCCESS = Outcome("success")


def interpret(body: bytes | None, *, function_error: bool, report_failures: bool, ids: Sequence[str]) -> Outcome:
    if function_error:
        return Outcome("failure", reason="the function returned an error")
    if not report_failures or body is None or not body.strip():
        return SUCCESS
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Outcome("failure", reason="the response is not valid JSON")
    if answer is None:
        return SUCCESS
    if not isinstance(answer, dict):
        return Outcome("failure", reason="the response is not a JSON object")
    failures = answer.get("batchItemFailures")
    if failures is None:
        return SUCCESS
    if not isinstance(failures, list):
        return Outcome("failure", reason="batchItemFailures is not a list")
    known = set(ids)
    named: set[str] = set()
    for entry in failures:
        if not isinstance(entry, dict) or "itemIdentifier" not in entry:
            return Outcome("failure", reason="a batchItemFailures entry has no itemIdentifier")
        ident = entry["itemIdentifier"]
        if not isinstance(ident, str) or not ident:
            return Outcome("failure", reason="an itemIdentifier is null or empty")
        if ident not in known:
            return Outcome("failure", reason=f"the itemIdentifier {ident!r} is not in the batch")
        named.add(ident)
    if not named:
        return SUCCESS
    return Outcome("partial", tuple(i for i in ids if i in named))


def sqs_settle(outcome: Outcome, ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """(messages to delete, messages left to come back after their visibility timeout)."""
    if outcome.kind == "success":
        return list(ids), []
    if outcome.kind == "failure":
        return [], list(ids)
    failed = set(outcome.failed)
    return [i for i in ids if i not in failed], [i for i in ids if i in failed]
