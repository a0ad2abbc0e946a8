"""Schedule expressions as EventBridge and Application Auto Scaling write them.

Three forms, each parsed by ``parse(expr)`` into a ``Schedule`` whose ``next_after(dt)``
answers "when does this fire next, strictly after ``dt``?" (``None``: never again):

- ``rate(N unit)``: every N minutes, hours or days. N is a positive whole number and the
  unit is singular for 1 and plural otherwise (``rate(1 hour)``, ``rate(5 hours)``), as
  EventBridge insists. A rate counts from its anchor, the time the schedule began (the
  rule's creation on AWS); ``Rate.anchored(t)`` sets one. Without an anchor a rate fires one
  period after whatever time it is asked about, which is what a loop of
  ``t = s.next_after(t)`` wants.
- ``cron(minutes hours day-of-month month day-of-week year)``: six fields, no seconds.
  Every field takes ``*``, ``,`` lists, ``-`` ranges (wrapping, as ``FRI-MON`` or ``22-2``)
  and ``/`` steps (``*/15``, ``5/10``, ``10-40/5``). Day-of-month also takes ``L`` (last
  day), ``LW`` (last weekday) and ``nW`` (the weekday nearest day n, within the month);
  day-of-week takes ``L`` (Saturday), ``nL`` (the month's last day n) and ``n#k`` (the
  k-th day n of the month). Days of the week are 1-7 from Sunday or SUN-SAT, months 1-12
  or JAN-DEC, years 1970-2199. Exactly one of day-of-month and day-of-week is ``?``.
- ``at(yyyy-mm-ddThh:mm:ss)``: once.

Times are UTC unless the schedule carries an IANA time zone (``parse(expr, timezone=...)``,
EventBridge Scheduler's ``ScheduleExpressionTimezone``): then cron fields and ``at`` read
as wall-clock times there, a wall-clock time that a daylight-saving jump skips does not
fire, and one that happens twice fires the first time. ``next_after`` takes an aware
datetime (a naive one is read as UTC) and returns an aware UTC datetime.

Errors are ``ScheduleError`` (a ``ValueError``) worded as EventBridge answers a bad
``ScheduleExpression``, followed by what exactly is wrong.

Pure: no clock, no I/O (a time zone other than UTC is looked up through ``zoneinfo``).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone as _tz
from typing import Union

UTC = _tz.utc
MIN_YEAR, MAX_YEAR = 1970, 2199

_MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
_DAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


class ScheduleError(ValueError):
    """A schedule expression AWS would refuse; ``detail`` says why."""

    def __init__(self, expr: str, detail: str) -> None:
        super().__init__(f"Parameter ScheduleExpression is not valid: {detail} (in {expr!r})")
        self.expression = expr
        self.detail = detail


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _zone(name: str) -> _tz | object:
    if name in ("UTC", "Etc/UTC", "GMT", "Z"):
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # imported only when needed

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"Invalid ScheduleExpressionTimezone: {name!r} is not a time zone")


# --- rate ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rate:
    """``rate(value unit)``: every ``period``, counted from ``anchor`` when one is set."""

    expression: str
    period: timedelta
    anchor: datetime | None = None

    def anchored(self, start: datetime) -> "Rate":
        return replace(self, anchor=_utc(start))

    def next_after(self, dt: datetime) -> datetime | None:
        dt = _utc(dt)
        if self.anchor is None:
            return dt + self.period
        if dt < self.anchor:
            return self.anchor
        periods = (dt - self.anchor) // self.period + 1
        return self.anchor + periods * self.period


_RATE = re.compile(r"rate\(\s*(\S+)\s+(\S+)\s*\)\Z")


def _parse_rate(expr: str) -> Rate:
    m = _RATE.match(expr)
    if not m:
        raise ScheduleError(expr, "a rate is rate(value unit), e.g. rate(5 minutes)")
    value, unit = m.groups()
    if not value.isdigit() or int(value) < 1:
        raise ScheduleError(expr, f"the rate value {value!r} must be a positive whole number")
    n = int(value)
    singular = unit[:-1] if unit.endswith("s") else unit
    if singular not in _UNITS:
        raise ScheduleError(expr, f"the rate unit {unit!r} must be minute(s), hour(s) or day(s)")
    if (n == 1) != (unit == singular):
        want = singular if n == 1 else singular + "s"
        raise ScheduleError(expr, f"for the value {n} the unit must be {want!r}")
    return Rate(expr, timedelta(seconds=n * _UNITS[singular]))


# --- at --------------------------------------------------------------------------------

@dataclass(frozen=True)
class At:
    """``at(...)``: once, at ``when`` (UTC)."""

    expression: str
    when: datetime

    def next_after(self, dt: datetime) -> datetime | None:
        return self.when if _utc(dt) < self.when else None


_AT = re.compile(r"at\((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\)\Z")


def _parse_at(expr: str, zone: object) -> At:
    m = _AT.match(expr)
    if not m:
        raise ScheduleError(expr, "a one-time schedule is at(yyyy-mm-ddThh:mm:ss)")
    try:
        y, mo, d, h, mi, se = (int(g) for g in m.groups())
        local = datetime(y, mo, d, h, mi, se)
    except ValueError as e:
        raise ScheduleError(expr, f"the time does not exist ({e})")
    return At(expr, local.replace(tzinfo=zone).astimezone(UTC))  # type: ignore[arg-type]


# --- cron ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Days:
    """Day-of-month and day-of-week rules, resolved per month by ``days_in``."""

    any_dom: bool = False          # day-of-month is ?
    doms: frozenset[int] = frozenset()
    last_dom: bool = False         # L
    last_weekday: bool = False     # LW
    nearest_weekdays: frozenset[int] = frozenset()   # nW
    dows: frozenset[int] = frozenset()               # 1=SUN .. 7=SAT
    last_dows: frozenset[int] = frozenset()          # nL
    nth_dows: frozenset[tuple[int, int]] = frozenset()  # (dow, k) for dow#k

    def days_in(self, year: int, month: int) -> list[int]:
        ndays = calendar.monthrange(year, month)[1]
        first = _aws_dow(year, month, 1)
        days: set[int] = set()
        if not self.any_dom:
            days |= {d for d in self.doms if d <= ndays}
            if self.last_dom:
                days.add(ndays)
            if self.last_weekday:
                days.add(_nearest_weekday(year, month, ndays, ndays))
            for n in self.nearest_weekdays:
                if n <= ndays:
                    days.add(_nearest_weekday(year, month, n, ndays))
            return sorted(days)
        for d in range(1, ndays + 1):
            dow = (first - 1 + d - 1) % 7 + 1
            if dow in self.dows:
                days.add(d)
            if dow in self.last_dows and d + 7 > ndays:
                days.add(d)
            for want, k in self.nth_dows:
                if dow == want and (d - 1) // 7 + 1 == k:
                    days.add(d)
        return sorted(days)


def _aws_dow(year: int, month: int, day: int) -> int:
    """1=Sunday .. 7=Saturday (Python's weekday() is 0=Monday)."""
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


def _nearest_weekday(year: int, month: int, n: int, ndays: int) -> int:
    dow = _aws_dow(year, month, n)
    if dow == 7:  # Saturday: Friday before, or Monday after when the 1st
        return n - 1 if n > 1 else n + 2
    if dow == 1:  # Sunday: Monday after, or Friday before when the last day
        return n + 1 if n < ndays else n - 2
    return n


@dataclass(frozen=True)
class Cron:
    """``cron(...)``: the sets of minutes, hours, months and years, and the day rules."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    days: _Days = field(repr=False)
    timezone: str = "UTC"

    def next_after(self, dt: datetime) -> datetime | None:
        zone = _zone(self.timezone)
        start = _utc(dt).replace(second=0, microsecond=0) + timedelta(minutes=1)
        local = start.astimezone(zone).replace(tzinfo=None)  # type: ignore[arg-type]
        for year in self.years:
            if year < local.year:
                continue
            for month in self.months:
                if (year, month) < (local.year, local.month):
                    continue
                same_month = (year, month) == (local.year, local.month)
                for day in self.days.days_in(year, month):
                    if same_month and day < local.day:
                        continue
                    today = same_month and day == local.day
                    for hour in self.hours:
                        if today and hour < local.hour:
                            continue
                        for minute in self.minutes:
                            if today and hour == local.hour and minute < local.minute:
                                continue
                            found = _to_utc(datetime(year, month, day, hour, minute), zone)
                            if found is not None and found >= start:
                                return found
        return None


def _to_utc(wall: datetime, zone: object) -> datetime | None:
    """The first UTC instant showing ``wall`` in ``zone``; None when a jump skips it."""
    if zone is UTC:
        return wall.replace(tzinfo=UTC)
    aware = wall.replace(tzinfo=zone, fold=0)  # type: ignore[arg-type]
    back = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)  # type: ignore[arg-type]
    return aware.astimezone(UTC) if back == wall else None


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_MINUTE = _Field("Minutes", 0, 59)
_HOUR = _Field("Hours", 0, 23)
_DOM = _Field("Day-of-month", 1, 31)
_MONTH = _Field("Month", 1, 12, _MONTHS)
_DOW = _Field("Day-of-week", 1, 7, _DAYS)
_YEAR = _Field("Year", MIN_YEAR, MAX_YEAR)


def _number(expr: str, f: _Field, text: str) -> int:
    t = text.upper()
    if f.names and t in f.names:
        return f.names[t]
    if not t.isdigit():
        raise ScheduleError(expr, f"{f.name} value {text!r} is not a number"
                            + (" or a name" if f.names else ""))
    n = int(t)
    if not f.low <= n <= f.high:
        raise ScheduleError(expr, f"{f.name} value {n} is outside {f.low}-{f.high}")
    return n


def _span(lo: int, hi: int, f: _Field, step: int) -> list[int]:
    if lo <= hi:
        values = list(range(lo, hi + 1))
    else:  # a wrapping range: FRI-MON, 22-2
        values = list(range(lo, f.high + 1)) + list(range(f.low, hi + 1))
    return values[::step]


def _item(expr: str, f: _Field, item: str) -> list[int]:
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise ScheduleError(expr, f"{f.name} step {step_text!r} must be a positive number")
        step = int(step_text)
    if base == "*":
        return _span(f.low, f.high, f, step)
    lo_text, dash, hi_text = base.partition("-")
    lo = _number(expr, f, lo_text)
    if dash:
        return _span(lo, _number(expr, f, hi_text), f, step)
    return _span(lo, f.high, f, step) if slash else [lo]


def _values(expr: str, f: _Field, text: str) -> tuple[int, ...]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ScheduleError(expr, f"{f.name} has an empty list item")
        values.update(_item(expr, f, item))
    return tuple(sorted(values))


def _days(expr: str, dom: str, dow: str) -> _Days:
    if (dom == "?") == (dow == "?"):
        raise ScheduleError(expr, "one of Day-of-month and Day-of-week must be ?, not both")
    if dom != "?":
        doms: set[int] = set()
        last = last_weekday = False
        nearest: set[int] = set()
        for item in dom.split(","):
            up = item.upper()
            if up == "L":
                last = True
            elif up == "LW":
                last_weekday = True
            elif up.endswith("W") and up[:-1].isdigit():
                nearest.add(_number(expr, _DOM, up[:-1]))
            elif "#" in up or "L" in up or "W" in up:
                raise ScheduleError(expr, f"Day-of-month value {item!r} is not valid")
            else:
                doms.update(_values(expr, _DOM, item))
        return _Days(doms=frozenset(doms), last_dom=last, last_weekday=last_weekday,
                     nearest_weekdays=frozenset(nearest))
    dows: set[int] = set()
    last_dows: set[int] = set()
    nth: set[tuple[int, int]] = set()
    for item in dow.split(","):
        up = item.upper()
        if up == "L":
            dows.add(7)
        elif up.endswith("L") and "-" not in up and "/" not in up:
            last_dows.add(_number(expr, _DOW, up[:-1]))
        elif "#" in up:
            day, _, k = up.partition("#")
            if not k.isdigit() or not 1 <= int(k) <= 5:
                raise ScheduleError(expr, f"Day-of-week {item!r}: the number after # is 1-5")
            nth.add((_number(expr, _DOW, day), int(k)))
        else:
            dows.update(_values(expr, _DOW, item))
    return _Days(any_dom=True, dows=frozenset(dows), last_dows=frozenset(last_dows),
                 nth_dows=frozenset(nth))


def _parse_cron(expr: str, timezone: str) -> Cron:
    if not (expr.startswith("cron(") and expr.endswith(")")):
        raise ScheduleError(expr, "a cron schedule is cron(minutes hours day-of-month month "
                                  "day-of-week year)")
    fields = expr[5:-1].split()
    if len(fields) != 6:
        raise ScheduleError(expr, f"cron takes 6 fields (minutes hours day-of-month month "
                                  f"day-of-week year), not {len(fields)}")
    minute, hour, dom, month, dow, year = fields
    for text, f in ((minute, _MINUTE), (hour, _HOUR), (month, _MONTH), (year, _YEAR)):
        if text == "?":
            raise ScheduleError(expr, f"{f.name} cannot be ?; only the day fields can")
    return Cron(
        expr,
        minutes=_values(expr, _MINUTE, minute),
        hours=_values(expr, _HOUR, hour),
        months=_values(expr, _MONTH, month),
        years=_values(expr, _YEAR, year),
        days=_days(expr, dom, dow),
        timezone=timezone,
    )


Schedule = Union[Rate, Cron, At]


def parse(expr: str, timezone: str = "UTC") -> Schedule:
    """The schedule ``expr`` describes; raises ``ScheduleError`` (a ValueError)."""
    if not isinstance(expr, str):
        raise ScheduleError(repr(expr), "a schedule expression is a string")
    text = expr.strip()
    zone = _zone(timezone)
    if text.startswith("rate("):
        return _parse_rate(text)
    if text.startswith("cron("):
        return _parse_cron(text, timezone)
    if text.startswith("at("):
        return _parse_at(text, zone)
    raise ScheduleError(expr, "it must start with rate(, cron( or at(")
