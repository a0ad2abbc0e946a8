"""Application Auto Scaling of provisioned concurrency through boto3, on a time-scaled daemon
(RAPID_SCALING_TIME_SCALE=0.01: a metric minute passes in 0.6 s)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.control import ROLE, client, python_zip, wait_active
from tests.daemon import Daemon, run_server, unique, wait_until

DIM = "lambda:function:ProvisionedConcurrency"
SLOW = python_zip("import time\n\ndef handler(event, context):\n    time.sleep(0.25)\n    return 'done'\n")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("autoscaling")
    with run_server(["--data-dir", str(root / "state")], env={"RAPID_SCALING_TIME_SCALE": "0.01"}) as d:
        yield d


@pytest.fixture(scope="module")
def lam(daemon: Daemon):  # type: ignore[no-untyped-def]
    return client(daemon)


@pytest.fixture(scope="module")
def aas(daemon: Daemon):  # type: ignore[no-untyped-def]
    return boto3.client(
        "application-autoscaling", endpoint_url=daemon.url, region_name="us-east-1", aws_access_key_id="test",
        aws_secret_access_key="test", config=Config(retries={"max_attempts": 0}),
    )


def _alias(lam, body: bytes = SLOW) -> str:  # type: ignore[no-untyped-def]
    name = "as-" + unique()
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": body}, Timeout=10)
    wait_active(lam, name)
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    return name


def _requested(lam, name: str) -> int:  # type: ignore[no-untyped-def]
    try:
        cfg = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ProvisionedConcurrencyConfigNotFoundException":
            return 0
        raise
    return cfg["RequestedProvisionedConcurrentExecutions"]


def _code(err: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def test_target_tracking_scales_out_under_load_and_back_in(daemon: Daemon, lam, aas) -> None:  # type: ignore[no-untyped-def]
    name = _alias(lam)
    resource = f"function:{name}:live"
    lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1)
    aas.register_scalable_target(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                                 MinCapacity=1, MaxCapacity=3)
    put = aas.put_scaling_policy(
        PolicyName="pc-utilization", ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 0.5, "PredefinedMetricSpecification": {"PredefinedMetricType":
                                                                  "LambdaProvisionedConcurrencyUtilization"}},
    )
    assert put["PolicyARN"].startswith("arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:")
    assert [a["AlarmName"].split("-")[-6] for a in put["Alarms"]] == ["AlarmHigh", "AlarmLow"]
    (target,) = aas.describe_scalable_targets(ServiceNamespace="lambda", ResourceIds=[resource])["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"], target["ScalableDimension"]) == (1, 3, DIM)
    (policy,) = aas.describe_scaling_policies(ServiceNamespace="lambda", ResourceId=resource)["ScalingPolicies"]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 0.5

    # A sustained load of 5 callers on an alias of at most 3: every provisioned instance stays busy.
    stop = threading.Event()
    answers: list[bytes] = []

    def caller() -> None:
        mine = client(daemon)
        while not stop.is_set():
            answers.append(mine.invoke(FunctionName=name, Qualifier="live")["Payload"].read())

    threads = [threading.Thread(target=caller) for _ in range(5)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: _requested(lam, name) == 3, timeout=120, what="provisioned concurrency at the max")

        def at_max():  # type: ignore[no-untyped-def]
            acts = aas.describe_scaling_activities(ServiceNamespace="lambda", ResourceId=resource,
                                                   IncludeNotScaledActivities=True)["ScalingActivities"]
            return [a for a in acts if a.get("NotScaledReasons")]
        (held, *_) = wait_until(at_max, timeout=60, what="a not-scaled activity at the max")
        assert held["NotScaledReasons"] == [{"Code": "AlreadyAtMaxCapacity", "MaxCapacity": 3, "CurrentCapacity": 3}]
        metrics = daemon.request("GET", "/metrics").body.decode()
        assert f'rapid_provisioned_concurrency{{function="{name}",qualifier="live"}} 3' in metrics
        assert f'rapid_provisioned_concurrency_utilization{{function="{name}",qualifier="live"}}' in metrics
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert answers and set(answers) == {b'"done"'}
    wait_until(lambda: _requested(lam, name) == 1, timeout=120, what="provisioned concurrency back at the min")

    acts = aas.describe_scaling_activities(ServiceNamespace="lambda", ResourceId=resource)["ScalingActivities"]
    ups = [a for a in acts if "AlarmHigh" in a["Cause"]]
    downs = [a for a in acts if "AlarmLow" in a["Cause"]]
    assert ups and downs and all(a["StatusCode"] == "Successful" for a in ups + downs)
    assert {a["Description"] for a in ups} <= {"Setting desired concurrency to 2.", "Setting desired concurrency to 3."}
    assert downs[0]["Description"] == "Setting desired concurrency to 1."
    assert acts[0]["StartTime"] >= acts[-1]["StartTime"]  # newest first
    assert "triggered policy pc-utilization" in ups[0]["Cause"]


def test_scheduled_actions_set_the_bounds(lam, aas) -> None:  # type: ignore[no-untyped-def]
    name = _alias(lam, python_zip("def handler(event, context):\n    return 1\n"))
    resource = f"function:{name}:live"
    aas.register_scalable_target(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                                 MinCapacity=0, MaxCapacity=4)
    assert _requested(lam, name) == 0
    aas.put_scheduled_action(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                             ScheduledActionName="morning", Schedule="rate(1 minute)",
                             ScalableTargetAction={"MinCapacity": 2, "MaxCapacity": 4})
    wait_until(lambda: _requested(lam, name) == 2, timeout=60, what="the scheduled Min applied")
    aas.delete_scheduled_action(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                                ScheduledActionName="morning")
    # at(): once, two minutes from now on the autoscaler's clock (a target's CreationTime tells it).
    (t,) = aas.describe_scalable_targets(ServiceNamespace="lambda", ResourceIds=[resource])["ScalableTargets"]
    when = (t["CreationTime"] + timedelta(minutes=2)).astimezone(timezone.utc)
    later = max(when, datetime.now(timezone.utc)) + timedelta(minutes=1)
    aas.put_scheduled_action(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                             ScheduledActionName="evening", Schedule=f"at({later:%Y-%m-%dT%H:%M:%S})",
                             ScalableTargetAction={"MinCapacity": 1, "MaxCapacity": 1})
    (listed,) = aas.describe_scheduled_actions(ServiceNamespace="lambda", ResourceId=resource)["ScheduledActions"]
    assert listed["ScheduledActionName"] == "evening" and listed["ScalableTargetAction"] == {"MinCapacity": 1,
                                                                                          "MaxCapacity": 1}
    wait_until(lambda: _requested(lam, name) == 1, timeout=60, what="the at() action's Max applied")
    (t,) = aas.describe_scalable_targets(ServiceNamespace="lambda", ResourceIds=[resource])["ScalableTargets"]
    assert (t["MinCapacity"], t["MaxCapacity"]) == (1, 1)
    acts = aas.describe_scaling_activities(ServiceNamespace="lambda", ResourceId=resource)["ScalingActivities"]
    causes = [a["Cause"] for a in acts]
    assert "scheduled action name morning was triggered" in causes
    assert "scheduled action name evening was triggered" in causes
    assert "minimum capacity was set to 2" in causes and "maximum capacity was set to 1" in causes
    aas.deregister_scalable_target(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM)
    assert aas.describe_scheduled_actions(ServiceNamespace="lambda", ResourceId=resource)["ScheduledActions"] == []
    assert _requested(lam, name) == 1  # the provisioned concurrency stays, as on AWS


def test_bad_requests_get_aws_errors(lam, aas) -> None:  # type: ignore[no-untyped-def]
    name = _alias(lam, python_zip("def handler(event, context):\n    return 1\n"))
    resource = f"function:{name}:live"
    with pytest.raises(ClientError) as err:
        aas.put_scaling_policy(PolicyName="p", ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                               PolicyType="TargetTrackingScaling",
                               TargetTrackingScalingPolicyConfiguration={"TargetValue": 0.5})
    assert _code(err)[0] == "ValidationException"  # no metric
    spec = {"TargetValue": 0.5, "PredefinedMetricSpecification": {
        "PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"}}
    with pytest.raises(ClientError) as err:
        aas.put_scaling_policy(PolicyName="p", ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                               PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration=spec)
    assert _code(err) == ("ObjectNotFoundException", "No scalable target registered for service namespace: lambda, "
                          f"resource ID: {resource}, scalable dimension: {DIM}")
    for resource_id, bounds in ((f"function:{name}:nope", (0, 2)), (f"function:{name}", (0, 2)),
                                (f"function:{name}:$LATEST", (0, 2)), (resource, (3, 2))):
        with pytest.raises(ClientError) as err:
            aas.register_scalable_target(ServiceNamespace="lambda", ResourceId=resource_id, ScalableDimension=DIM,
                                         MinCapacity=bounds[0], MaxCapacity=bounds[1])
        assert _code(err)[0] == "ValidationException", resource_id
    aas.register_scalable_target(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                                 MinCapacity=0, MaxCapacity=2)
    with pytest.raises(ClientError) as err:
        aas.put_scaling_policy(PolicyName="p", ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                               PolicyType="TargetTrackingScaling",
                               TargetTrackingScalingPolicyConfiguration={**spec, "TargetValue": 0.95})
    assert "between 0.1 and 0.9" in _code(err)[1]
    with pytest.raises(ClientError) as err:
        aas.put_scheduled_action(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                                 ScheduledActionName="x", Schedule="rate(2 minute)")
    assert _code(err)[0] == "ValidationException" and "rate(2 minute)" in _code(err)[1]
    with pytest.raises(ClientError) as err:
        aas.describe_scalable_targets(ServiceNamespace="ecs")
    assert _code(err)[0] == "ValidationException"
    with pytest.raises(ClientError) as err:
        aas.delete_scaling_policy(PolicyName="none", ServiceNamespace="lambda", ResourceId=resource,
                                  ScalableDimension=DIM)
    assert _code(err)[0] == "ObjectNotFoundException"
    aas.deregister_scalable_target(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM)
    with pytest.raises(ClientError) as err:
        aas.deregister_scalable_target(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM)
    assert _code(err)[0] == "ObjectNotFoundException"


def test_a_deleted_functions_target_stays_quiet(daemon: Daemon, lam, aas) -> None:  # type: ignore[no-untyped-def]
    name = _alias(lam, python_zip("def handler(event, context):\n    return 1\n"))
    resource = f"function:{name}:live"
    aas.register_scalable_target(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                                 MinCapacity=1, MaxCapacity=2)
    wait_until(lambda: _requested(lam, name) == 1, timeout=30, what="the Min provisioned")
    lam.delete_function(FunctionName=name)
    time.sleep(1.5)  # a few autoscaler rounds (not a timing assertion: nothing may happen in them)
    acts = aas.describe_scaling_activities(ServiceNamespace="lambda", ResourceId=resource)["ScalingActivities"]
    assert [a["StatusCode"] for a in acts] == ["Successful"]  # only the Min; no failed retries
    assert not [line for line in daemon.stderr + daemon.lines if "autoscaling:" in line]
    aas.deregister_scalable_target(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM)
