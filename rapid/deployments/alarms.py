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
``DatapointsToAlarm`` of them breach. Records and ``now`` are on the deployment's clock.
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

    def value(self, records: Sequence[Record]) -> float | None:
        if self.metric == "Duration":
            values = [r.duration_ms for r in records if not r.throttle]
        elif self.metric == "Errors":
            values = [1.0 if r.error else 0.0 for r in records if not r.throttle]
        elif self.metric == "Throttles":
            values = [1.0 if r.throttle else 0.0 for r in records]
        else:
            values = [1.0 for r in records if not r.throttle]
        if not values:
            return None
        if self.statistic == "Sum":
            return sum(values)
        if self.statistic == "Average":
            return sum(values) / len(values)
        if self.statistic == "Minimum":
            return min(values)
        if self.statistic == "Maximum":
            return max(values)
        return float(len(values))

    def evaluate(self, records: Iterable[Record], now: float) -> str | None:
        """Why the alarm is in ALARM now, or None."""
        mine = [r for r in records if self.versions is None or r.version in self.versions]
        compare, sign = COMPARISONS[self.comparison]
        breaching: list[float] = []
        for k in range(self.periods):
            hi, lo = now - k * self.period, now - (k + 1) * self.period
            value = self.value([r for r in mine if lo < r.at <= hi])
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
