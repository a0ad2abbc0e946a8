"""CloudWatch-style alarms on a function's own invocation records, for deployments. Pure.

A deployment watches two kinds of alarm:

- its built-in guards: any function error, and any throttle, of the new version while it
  takes traffic (``guards``);
- the template's ``AWS::CloudWatch::Alarm`` resources that its DeploymentPreference names,
  when they are on ``AWS/Lambda``'s ``Errors``, ``Throttles``, ``Duration`` or
  ``Invocations`` of this function (``rule_of``): Dimensions ``FunctionName``,
  ``Resource`` (``name:alias`` counts both versions the alias routes to; ``name:version``
  one version) and ``ExecutedVersion``; Statistic Sum, Average, Minimum, Maximum or
  SampleCount; Period; EvaluationPeriods and DatapointsToAlarm; Threshold and
  ComparisonOperator. An alarm on anything else cannot be evaluated here and is reported
  as such, never silently taken as fine.

Evaluation is CloudWatch's, on windows ending now rather than on clock-aligned minutes (so
a breach is seen at once): the last ``EvaluationPeriods`` periods each give one datapoint
(none when no record fell in it: missing data does not breach), and the alarm fires when
``DatapointsToAlarm`` of them breach. Records and ``now`` are on the deployment's clock;
they are summed per second and version (``Window``), so a period's edges fall on whole
seconds and an evaluation costs the seconds it spans, however many invocations they hold.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

METRICS = ("Errors", "Throttles", "Duration", "Invocations")
STATISTICS = ("Sum", "Average", "Minimum", "Maximum", "SampleCount")
COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (operator.gt, ">"),
    "GreaterThanOrEqualToThreshold": (operator.ge, ">="),
    "LessThanThreshold": (operator.lt, "<"),
    "LessThanOrEqualToThreshold": (operator.le, "<="),
}


@dataclass(frozen=True, slots=True)
class Record:
    """One finished (or throttled) invocation of the function."""

    at: float
    version: str
    duration_ms: float = 0.0
    error: bool = False
    throttle: bool = False


@dataclass(slots=True)
class Bucket:
    """One second's invocations of one version, summed."""

    count: int = 0  # finished invocations (not throttled)
    errors: int = 0
    throttles: int = 0
    duration_sum: float = 0.0
    duration_max: float = float("-inf")
    duration_min: float = float("inf")


