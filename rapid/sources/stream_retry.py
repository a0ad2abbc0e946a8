"""A Kinesis shard's batch after the function answered: checkpoint, retry, bisect, give up.
Pure: the clock is passed in.

One batch per shard runs at a time, in order. After each attempt ``settle`` returns a
``Plan``: the sequence number the shard's checkpoint moves to (everything up to it is done),
the attempts to run next, in order and before reading further, and the records given up on
(for the OnFailure destination, with AWS's condition).

=============================  ================================================================
the attempt                    the plan
=============================  ================================================================
succeeded                      checkpoint at its last record
partial (batchItemFailures)    checkpoint just before the lowest failed sequence number; the
                               records from there are retried as one batch (with bisecting
                               on, Lambda splits at that sequence number, which is the same)
failed, retries left           bisect on and more than one record: two halves, in order;
                               otherwise the same records again
failed, retries exhausted      given up (``RetryAttemptsExhausted``), checkpoint at its end
=============================  ================================================================

A retry counts one against ``MaximumRetryAttempts`` (-1: no limit), a bisect included; the
halves carry the count on. ``expire`` runs before an attempt: records older than
``MaximumRecordAgeInSeconds`` (-1: no limit) are given up (``RecordAgeExceeded``) and the
checkpoint moves past them. A checkpoint never moves back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rapid.sources.responses import Outcome
from rapid.streams.kinesis import Record


@dataclass(frozen=True, slots=True)
class Policy:
    bisect: bool = False
    max_retries: int = -1  # MaximumRetryAttempts
    max_age: int = -1  # MaximumRecordAgeInSeconds


@dataclass(slots=True)
class Attempt:
    records: list[Record]
    retries: int = 0  # retries already spent on these records

    def __repr__(self) -> str:
        return f"<Attempt {len(self.records)} records, {self.retries} retries>"


@dataclass(slots=True)
class Plan:
    checkpoint: int | None = None
    next: list[Attempt] = field(default_factory=list)
    given_up: list[tuple[list[Record], str]] = field(default_factory=list)  # (records, condition)


def check_policy(bisect: object, max_retries: int | None, max_age: int | None) -> Policy:
    retries = -1 if max_retries is None else max_retries
    age = -1 if max_age is None else max_age
    if not (retries == -1 or 0 <= retries <= 10000):
        raise ValueError("MaximumRetryAttempts must be -1 or between 0 and 10000.")
    if not (age == -1 or 60 <= age <= 604800):
        raise ValueError("MaximumRecordAgeInSeconds must be -1 or between 60 and 604800.")
    return Policy(bool(bisect), retries, age)


def expire(policy: Policy, attempt: Attempt, now: float) -> tuple[Attempt | None, Plan]:
    """Give up the records past the maximum age; what is left to attempt."""
    plan = Plan()
    if policy.max_age < 0:
        return attempt, plan
    # records are in arrival order: the old ones are a prefix
    n = 0
    while n < len(attempt.records) and now - attempt.records[n].arrival > policy.max_age:
        n += 1
    if not n:
        return attempt, plan
    old, keep = attempt.records[:n], attempt.records[n:]
    plan.given_up.append((old, "RecordAgeExceeded"))
    plan.checkpoint = old[-1].seq
    return (Attempt(keep, attempt.retries) if keep else None), plan


def settle(policy: Policy, attempt: Attempt, outcome: Outcome) -> Plan:
    records = attempt.records
    if outcome.kind == "success":
        return Plan(checkpoint=records[-1].seq)
    plan = Plan()
    failing = records
    bisectable = policy.bisect
    if outcome.kind == "partial":
        lowest = min(int(s) for s in outcome.failed)
        index = next(i for i, r in enumerate(records) if r.seq == lowest)
        if index:
            plan.checkpoint = records[index - 1].seq
        failing = records[index:]
        bisectable = False  # split at the returned sequence number: only the rest is retried
    spent = attempt.retries + 1
    if policy.max_retries >= 0 and spent > policy.max_retries:
        plan.given_up.append((failing, "RetryAttemptsExhausted"))
        plan.checkpoint = failing[-1].seq
        return plan
    if bisectable and len(failing) > 1:
        half = len(failing) // 2
        plan.next = [Attempt(failing[:half], spent), Attempt(failing[half:], spent)]
    else:
        plan.next = [Attempt(failing, spent)]
    return plan
