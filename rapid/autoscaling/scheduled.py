"""When a scheduled action fires next. Pure: ``now`` and the action in, a time out.

A scheduled action (``PutScheduledAction``) holds a ``rate()``, ``cron()`` or ``at()``
expression (``rapid.core.schedules``), an optional IANA time zone, and an optional
StartTime and EndTime outside which it never fires. A rate counts from the action's
creation, as Application Auto Scaling counts it. Missed runs (the daemon was down) are
not made up: the next run is the first one after ``now``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from rapid.autoscaling.model import ScheduledAction
from rapid.core.schedules import Rate, Schedule, parse


def schedule_of(action: ScheduledAction) -> Schedule:
    """The parsed schedule (raises ``ScheduleError`` for a bad expression or time zone)."""
    schedule = parse(action.schedule, action.timezone or "UTC")
    if isinstance(schedule, Rate):
        schedule = schedule.anchored(_dt(action.start if action.start is not None else action.created))
    return schedule


def next_run(action: ScheduledAction, after: float) -> float | None:
    """The first time strictly after ``after`` (and not before StartTime) the action fires;
    None if it never fires again (an ``at()`` past, or past EndTime)."""
    schedule = schedule_of(action)
    if action.start is not None and after < action.start:
        after = action.start - 1e-6
    found = schedule.next_after(_dt(after))
    if found is None:
        return None
    at = found.timestamp()
    if action.end is not None and at > action.end:
        return None
    return at


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=timezone.utc)