class Window:
    """The records a deployment watches, kept as per-second, per-version ``Bucket``s, so an
    evaluation costs the seconds in its window, not the invocations in them."""

    def __init__(self, records: Iterable[Record] = ()) -> None:
        self.buckets: dict[tuple[int, str], Bucket] = {}
        for r in records:
            self.add(r)

    def add(self, r: Record) -> None:
        key = (int(r.at // 1), r.version)
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = Bucket()
        if r.throttle:
            b.throttles += 1
            return
        b.count += 1
        b.errors += r.error
        b.duration_sum += r.duration_ms
        b.duration_max = max(b.duration_max, r.duration_ms)
        b.duration_min = min(b.duration_min, r.duration_ms)

    def prune(self, before: float) -> None:
        """Forget the seconds that end before ``before``."""
        for key in [k for k in self.buckets if k[0] + 1 <= before]:
            del self.buckets[key]

    def __len__(self) -> int:
        return len(self.buckets)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    metric: str
    versions: frozenset[str] | None  # None: every version of the function
    statistic: str = "Sum"
    threshold: float = 0.0
    comparison: str = "GreaterThanThreshold"
    period: float = 60.0
    periods: int = 1
    to_alarm: int = 1

    @property
    def span(self) -> float:
        """How far back the rule looks."""
        return self.period * self.periods

    def value(self, buckets: Sequence[Bucket]) -> float | None:
        """The statistic of the metric over ``buckets``; None when it has no datapoint."""
        count = sum(b.count for b in buckets)
        stat = self.statistic
        if self.metric == "Throttles":
            throttled = sum(b.throttles for b in buckets)
            n, total = count + throttled, float(throttled)
            high, low = (1.0 if throttled else 0.0), (0.0 if count else 1.0)
        elif self.metric == "Errors":
            errors = sum(b.errors for b in buckets)
            n, total = count, float(errors)
            high, low = (1.0 if errors else 0.0), (0.0 if count > errors else 1.0)
        elif self.metric == "Duration":
            n, total = count, sum(b.duration_sum for b in buckets)
            high = max((b.duration_max for b in buckets if b.count), default=0.0)
            low = min((b.duration_min for b in buckets if b.count), default=0.0)
        else:  # Invocations
            n, total, high, low = count, float(count), 1.0, 1.0
        if n == 0:
            return None
        if stat == "Sum":
            return total
        if stat == "Average":
            return total / n
        if stat == "Maximum":
            return high
        if stat == "Minimum":
            return low
        return float(n)

    def evaluate(self, records: Window | Iterable[Record], now: float) -> str | None:
        """Why the alarm is in ALARM now, or None."""
        window = records if isinstance(records, Window) else Window(records)
        mine = [(second, b) for (second, version), b in window.buckets.items()
                if self.versions is None or version in self.versions]
        compare, sign = COMPARISONS[self.comparison]
        breaching: list[float] = []
        for k in range(self.periods):
            hi, lo = now - k * self.period, now - (k + 1) * self.period
            value = self.value([b for second, b in mine if lo < second + 1 and second <= hi])
            if value is not None and compare(value, self.threshold):
                breaching.append(value)
        if len(breaching) < self.to_alarm:
            return None
        scope = "every version" if self.versions is None else "version " + ", ".join(sorted(self.versions))
        return (f"alarm {self.name}: {self.metric} {self.statistic} {breaching[0]:g} {sign} {self.threshold:g} "
                f"({scope}, {len(breaching)} of {self.periods} periods of {self.period:g} s)")


def guards(new_version: str) -> list[Rule]:
    """The deployment's own watch on the new version: errors and throttles."""
    v = frozenset({new_version})
    return [Rule(f"new version {new_version} errors", "Errors", v),
            Rule(f"new version {new_version} throttles", "Throttles", v)]


def rule_of(name: str, props: dict[str, Any], function: str, alias: str, versions: tuple[str, str]) -> Rule:
    """The rule an ``AWS::CloudWatch::Alarm``'s properties describe, for a deployment of
    ``function:alias`` from ``versions[0]`` to ``versions[1]``. Raises ``ValueError`` when
    rapid cannot evaluate it (another namespace, metric, function or statistic)."""
    metric = props.get("MetricName")
    namespace = props.get("Namespace", "AWS/Lambda")
    if namespace != "AWS/Lambda" or metric not in METRICS:
        raise ValueError(f"alarm {name} is on {namespace} {metric}; rapid evaluates AWS/Lambda "
                         f"{', '.join(METRICS)} only")
    statistic = props.get("Statistic", "Sum")
    if statistic not in STATISTICS:
        raise ValueError(f"alarm {name}: Statistic {statistic!r} is not one of {', '.join(STATISTICS)}")
    comparison = props.get("ComparisonOperator", "GreaterThanThreshold")
    if comparison not in COMPARISONS:
        raise ValueError(f"alarm {name}: ComparisonOperator {comparison!r} is not one of {', '.join(COMPARISONS)}")
    dims = {d.get("Name"): str(d.get("Value")) for d in props.get("Dimensions") or [] if isinstance(d, dict)}
    chosen: set[str] | None = None
    if "FunctionName" in dims and dims["FunctionName"] != function:
        raise ValueError(f"alarm {name} watches function {dims['FunctionName']}, not {function}")
    if "Resource" in dims:
        fn, _, qualifier = dims["Resource"].partition(":")
        if fn != function:
            raise ValueError(f"alarm {name} watches {dims['Resource']}, not function {function}")
        if qualifier.isdigit():
            chosen = {qualifier}
        elif qualifier:
            if qualifier != alias:
                raise ValueError(f"alarm {name} watches alias {qualifier}, not {alias}")
            chosen = set(versions)
    if "ExecutedVersion" in dims:
        chosen = {dims["ExecutedVersion"]} if chosen is None else chosen & {dims["ExecutedVersion"]}
    periods = int(props.get("EvaluationPeriods", 1))
    return Rule(
        name=name, metric=metric, versions=frozenset(chosen) if chosen is not None else None, statistic=statistic,
        threshold=float(props.get("Threshold", 0)), comparison=comparison, period=float(props.get("Period", 60)),
        periods=periods, to_alarm=int(props.get("DatapointsToAlarm", periods)),
    )
