"""Target tracking of provisioned concurrency, as Application Auto Scaling does it. Pure.

No clock, no I/O: the caller passes ``now`` (epoch seconds on the autoscaler's clock) and
what it measured.

The metric
----------
``LambdaProvisionedConcurrencyUtilization`` is, at any moment, the invocations running on
an alias's provisioned instances over the provisioned instances ready to take them (capped
at 1: traffic beyond them spills onto on-demand instances). AWS publishes its average per
minute; ``Meter`` does the same: samples go into the current minute's bucket, and each
minute that closes becomes one datapoint (``None`` when nothing was provisioned to measure,
CloudWatch's missing data).

The alarms
----------
A target tracking policy on AWS owns two CloudWatch alarms, and so does a ``Tracker``:

- AlarmHigh: the last ``SCALE_OUT_POINTS`` (3) datapoints are all above the target value;
- AlarmLow: the last ``SCALE_IN_POINTS`` (15) datapoints are all below ``SCALE_IN_RATIO``
  (90 %) of it.

So it scales out after three busy minutes and in only after fifteen quiet ones: out
faster than in. While an alarm holds, each new datapoint asks for a new capacity,
``ceil(current * metric / target)`` bounded by the target's Min and Max, as AWS computes
it. A scale-out waits for ``ScaleOutCooldown`` after the last scale-out; a scale-in waits
for ``ScaleInCooldown`` after the last scale-in, and for the scale-out cooldown too (the
capacity just added is not taken back before it had its chance). ``DisableScaleIn`` keeps
AlarmLow from acting.

Transitions of one evaluation (``Tracker.evaluate``):

==========  =====================================  ===================================
alarm        condition                              result
==========  =====================================  ===================================
High         desired > current, out of cooldown     ``Decision(desired, "out")``
High         in cooldown or desired <= current      nothing (``Decision.held`` says why)
Low          desired < current, out of cooldown     ``Decision(desired, "in")``
Low          scale-in disabled or in cooldown       nothing
none         --                                     nothing
==========  =====================================  ===================================
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

SCALE_OUT_POINTS = 3
SCALE_IN_POINTS = 15
SCALE_IN_RATIO = 0.9
MINUTE = 60.0


def utilization(in_flight: int, capacity: int) -> float | None:
    """One sample of the metric; None when nothing provisioned is ready to measure."""
    if capacity <= 0:
        return None
    return min(1.0, in_flight / capacity)


@dataclass
class Meter:
    """Samples of one alias's utilization, averaged per minute of ``now``."""

    minute: int | None = None
    total: float = 0.0
    count: int = 0
    last: float | None = None  # the last closed minute's average (for /metrics)

    def sample(self, now: float, value: float | None) -> list[float | None]:
        """Add a sample (None: nothing to measure); returns the minutes this closed, oldest
        first, each its average or None."""
        minute = int(now // MINUTE)
        closed: list[float | None] = []
        if self.minute is None:
            self.minute = minute
        elif minute > self.minute:
            closed.append(self.total / self.count if self.count else None)
            closed.extend([None] * min(SCALE_IN_POINTS, minute - self.minute - 1))  # minutes with no sample
            self.minute, self.total, self.count = minute, 0.0, 0
            self.last = closed[-1] if closed[-1] is not None else self.last
        if value is not None:
            self.total += value
            self.count += 1
        return closed


@dataclass(frozen=True)
class Decision:
    capacity: int
    direction: str  # "out" | "in"
    alarm: str  # "AlarmHigh" | "AlarmLow"
    metric: float


@dataclass
class Tracker:
    """One target tracking policy's alarms and cooldowns."""

    points: deque[float | None] = field(default_factory=lambda: deque(maxlen=SCALE_IN_POINTS))
    last_out: float | None = None
    last_in: float | None = None
    held: str = ""  # why the last alarm did not act ("" when it did, or no alarm held)

    def alarm(self, target: float) -> str | None:
        pts = list(self.points)
        high = pts[-SCALE_OUT_POINTS:]
        if len(high) == SCALE_OUT_POINTS and all(p is not None and p > target for p in high):
            return "AlarmHigh"
        if len(pts) == SCALE_IN_POINTS and all(p is not None and p < target * SCALE_IN_RATIO for p in pts):
            return "AlarmLow"
        return None

    def evaluate(
        self, point: float | None, now: float, *, current: int, target: float, min_capacity: int, max_capacity: int,
        out_cooldown: float, in_cooldown: float, disable_in: bool = False,
    ) -> Decision | None:
        """Take one closed minute's datapoint; a change of capacity if the alarms ask for one."""
        self.points.append(point)
        self.held = ""
        alarm = self.alarm(target)
        if alarm is None or point is None:
            return None
        desired = max(min_capacity, min(max_capacity, math.ceil(current * point / target - 1e-9)))
        if alarm == "AlarmHigh":
            if desired <= current:
                self.held = "already at the maximum" if current >= max_capacity else ""
                return None
            if self.last_out is not None and now - self.last_out < out_cooldown:
                self.held = "scale-out cooldown"
                return None
            self.last_out = now
            return Decision(desired, "out", alarm, point)
        if disable_in:
            self.held = "scale-in disabled"
            return None
        if desired >= current:
            return None
        if self.last_in is not None and now - self.last_in < in_cooldown:
            self.held = "scale-in cooldown"
            return None
        if self.last_out is not None and now - self.last_out < out_cooldown:
            self.held = "scale-out cooldown"
            return None
        self.last_in = now
        return Decision(desired, "in", alarm, point)

    def __repr__(self) -> str:
        shown = ",".join("-" if p is None else f"{p:.2f}" for p in self.points)
        return f"<Tracker points=[{shown}] last_out={self.last_out} last_in={self.last_in}>"


def bounded(current: int, min_capacity: int, max_capacity: int) -> int:
    """The capacity a registered target's bounds require (its Min and Max are enforced)."""
    return max(min_capacity, min(max_capacity, current))
