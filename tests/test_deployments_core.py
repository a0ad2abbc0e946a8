"""The pure parts of gradual deployments: SAM's Types as steps, the lifecycle table, alarms
evaluated on invocation records, the AppSpec."""

from __future__ import annotations

import json

import pytest

from rapid.deployments import machine
from rapid.deployments.alarms import Record, guards, rule_of
from rapid.deployments.appspec import AppSpecError, lambda_deployment
from rapid.deployments.machine import Event, IllegalTransition, Phase
from rapid.deployments.preferences import TYPES, PreferenceError, preference_of, steps


def test_every_sam_type_has_its_steps() -> None:
    assert set(TYPES) == {
        "Canary10Percent30Minutes", "Canary10Percent5Minutes", "Canary10Percent10Minutes",
        "Canary10Percent15Minutes", "Linear10PercentEvery10Minutes", "Linear10PercentEvery1Minute",
        "Linear10PercentEvery2Minutes", "Linear10PercentEvery3Minutes", "AllAtOnce"}
    assert [(s.weight, s.hold) for s in steps("Canary10Percent5Minutes")] == [(0.1, 300.0), (1.0, 0.0)]
    assert [(s.weight, s.hold) for s in steps("CodeDeployDefault.LambdaCanary10Percent30Minutes")] == [
        (0.1, 1800.0), (1.0, 0.0)]
    linear = steps("Linear10PercentEvery2Minutes")
    assert [s.weight for s in linear] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert {s.hold for s in linear[:-1]} == {120.0} and linear[-1].hold == 0.0
    assert [(s.weight, s.hold) for s in steps("AllAtOnce")] == [(1.0, 0.0)]


def test_preference_of_a_template() -> None:
    p = preference_of({"Type": "Linear10PercentEvery1Minute", "Alarms": ["ErrorsAlarm"],
                       "Hooks": {"PreTraffic": "pre", "PostTraffic": "post"}})
    assert (p.type, p.alarms, p.pre_traffic, p.post_traffic, p.enabled) == (
        "Linear10PercentEvery1Minute", ("ErrorsAlarm",), "pre", "post", True)
    assert p.config_name == "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"
    assert not preference_of({"Type": "AllAtOnce", "Enabled": "false"}).enabled
    for bad in ({"Type": "Canary50Percent1Minute"}, {}, {"Type": "AllAtOnce", "Hooks": {"During": "x"}},
                {"Type": "AllAtOnce", "Alarms": "one"}):
        with pytest.raises(PreferenceError):
            preference_of(bad)


def test_lifecycle_table() -> None:
    phase = Phase.CREATED
    for event in (Event.START, Event.HOOK_OK, Event.STEP_DONE, Event.SHIFTED, Event.HOOK_OK):
        phase = machine.advance(phase, event)
    assert phase is Phase.SUCCEEDED and machine.status(phase) == "Succeeded"
    assert machine.advance(Phase.PRE_TRAFFIC, Event.HOOK_FAILED) is Phase.FAILED
    assert machine.advance(Phase.SHIFTING, Event.ALARM) is Phase.FAILED
    assert machine.advance(Phase.SHIFTING, Event.STOP) is Phase.STOPPED
    assert not machine.moved(Phase.PRE_TRAFFIC) and machine.moved(Phase.SHIFTING)
    assert machine.status(Phase.POST_TRAFFIC) == "InProgress"
    for phase, event in ((Phase.PRE_TRAFFIC, Event.ALARM), (Phase.SUCCEEDED, Event.STOP),
                         (Phase.CREATED, Event.HOOK_OK), (Phase.FAILED, Event.START)):
        with pytest.raises(IllegalTransition):
            machine.advance(phase, event)


def test_guards_fire_on_the_new_versions_errors_and_throttles_only() -> None:
    errors, throttles = guards("2")
    old = [Record(100.0, "1", error=True), Record(100.0, "1", throttle=True)]
    assert errors.evaluate(old, 101.0) is None and throttles.evaluate(old, 101.0) is None
    assert errors.evaluate([Record(100.0, "2"), Record(100.5, "2")], 101.0) is None
    reason = errors.evaluate([Record(100.0, "2"), Record(100.5, "2", error=True)], 101.0)
    assert reason is not None and "new version 2 errors" in reason and "Errors Sum 1 > 0" in reason
    assert throttles.evaluate([Record(100.0, "2", throttle=True)], 101.0) is not None
    assert errors.evaluate([Record(100.0, "2", error=True)], 161.0) is None  # older than the period


