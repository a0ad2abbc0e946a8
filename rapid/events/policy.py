"""What happens to an asynchronous event after an attempt: a pure decision.

No asyncio, no I/O, no clock: the caller passes ``now`` (epoch seconds) and the event's
counts, and carries the decision out. Lambda's rules [lambda-behaviour.md §9]:

- a **function error** (an error response, a timeout, a crash) is retried up to
  ``MaximumRetryAttempts`` times (0-2, default 2), one minute after the first attempt and two
  minutes after the second;
- a **throttle** (429) or a **system error** (5xx) returns the event to the queue and retries
  it with a backoff that grows exponentially from 1 second to 5 minutes, for as long as the
  event is younger than ``MaximumEventAgeInSeconds`` (60-21,600, default 21,600);
- with **reserved concurrency 0** a throttled event goes to the dead-letter queue / on-failure
  destination at once, without retries;
- an event older than its maximum age is not run again: it fails with ``EventAgeExceeded``.

A retry is never scheduled past the event's expiry: it is due at the earlier of the two, so
an event whose next retry lies beyond its maximum age is reported ``EventAgeExceeded`` when
it expires, not later.

``time_scale`` multiplies every delay and age (1.0, the default, is Lambda's timing; tests
use e.g. 0.01 so that a one-minute retry takes 0.6 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

RETRY_DELAYS = (60.0, 120.0)  # after the 1st and the 2nd function error
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0
DEFAULT_MAX_RETRY_ATTEMPTS = 2
DEFAULT_MAX_EVENT_AGE = 21600
RETRY_ATTEMPTS_RANGE = (0, 2)
EVENT_AGE_RANGE = (60, 21600)

SUCCESS: Final = "Success"
RETRIES_EXHAUSTED: Final = "RetriesExhausted"
EVENT_AGE_EXCEEDED: Final = "EventAgeExceeded"

# What an attempt came to, as the dispatcher classifies an invocation's outcome.
Result = Literal["success", "function_error", "throttled", "system_error", "interrupted"]


@dataclass(frozen=True, slots=True)
class Limits:
    """A function's async settings, as they apply to one event."""

    max_retry_attempts: int = DEFAULT_MAX_RETRY_ATTEMPTS
    max_event_age: float = DEFAULT_MAX_EVENT_AGE  # seconds, unscaled
    time_scale: float = 1.0

    def expires_at(self, enqueued_at: float) -> float:
        return enqueued_at + self.max_event_age * self.time_scale


@dataclass(frozen=True, slots=True)
class Succeed:
    """The function succeeded: on-success destination, then delete."""


@dataclass(frozen=True, slots=True)
class Retry:
    at: float  # epoch seconds when the event is due again
    reason: Literal["function_error", "throttled", "system_error"]
    errors: int  # function errors so far (after this attempt)
    throttles: int  # consecutive throttles/system errors so far (0 after a function error)


@dataclass(frozen=True, slots=True)
class GiveUp:
    condition: Literal["RetriesExhausted", "EventAgeExceeded"]


@dataclass(frozen=True, slots=True)
class Release:
    """The daemon is stopping and the attempt was cut short: the event goes back to the
    queue on disk untouched, for the next start."""


Decision = Succeed | Retry | GiveUp | Release


def classify(service_status: int | None, function_error: bool, stopping: bool) -> Result:
    """An invocation's outcome as the retry rules see it.

    ``service_status`` is the HTTP status of a service error (the invocation never ran), or
    None. While the daemon stops, a failed attempt may have been cut short by the shutdown
    itself (its runtime is sent SIGTERM): it is not counted, the event stays queued.
    """
    if service_status is not None:
        if stopping:
            return "interrupted"
        return "throttled" if service_status == 429 else "system_error"
    if function_error:
        return "interrupted" if stopping else "function_error"
    return "success"


def backoff(throttles: int) -> float:
    """Seconds before the ``throttles``-th consecutive throttled attempt is tried again:
    1, 2, 4, ... up to 300."""
    if throttles <= 1:
        return BACKOFF_FIRST
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** min(throttles - 1, 32))


def retry_delay(errors: int) -> float:
    """Seconds before the retry that follows the ``errors``-th function error."""
    return RETRY_DELAYS[min(errors, len(RETRY_DELAYS)) - 1]


def expired(enqueued_at: float, limits: Limits, now: float) -> bool:
    return now >= limits.expires_at(enqueued_at)


def decide(
    result: Result,
    *,
    now: float,
    enqueued_at: float,
    errors: int,
    throttles: int,
    limits: Limits,
    reserved_zero: bool = False,
) -> Decision:
    """The next step for an event whose attempt ended with ``result``.

    ``errors`` and ``throttles`` are the event's counts *before* this attempt.
    """
    if result == "success":
        return Succeed()
    if result == "interrupted":
        return Release()
    expiry = limits.expires_at(enqueued_at)
    if result == "function_error":
        errors += 1
        if errors > limits.max_retry_attempts:
            return GiveUp(RETRIES_EXHAUSTED)
        if now >= expiry:
            return GiveUp(EVENT_AGE_EXCEEDED)
        at = now + retry_delay(errors) * limits.time_scale
        return Retry(min(at, expiry), "function_error", errors, 0)
    # throttled or a system error
    if reserved_zero:
        return GiveUp(RETRIES_EXHAUSTED)
    throttles += 1
    if now >= expiry:
        return GiveUp(EVENT_AGE_EXCEEDED)
    at = now + backoff(throttles) * limits.time_scale
    return Retry(min(at, expiry), result, errors, throttles)
