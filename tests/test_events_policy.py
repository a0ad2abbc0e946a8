"""The async retry policy, without processes or an event loop: Lambda's rules as a table."""

import pytest

from rapid.events import policy
from rapid.events.policy import (
    GiveUp,
    Limits,
    Release,
    Retry,
    Succeed,
    backoff,
    classify,
    decide,
    expired,
)

T0 = 1_000_000.0
DEFAULT = Limits()


def after(result, now=T0 + 1, errors=0, throttles=0, limits=DEFAULT, reserved_zero=False):
    return decide(result, now=now, enqueued_at=T0, errors=errors, throttles=throttles, limits=limits,
                  reserved_zero=reserved_zero)


def test_defaults_are_lambdas():
    assert (DEFAULT.max_retry_attempts, DEFAULT.max_event_age, DEFAULT.time_scale) == (2, 21600, 1.0)
    assert policy.RETRY_DELAYS == (60.0, 120.0)
    assert policy.RETRY_ATTEMPTS_RANGE == (0, 2) and policy.EVENT_AGE_RANGE == (60, 21600)


def test_success_finishes():
    assert after("success") == Succeed()
    assert after("success", errors=2, throttles=7) == Succeed()


def test_function_errors_retry_after_one_then_two_minutes_then_give_up():
    first = after("function_error", now=T0 + 1)
    assert first == Retry(T0 + 61, "function_error", 1, 0)
    second = after("function_error", now=T0 + 70, errors=1)
    assert second == Retry(T0 + 190, "function_error", 2, 0)
    assert after("function_error", now=T0 + 200, errors=2) == GiveUp("RetriesExhausted")


@pytest.mark.parametrize("attempts, tries", [(0, 1), (1, 2), (2, 3)])
def test_maximum_retry_attempts_bounds_the_tries(attempts, tries):
    limits = Limits(max_retry_attempts=attempts)
    errors, decision = 0, after("function_error", limits=limits)
    while isinstance(decision, Retry):
        errors = decision.errors
        decision = after("function_error", now=decision.at, errors=errors, limits=limits)
    assert decision == GiveUp("RetriesExhausted")
    assert errors + 1 == tries


def test_a_function_error_resets_the_throttle_streak():
    assert after("function_error", throttles=5) == Retry(T0 + 61, "function_error", 1, 0)


def test_throttles_back_off_exponentially_from_one_second_to_five_minutes():
    assert [backoff(n) for n in range(1, 12)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert backoff(10_000) == 300
    assert after("throttled") == Retry(T0 + 2, "throttled", 0, 1)
    assert after("throttled", throttles=3) == Retry(T0 + 1 + 8, "throttled", 0, 4)
    assert after("system_error", throttles=20) == Retry(T0 + 1 + 300, "system_error", 0, 21)


def test_throttles_do_not_use_up_retry_attempts():
    # An event throttled a hundred times still has its two function-error retries.
    d = after("throttled", throttles=100, errors=0, now=T0 + 10)
    assert isinstance(d, Retry) and d.errors == 0
    assert after("function_error", errors=0, throttles=100) == Retry(T0 + 61, "function_error", 1, 0)


def test_throttles_retry_until_the_maximum_age():
    limits = Limits(max_event_age=3600)
    d = after("throttled", throttles=20, now=T0 + 3500, limits=limits)
    assert d == Retry(T0 + 3600, "throttled", 0, 21)  # not past the expiry
    assert after("throttled", now=T0 + 3600, limits=limits) == GiveUp("EventAgeExceeded")


def test_a_retry_is_never_due_after_the_expiry():
    limits = Limits(max_event_age=60)
    assert after("function_error", now=T0 + 1, limits=limits) == Retry(T0 + 60, "function_error", 1, 0)
    assert expired(T0, limits, T0 + 60) and not expired(T0, limits, T0 + 59.999)


def test_an_expired_event_fails_with_event_age_exceeded():
    limits = Limits(max_event_age=60)
    assert after("function_error", now=T0 + 61, limits=limits) == GiveUp("EventAgeExceeded")
    assert after("system_error", now=T0 + 61, limits=limits) == GiveUp("EventAgeExceeded")


def test_retries_exhausted_wins_over_age():
    limits = Limits(max_retry_attempts=0, max_event_age=60)
    assert after("function_error", now=T0 + 100, limits=limits) == GiveUp("RetriesExhausted")


def test_reserved_concurrency_zero_gives_up_at_once():
    assert after("throttled", reserved_zero=True) == GiveUp("RetriesExhausted")
    # A function error on such a function cannot happen, but would follow the usual rule.
    assert isinstance(after("function_error", reserved_zero=True), Retry)


def test_time_scale_shrinks_every_delay_and_age():
    fast = Limits(max_event_age=60, time_scale=0.01)
    assert after("function_error", now=T0, limits=fast) == Retry(T0 + 0.6, "function_error", 1, 0)
    d = after("throttled", now=T0, throttles=2, limits=fast)
    assert isinstance(d, Retry) and d.at == pytest.approx(T0 + 0.04)
    assert expired(T0, fast, T0 + 0.6) and not expired(T0, fast, T0 + 0.59)
    two_retries = Limits(time_scale=0.01)
    assert after("function_error", now=T0, errors=1, limits=two_retries) == Retry(T0 + 1.2, "function_error", 2, 0)


def test_interrupted_attempts_are_released():
    assert after("interrupted") == Release()


@pytest.mark.parametrize("status, function_error, stopping, result", [
    (None, False, False, "success"),
    (None, True, False, "function_error"),
    (429, False, False, "throttled"),
    (500, False, False, "system_error"),
    (503, False, False, "system_error"),
    (503, False, True, "interrupted"),  # refused because the daemon stops
    (None, True, True, "interrupted"),  # the runtime may have been killed by the shutdown
    (None, False, True, "success"),  # finished while stopping: a real result
])
def test_classify(status, function_error, stopping, result):
    assert classify(status, function_error, stopping) == result