def test_template_alarms_on_errors_and_duration() -> None:
    props = {"MetricName": "Duration", "Namespace": "AWS/Lambda", "Statistic": "Average", "Period": 60,
             "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "Threshold": 500, "ComparisonOperator":
             "GreaterThanThreshold", "Dimensions": [{"Name": "Resource", "Value": "fn:live"},
                                                    {"Name": "FunctionName", "Value": "fn"}]}
    rule = rule_of("SlowAlarm", props, "fn", "live", ("1", "2"))
    assert rule.versions == frozenset({"1", "2"})
    slow = [Record(30.0, "2", 900.0), Record(90.0, "1", 700.0)]
    assert rule.evaluate(slow, 100.0) is not None  # both windows average above 500
    assert rule.evaluate(slow[1:], 100.0) is None  # one of two is not enough
    by_version = rule_of("E", {"MetricName": "Errors", "Threshold": 2, "ComparisonOperator":
                               "GreaterThanOrEqualToThreshold", "Dimensions": [
                                   {"Name": "ExecutedVersion", "Value": "2"}]}, "fn", "live", ("1", "2"))
    assert by_version.evaluate([Record(1.0, "2", error=True)] * 2, 2.0) is not None
    assert by_version.evaluate([Record(1.0, "1", error=True)] * 5, 2.0) is None
    for bad in ({"MetricName": "CPUUtilization", "Namespace": "AWS/EC2"},
                {"MetricName": "Errors", "Dimensions": [{"Name": "FunctionName", "Value": "other"}]},
                {"MetricName": "Errors", "Statistic": "p99"}):
        with pytest.raises(ValueError):
            rule_of("x", bad, "fn", "live", ("1", "2"))


def test_appspec() -> None:
    spec = {"version": 0.0, "Resources": [{"f": {"Type": "AWS::Lambda::Function", "Properties": {
        "Name": "fn", "Alias": "live", "CurrentVersion": 1, "TargetVersion": 2}}}],
            "Hooks": [{"BeforeAllowTraffic": "pre"}]}
    target, pref = lambda_deployment(json.dumps(spec), "CodeDeployDefault.LambdaCanary10Percent10Minutes")
    assert (target.function, target.alias, target.current, target.target) == ("fn", "live", "1", "2")
    assert (pref.type, pref.pre_traffic, pref.post_traffic) == ("Canary10Percent10Minutes", "pre", None)
    yaml_spec = "Resources:\n  - f:\n      Type: AWS::Lambda::Function\n      Properties: {Name: fn, Alias: a, " \
                "CurrentVersion: '1', TargetVersion: '2'}\n"
    assert lambda_deployment(yaml_spec, None)[1].type == "AllAtOnce"
    with pytest.raises(AppSpecError):
        lambda_deployment(json.dumps({"Resources": []}), None)


def test_window_sums_per_second_and_statistics_match_the_records() -> None:
    from rapid.deployments.alarms import Rule, Window

    records = [Record(10.2, "2", 100.0), Record(10.7, "2", 300.0, error=True), Record(11.1, "2", 50.0),
               Record(11.5, "2", throttle=True), Record(11.6, "1", 999.0, error=True)]
    w = Window(records)
    assert len(w) == 3  # (10, "2"), (11, "2"), (11, "1")
    v2 = frozenset({"2"})

    def value(metric: str, stat: str) -> float | None:
        rule = Rule("r", metric, v2, statistic=stat)
        return rule.value([b for (s, v), b in w.buckets.items() if v == "2"])

    assert value("Errors", "Sum") == 1 and value("Errors", "Average") == 1 / 3 and value("Errors", "SampleCount") == 3
    assert (value("Errors", "Maximum"), value("Errors", "Minimum")) == (1.0, 0.0)
    assert value("Duration", "Average") == 150.0 and value("Duration", "Maximum") == 300.0
    assert value("Duration", "Minimum") == 50.0
    assert value("Throttles", "Sum") == 1 and value("Throttles", "SampleCount") == 4
    assert value("Invocations", "Sum") == 3
    assert Rule("r", "Errors", frozenset({"3"})).evaluate(w, 12.0) is None  # no datapoint: not breaching
    w.prune(11.0)
    assert sorted(w.buckets) == [(11, "1"), (11, "2")]
