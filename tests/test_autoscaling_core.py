"""The pure rules of autoscaling: the per-minute meter, target tracking's alarms and
cooldowns, scheduled actions' next runs. No clock, no I/O."""

from __future__ import annotations

from datetime import datetime, timezone

from rapid.autoscaling.model import ScheduledAction
from rapid.autoscaling.scheduled import next_run
from rapid.autoscaling.tracking import Meter, Tracker, bounded, utilization
from rapid.core.scaled_clock import ScaledClock

T0 = 1_800_000_000.0 - 1_800_000_000.0 % 60  # a minute boundary


def _run(tracker: Tracker, points: list[float | None], current: int, **kw) -> list[int]:  # type: ignore[no-untyped-def]
    """Feed one point a minute; the capacity after each (decisions applied)."""
    out = []
    settings = dict(target=0.5, min_capacity=1, max_capacity=10, out_cooldown=0, in_cooldown=0)
    settings.update(kw)
    for i, p in enumerate(points):
        d = tracker.evaluate(p, T0 + 60 * i, current=current, **settings)  # type: ignore[arg-type]
        if d is not None:
            current = d.capacity
        out.append(current)
    return out


def test_utilization_is_capped_and_missing_without_capacity() -> None:
    assert utilization(3, 4) == 0.75 and utilization(9, 4) == 1.0 and utilization(0, 0) is None


def test_meter_averages_each_minute_and_marks_empty_minutes() -> None:
    m = Meter()
    assert m.sample(T0 + 1, 1.0) == [] and m.sample(T0 + 30, 0.0) == []
    assert m.sample(T0 + 61, 0.5) == [0.5] and m.last == 0.5
    assert m.sample(T0 + 60 * 4 + 1, None) == [0.5, None, None]  # minutes 2 and 3 had no sample
    assert m.last == 0.5


def test_scale_out_after_three_high_minutes_proportionally() -> None:
    assert _run(Tracker(), [1.0, 1.0, 1.0], 1) == [1, 1, 2]
    assert _run(Tracker(), [0.9, 0.9, 0.9, 0.9], 2, max_capacity=5) == [2, 2, 4, 5]  # ceil(2*.9/.5)=4, then max
    assert _run(Tracker(), [1.0, None, 1.0, 1.0], 1) == [1, 1, 1, 1]  # a missing point breaks the alarm
    assert _run(Tracker(), [0.5, 0.5, 0.5], 1) == [1, 1, 1]  # at the target is not above it


def test_scale_in_only_after_fifteen_low_minutes() -> None:
    caps = _run(Tracker(), [0.1] * 16, 4)
    assert caps[:14] == [4] * 14 and caps[14] == 1  # ceil(4*.1/.5) = 1
    assert _run(Tracker(), [0.1] * 14 + [0.46], 4)[-1] == 4  # 0.46 is not below 90 % of 0.5
    assert _run(Tracker(), [0.1] * 20, 4, disable_in=True)[-1] == 4


def test_cooldowns() -> None:
    caps = _run(Tracker(), [1.0] * 6, 1, out_cooldown=150)
    assert caps == [1, 1, 2, 2, 2, 4]  # 150 s after the first scale-out, the next
    t = Tracker()
    caps = _run(t, [0.2] * 15 + [0.05] * 3, 8, min_capacity=0, in_cooldown=120)
    assert caps[14] == 4 and caps[15:] == [4, 1, 1]  # ceil(8*.2/.5)=4; held 60 s later; 1 after 120 s


def test_bounds() -> None:
    assert bounded(0, 1, 3) == 1 and bounded(5, 1, 3) == 3 and bounded(2, 1, 3) == 2


def _action(schedule: str, **kw) -> ScheduledAction:  # type: ignore[no-untyped-def]
    return ScheduledAction(name="a", resource_id="function:f:live", arn="arn", schedule=schedule, created=T0, **kw)


def test_scheduled_next_runs() -> None:
    assert next_run(_action("rate(5 minutes)"), T0 + 1) == T0 + 300  # counted from the creation
    assert next_run(_action("rate(5 minutes)", start=T0 + 1000), T0) == T0 + 1000
    assert next_run(_action("rate(5 minutes)", end=T0 + 200), T0 + 1) is None
    at = datetime.fromtimestamp(T0 + 3600, tz=timezone.utc)
    assert next_run(_action(f"at({at:%Y-%m-%dT%H:%M:%S})"), T0) == T0 + 3600
    assert next_run(_action(f"at({at:%Y-%m-%dT%H:%M:%S})"), T0 + 3600) is None
    assert next_run(_action("cron(0 * * * ? *)"), T0 + 1) == (T0 // 3600 + 1) * 3600


def test_scaled_clock_runs_faster_from_its_anchor() -> None:
    real = [1000.0]
    clock = ScaledClock(0.01, real=lambda: real[0])
    assert clock.now() == 1000.0
    real[0] += 0.6
    assert abs(clock.now() - 1060.0) < 1e-6 and abs(clock.real_seconds(60) - 0.6) < 1e-9
