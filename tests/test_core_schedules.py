"""Schedule expressions (rapid.core.schedules): parsing, refusals, and the next firing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from rapid.core import schedules
from rapid.core.schedules import ScheduleError, parse

UTC = timezone.utc


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(expr: str, after: str, n: int = 1, tz: str = "UTC") -> list[str]:
    s = parse(expr, timezone=tz)
    out, at = [], t(after)
    for _ in range(n):
        nxt = s.next_after(at)
        if nxt is None:
            break
        out.append(nxt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"))
        at = nxt
    return out


# --- rate ----------------------------------------------------------------------------

@pytest.mark.parametrize("expr, seconds", [
    ("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600),
    ("rate(12 hours)", 43200), ("rate(1 day)", 86400), ("rate(7 days)", 604800),
    ("  rate( 2 minutes )  ", 120),
])
def test_rate_periods(expr, seconds):
    s = parse(expr)
    assert isinstance(s, schedules.Rate)
    assert s.period == timedelta(seconds=seconds)
    assert s.next_after(t("2026-01-01T00:00:30")) == t("2026-01-01T00:00:30") + s.period


def test_rate_anchored_counts_from_its_start():
    s = parse("rate(5 minutes)").anchored(t("2026-01-01T10:02:00"))
    assert s.next_after(t("2026-01-01T09:00:00")) == t("2026-01-01T10:02:00")
    assert s.next_after(t("2026-01-01T10:02:00")) == t("2026-01-01T10:07:00")
    assert s.next_after(t("2026-01-01T10:06:59")) == t("2026-01-01T10:07:00")
    assert s.next_after(t("2026-01-01T11:00:00")) == t("2026-01-01T11:02:00")


def test_naive_datetimes_read_as_utc_and_results_are_aware():
    s = parse("rate(1 minute)")
    got = s.next_after(datetime(2026, 1, 1, 0, 0))
    assert got == t("2026-01-01T00:01:00") and got.tzinfo is not None


@pytest.mark.parametrize("expr, detail", [
    ("rate(1 minutes)", "for the value 1 the unit must be 'minute'"),
    ("rate(5 hour)", "for the value 5 the unit must be 'hours'"),
    ("rate(0 minutes)", "must be a positive whole number"),
    ("rate(-1 minutes)", "must be a positive whole number"),
    ("rate(1.5 hours)", "must be a positive whole number"),
    ("rate(2 weeks)", "must be minute(s), hour(s) or day(s)"),
    ("rate(2 seconds)", "must be minute(s), hour(s) or day(s)"),
    ("rate(5)", "rate(value unit)"),
    ("rate(5 minutes", "rate(value unit)"),
])
def test_bad_rates(expr, detail):
    with pytest.raises(ValueError) as info:
        parse(expr)
    assert str(info.value).startswith("Parameter ScheduleExpression is not valid: ")
    assert detail in str(info.value)


# --- at ------------------------------------------------------------------------------

def test_at_fires_once():
    s = parse("at(2026-03-04T05:06:07)")
    assert s.next_after(t("2026-01-01T00:00:00")) == t("2026-03-04T05:06:07")
    assert s.next_after(t("2026-03-04T05:06:07")) is None
    assert s.next_after(t("2027-01-01T00:00:00")) is None


def test_at_in_a_time_zone():
    s = parse("at(2026-07-01T12:00:00)", timezone="Europe/Paris")
    assert s.next_after(t("2026-01-01T00:00:00")) == t("2026-07-01T10:00:00")


@pytest.mark.parametrize("expr", [
    "at(2026-02-30T00:00:00)", "at(2026-01-01 00:00:00)", "at(2026-01-01T00:00)", "at()",
])
def test_bad_at(expr):
    with pytest.raises(ScheduleError):
        parse(expr)


# --- cron: the examples in EventBridge's documentation ---------------------------------

@pytest.mark.parametrize("expr, after, want", [
    # 10:15 UTC every day
    ("cron(15 10 * * ? *)", "2026-01-01T10:14", ["2026-01-01T10:15", "2026-01-02T10:15"]),
    # 18:00 Monday to Friday
    ("cron(0 18 ? * MON-FRI *)", "2026-01-02T18:00",  # a Friday
     ["2026-01-05T18:00", "2026-01-06T18:00"]),
    # 8:00 on the first day of the month
    ("cron(0 8 1 * ? *)", "2026-01-15T00:00", ["2026-02-01T08:00", "2026-03-01T08:00"]),
    # every 10 minutes, Monday to Friday
    ("cron(0/10 * ? * MON-FRI *)", "2026-01-02T23:41",
     ["2026-01-02T23:50", "2026-01-05T00:00", "2026-01-05T00:10"]),
    # every 5 minutes between 8:00 and 17:55, Monday to Friday
    ("cron(0/5 8-17 ? * MON-FRI *)", "2026-01-05T17:52",
     ["2026-01-05T17:55", "2026-01-06T08:00"]),
    # 9:00 on the first Monday of each month
    ("cron(0 9 ? * 2#1 *)", "2026-01-01T00:00", ["2026-01-05T09:00", "2026-02-02T09:00"]),
])
def test_documented_examples(expr, after, want):
    assert fires(expr, after, len(want)) == want


@pytest.mark.parametrize("expr, after, want", [
    ("cron(* * * * ? *)", "2026-01-01T00:00:59", ["2026-01-01T00:01", "2026-01-01T00:02"]),
    ("cron(0,30 * * * ? *)", "2026-01-01T00:10", ["2026-01-01T00:30", "2026-01-01T01:00"]),
    ("cron(5/20 * * * ? *)", "2026-01-01T00:00", ["2026-01-01T00:05", "2026-01-01T00:25",
                                                  "2026-01-01T00:45", "2026-01-01T01:05"]),
    ("cron(10-20/5 1 * * ? *)", "2026-01-01T00:00",
     ["2026-01-01T01:10", "2026-01-01T01:15", "2026-01-01T01:20", "2026-01-02T01:10"]),
    ("cron(0 */6 * * ? *)", "2026-01-01T01:00", ["2026-01-01T06:00", "2026-01-01T12:00"]),
    ("cron(0 22-2 * * ? *)", "2026-01-01T03:00",  # a wrapping hour range
     ["2026-01-01T22:00", "2026-01-01T23:00", "2026-01-02T00:00", "2026-01-02T01:00",
      "2026-01-02T02:00", "2026-01-02T22:00"]),
    ("cron(0 0 ? * FRI-MON *)", "2026-01-01T00:00",  # a wrapping day range; 2026-01-02 is a Friday
     ["2026-01-02T00:00", "2026-01-03T00:00", "2026-01-04T00:00", "2026-01-05T00:00",
      "2026-01-09T00:00"]),
    ("cron(0 12 ? * sun,sat *)", "2026-01-01T00:00", ["2026-01-03T12:00", "2026-01-04T12:00"]),
    ("cron(0 0 ? * 1 *)", "2026-01-01T00:00", ["2026-01-04T00:00"]),  # 1 is Sunday
    ("cron(0 0 ? * 7 *)", "2026-01-01T00:00", ["2026-01-03T00:00"]),  # 7 is Saturday
    ("cron(0 0 1 JAN,jul ? *)", "2026-02-01T00:00", ["2026-07-01T00:00", "2027-01-01T00:00"]),
    ("cron(0 0 1 11-2 ? *)", "2026-03-01T00:00",  # a wrapping month range
     ["2026-11-01T00:00", "2026-12-01T00:00", "2027-01-01T00:00", "2027-02-01T00:00",
      "2027-11-01T00:00"]),
    ("cron(0 0 31 * ? *)", "2026-01-31T00:00", ["2026-03-31T00:00", "2026-05-31T00:00"]),
    ("cron(0 0 29 2 ? *)", "2026-01-01T00:00", ["2028-02-29T00:00", "2032-02-29T00:00"]),
    ("cron(0 0 1 1 ? 2030)", "2026-01-01T00:00", ["2030-01-01T00:00"]),
    ("cron(0 0 1 1 ? 2027-2028)", "2026-06-01T00:00", ["2027-01-01T00:00", "2028-01-01T00:00"]),
    ("cron(0 0 1 1 ? 2030/10)", "2026-01-01T00:00", ["2030-01-01T00:00", "2040-01-01T00:00"]),
])
def test_fields(expr, after, want):
    assert fires(expr, after, len(want) + 1)[: len(want)] == want


def test_a_finite_cron_ends():
    assert fires("cron(0 0 1 1 ? 2027-2028)", "2026-06-01T00:00", 5) == [
        "2027-01-01T00:00", "2028-01-01T00:00"]
    assert parse("cron(0 0 1 1 ? 2020)").next_after(t("2026-01-01T00:00")) is None
    # the 31st of February never comes
    assert parse("cron(0 0 31 2 ? *)").next_after(t("2026-01-01T00:00")) is None


def test_next_after_is_strictly_after_and_skips_seconds():
    s = parse("cron(30 9 * * ? *)")
    assert s.next_after(t("2026-01-01T09:29:59.9")) == t("2026-01-01T09:30")
    assert s.next_after(t("2026-01-01T09:30:00")) == t("2026-01-02T09:30")
    assert s.next_after(t("2026-01-01T09:30:01")) == t("2026-01-02T09:30")


# --- cron: L, W and # ----------------------------------------------------------------

@pytest.mark.parametrize("expr, after, want", [
    ("cron(0 0 L * ? *)", "2026-01-01T00:00",
     ["2026-01-31T00:00", "2026-02-28T00:00", "2026-03-31T00:00", "2026-04-30T00:00"]),
    ("cron(0 0 L 2 ? *)", "2027-06-01T00:00", ["2028-02-29T00:00"]),
    # last weekday: 2026-01-31 is a Saturday, 2026-05-31 a Sunday
    ("cron(0 0 LW * ? *)", "2026-01-01T00:00", ["2026-01-30T00:00", "2026-02-27T00:00"]),
    ("cron(0 0 LW 5 ? *)", "2026-01-01T00:00", ["2026-05-29T00:00"]),
    # nearest weekday: 2026-01-03 is a Saturday (Friday the 2nd), 2026-01-04 a Sunday
    ("cron(0 0 3W 1 ? *)", "2026-01-01T00:00", ["2026-01-02T00:00"]),
    ("cron(0 0 4W 1 ? *)", "2026-01-01T00:00", ["2026-01-05T00:00"]),
    ("cron(0 0 15W 1 ? *)", "2026-01-01T00:00", ["2026-01-15T00:00"]),
    # 1W on a Saturday moves forward to Monday the 3rd, never into the month before
    ("cron(0 0 1W 8 ? *)", "2026-01-01T00:00", ["2026-08-03T00:00"]),
    # 31W on a Sunday moves back to Friday the 29th
    ("cron(0 0 31W 5 ? *)", "2026-01-01T00:00", ["2026-05-29T00:00"]),
    # last Friday of the month
    ("cron(0 0 ? * 6L *)", "2026-01-01T00:00", ["2026-01-30T00:00", "2026-02-27T00:00"]),
    ("cron(0 0 ? * FRIL *)", "2026-01-01T00:00", ["2026-01-30T00:00"]),
    # L alone in the day of week is Saturday
    ("cron(0 0 ? * L *)", "2026-01-01T00:00", ["2026-01-03T00:00", "2026-01-10T00:00"]),
    # third Wednesday; fifth Thursday only in months that have one
    ("cron(0 0 ? * 4#3 *)", "2026-01-01T00:00", ["2026-01-21T00:00", "2026-02-18T00:00"]),
    ("cron(0 0 ? * WED#3 *)", "2026-01-01T00:00", ["2026-01-21T00:00"]),
    ("cron(0 0 ? * 5#5 *)", "2026-01-01T00:00", ["2026-01-29T00:00", "2026-04-30T00:00"]),
    ("cron(0 0 ? * 2#1,6L *)", "2026-01-01T00:00",
     ["2026-01-05T00:00", "2026-01-30T00:00", "2026-02-02T00:00"]),
    ("cron(0 0 1,L * ? *)", "2026-01-01T00:00", ["2026-01-31T00:00", "2026-02-01T00:00"]),
])
def test_special_characters(expr, after, want):
    assert fires(expr, after, len(want)) == want


# --- cron refusals ---------------------------------------------------------------------

@pytest.mark.parametrize("expr, detail", [
    ("cron(0 0 * * *)", "cron takes 6 fields"),
    ("cron(0 0 * * * * *)", "cron takes 6 fields"),
    ("cron(0 0 * * * *)", "one of Day-of-month and Day-of-week must be ?"),
    ("cron(0 0 ? * ? *)", "one of Day-of-month and Day-of-week must be ?"),
    ("cron(0 0 1 * MON *)", "one of Day-of-month and Day-of-week must be ?"),
    ("cron(60 0 * * ? *)", "Minutes value 60 is outside 0-59"),
    ("cron(0 24 * * ? *)", "Hours value 24 is outside 0-23"),
    ("cron(0 0 0 * ? *)", "Day-of-month value 0 is outside 1-31"),
    ("cron(0 0 32 * ? *)", "Day-of-month value 32 is outside 1-31"),
    ("cron(0 0 * 13 ? *)", "Month value 13 is outside 1-12"),
    ("cron(0 0 * FOO ? *)", "Month value 'FOO' is not a number or a name"),
    ("cron(0 0 ? * 8 *)", "Day-of-week value 8 is outside 1-7"),
    ("cron(0 0 ? * 0 *)", "Day-of-week value 0 is outside 1-7"),
    ("cron(0 0 ? * MONDAY *)", "Day-of-week value 'MONDAY' is not a number or a name"),
    ("cron(0 0 * * ? 1969)", "Year value 1969 is outside 1970-2199"),
    ("cron(0 0 * * ? 2200)", "Year value 2200 is outside 1970-2199"),
    ("cron(? 0 * * ? *)", "Minutes cannot be ?"),
    ("cron(*/0 0 * * ? *)", "Minutes step '0' must be a positive number"),
    ("cron(a 0 * * ? *)", "Minutes value 'a' is not a number"),
    ("cron(1,,2 0 * * ? *)", "Minutes has an empty list item"),
    ("cron(0 0 ? * 2#6 *)", "the number after # is 1-5"),
    ("cron(0 0 ? * 2# *)", "the number after # is 1-5"),
    ("cron(0 0 1#2 * ? *)", "Day-of-month value '1#2' is not valid"),
    ("cron(0 0 32W * ? *)", "Day-of-month value 32 is outside 1-31"),
    ("cron 0 0 * * ? *", "it must start with rate(, cron( or at("),
    ("every day", "it must start with rate(, cron( or at("),
    ("", "it must start with rate(, cron( or at("),
])
def test_bad_crons(expr, detail):
    with pytest.raises(ValueError) as info:
        parse(expr)
    message = str(info.value)
    assert message.startswith("Parameter ScheduleExpression is not valid: "), message
    assert detail in message, message


def test_error_carries_the_expression_and_detail():
    with pytest.raises(ScheduleError) as info:
        parse("cron(0 0 * 13 ? *)")
    assert info.value.expression == "cron(0 0 * 13 ? *)"
    assert info.value.detail == "Month value 13 is outside 1-12"


# --- time zones ----------------------------------------------------------------------

def test_cron_in_a_time_zone_follows_daylight_saving():
    # 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer (DST began 2026-03-08)
    assert fires("cron(0 9 * * ? *)", "2026-03-06T00:00", 3, tz="America/New_York") == [
        "2026-03-06T14:00", "2026-03-07T14:00", "2026-03-08T13:00"]


def test_a_skipped_wall_clock_time_does_not_fire_and_a_doubled_one_fires_once():
    # 02:30 does not exist in New York on 2026-03-08; 01:30 happens twice on 2026-11-01
    assert fires("cron(30 2 * * ? *)", "2026-03-07T00:00", 2, tz="America/New_York") == [
        "2026-03-07T07:30", "2026-03-09T06:30"]
    assert fires("cron(30 1 * * ? *)", "2026-10-31T12:00", 2, tz="America/New_York") == [
        "2026-11-01T05:30", "2026-11-02T06:30"]


def test_unknown_time_zone():
    with pytest.raises(ValueError, match="is not a time zone"):
        parse("cron(0 0 * * ? *)", timezone="Mars/Olympus")


def test_repr_is_readable():
    assert "rate(5 minutes)" in repr(parse("rate(5 minutes)"))
    assert "cron(0 9 ? * MON *)" in repr(parse("cron(0 9 ? * MON *)"))
