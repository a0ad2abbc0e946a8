"""Autoscaling and gradual deployments across the nodes of a cluster (rapid.cluster.control_owner,
rapid.cluster.control_sync).

The records (scalable targets, policies, activities, deployments) are shared: written on
one node, listed on the others. One node at a time holds the control lease and runs the
autoscaler and the deployments: the others never run an autoscaling round (their round
counter stays 0) and record no activity; each change gives exactly one activity. Node 0 is
started first, so it holds the lease; killed with SIGKILL, another node takes over. The
autoscaler measures the cluster: load on a node that does not run it scales the function
out. A deployment started through node 1 runs on node 0, is described and stopped through
node 1; one left running by a node that dies is failed and rolled back by the next holder.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.cluster import metric
from tests.control import ROLE, client, python_zip, wait_active, wait_updated
from tests.daemon import Daemon, run_server, unique, wait_until
from tests.nats import nats_server

pytestmark = pytest.mark.slow

DIM = "lambda:function:ProvisionedConcurrency"
SLEEPER = "import time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return 'done'\n"


def _aas(node: Daemon):  # type: ignore[no-untyped-def]
    return boto3.client("application-autoscaling", endpoint_url=node.url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 0}))


def _cd(node: Daemon):  # type: ignore[no-untyped-def]
    return boto3.client("codedeploy", endpoint_url=node.url, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test", config=Config(retries={"max_attempts": 0}))


@contextlib.contextmanager
def _nodes(tmp_path: Path, n: int, env: dict[str, str] | None = None) -> Iterator[list[Daemon]]:
    """``n`` nodes; node 0 starts alone and takes the control lease before the others start
    (it may be killed: its exit status is not checked)."""
    with nats_server() as nats, contextlib.ExitStack() as stack:
        def start(i: int) -> Daemon:
            return stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / f"n{i}")],
                                                  expect_exit=None if i == 0 else 0, env=env))
        first = start(0)
        wait_until(lambda: metric(first, "rapid_cluster_control_owner") == 1, timeout=15,
                   what="node 0 to hold the control lease")
        nodes = [first] + [start(i) for i in range(1, n)]
        wait_until(lambda: all(metric(node, "rapid_cluster_nodes") == n for node in nodes), timeout=15,
                   what="every node to see the others")
        yield nodes


def _owners(nodes: list[Daemon]) -> list[int]:
    return [i for i, node in enumerate(nodes) if metric(node, "rapid_cluster_control_owner") == 1]


def _activities(node: Daemon, resource: str) -> list[dict]:  # type: ignore[type-arg]
    return _aas(node).describe_scaling_activities(ServiceNamespace="lambda",  # type: ignore[no-any-return]
                                                  ResourceId=resource)["ScalingActivities"]


def _provisioned(node: Daemon, name: str, qualifier: str) -> tuple[int, int, str]:
    """(Requested, Allocated, Status); (0, 0, "") while there is no setting (or the version
    has not reached that node yet)."""
    try:
        c = client(node).get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("ProvisionedConcurrencyConfigNotFoundException",
                                                 "ResourceNotFoundException")
        return 0, 0, ""
    return (c["RequestedProvisionedConcurrentExecutions"], c["AllocatedProvisionedConcurrentExecutions"],
            c["Status"])


def test_one_node_runs_the_autoscaler_and_another_takes_over(tmp_path: Path) -> None:
    with _nodes(tmp_path, 3) as nodes:
        name = f"scaled-{unique()}"
        lam = client(nodes[1])
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(SLEEPER)}, Timeout=30)
        wait_active(lam, name)
        version = lam.publish_version(FunctionName=name)["Version"]
        resource = f"function:{name}:{version}"

        # Registered on node 1 (which does not run the autoscaler): listed on node 2.
        _aas(nodes[1]).register_scalable_target(ServiceNamespace="lambda", ResourceId=resource,
                                                ScalableDimension=DIM, MinCapacity=3, MaxCapacity=6)
        listed = wait_until(lambda: _aas(nodes[2]).describe_scalable_targets(
            ServiceNamespace="lambda", ResourceIds=[resource])["ScalableTargets"], timeout=5,
            what="the target on node 2")
        assert (listed[0]["MinCapacity"], listed[0]["MaxCapacity"]) == (3, 6)
        # Node 0 applies the minimum, once: one activity, seen on every node.
        wait_until(lambda: all(_provisioned(n, name, version) == (3, 3, "READY") for n in nodes), timeout=40,
                   what="3 provisioned, ready, on every node")
        for node in nodes:
            acts = _activities(node, resource)
            assert [(a["Description"], a["StatusCode"]) for a in acts] == [
                ("Setting desired concurrency to 3.", "Successful")]
        assert metric(nodes[0], "rapid_cluster_autoscaler_rounds_total") > 0
        assert [metric(n, "rapid_cluster_autoscaler_rounds_total") for n in nodes[1:]] == [0, 0]
        assert _owners(nodes) == [0]
        # Every node's figures are the cluster's: 3 ready, though each holds one.
        assert [metric(n, "rapid_cluster_instances") for n in nodes] == [1, 1, 1]
        for node in nodes:
            text = node.request("GET", "/metrics").body.decode()
            assert f'rapid_provisioned_concurrency_ready{{function="{name}",qualifier="{version}"}} 3' in text

        # Node 0 dies: one of the others takes the lease over, and scales from then on.
        nodes[0].proc.send_signal(signal.SIGKILL)
        nodes[0].proc.wait(10)
        survivors = nodes[1:]
        [owner] = wait_until(lambda: _owners(survivors), timeout=20, what="a survivor to take the lease")
        other = survivors[1 - owner]
        _aas(other).register_scalable_target(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                                             MinCapacity=4)
        wait_until(lambda: all(_provisioned(n, name, version) == (4, 4, "READY") for n in survivors), timeout=40,
                   what="4 provisioned, ready, on both survivors")
        for node in survivors:
            assert [a["Description"] for a in _activities(node, resource)] == [
                "Setting desired concurrency to 4.", "Setting desired concurrency to 3."]  # newest first
        assert metric(survivors[owner], "rapid_cluster_control_takeovers_total") == 1
        assert metric(other, "rapid_cluster_autoscaler_rounds_total") == 0
        assert _owners(survivors) == [owner]


def test_target_tracking_reads_the_whole_cluster(tmp_path: Path) -> None:
    # Provisioned 2 (one on each node), load on node 1 only: node 0 runs the autoscaler and
    # sees a utilization of 0.5 (its own instance is idle), above the target: it scales out.
    with _nodes(tmp_path, 2, env={"RAPID_SCALING_TIME_SCALE": "0.01"}) as nodes:
        name = f"tracked-{unique()}"
        lam = client(nodes[0])
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(SLEEPER)}, Timeout=30)
        wait_active(lam, name)
        version = lam.publish_version(FunctionName=name)["Version"]
        resource = f"function:{name}:{version}"
        aas = _aas(nodes[0])
        aas.register_scalable_target(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                                     MinCapacity=2, MaxCapacity=4)
        wait_until(lambda: _provisioned(nodes[1], name, version) == (2, 2, "READY"), timeout=40,
                   what="2 provisioned, one on each node")
        aas.put_scaling_policy(
            PolicyName="utilization", ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
            PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 0.3, "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"}})
        stop = threading.Event()

        def caller() -> None:
            mine = client(nodes[1])
            while not stop.is_set():
                mine.invoke(FunctionName=name, Qualifier=version, Payload=b'{"sleep": 0.2}')["Payload"].read()

        threads = [threading.Thread(target=caller) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: _provisioned(nodes[1], name, version)[0] > 2, timeout=90,
                       what="the autoscaler on node 0 to scale out for node 1's load")
        finally:
            stop.set()
            for t in threads:
                t.join()
        ups = [a for a in _activities(nodes[1], resource) if "AlarmHigh" in a["Cause"]]
        assert ups and ups[-1]["StatusCode"] == "Successful"
        assert metric(nodes[1], "rapid_cluster_autoscaler_rounds_total") == 0


def _publish(lam, name: str) -> str | None:  # type: ignore[no-untyped-def]
    try:
        return lam.publish_version(FunctionName=name)["Version"]  # type: ignore[no-any-return]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ResourceConflictException"
        return None


def _has(node: Daemon, name: str, version: str) -> bool:
    try:
        client(node).get_function_configuration(FunctionName=name, Qualifier=version)
    except ClientError:
        return False
    return True


def _deploy(node: Daemon, name: str, config: str, current: str, target: str) -> str:
    import json

    spec = {"version": 0.0, "Resources": [{"fn": {"Type": "AWS::Lambda::Function", "Properties": {
        "Name": name, "Alias": "live", "CurrentVersion": current, "TargetVersion": target}}}]}
    return _cd(node).create_deployment(  # type: ignore[no-any-return]
        applicationName="app", deploymentGroupName="group", deploymentConfigName=config,
        revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(spec)}})["deploymentId"]


def _info(node: Daemon, deployment_id: str) -> dict:  # type: ignore[type-arg]
    return _cd(node).get_deployment(deploymentId=deployment_id)["deploymentInfo"]  # type: ignore[no-any-return]


def _alias(node: Daemon, name: str) -> tuple[str, dict]:  # type: ignore[type-arg]
    a = client(node).get_alias(FunctionName=name, Name="live")
    return a["FunctionVersion"], a.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})


def test_a_deployment_is_run_by_one_node_and_followed_by_all(tmp_path: Path) -> None:
    with _nodes(tmp_path, 3) as nodes:
        name = f"deployed-{unique()}"
        lam = client(nodes[1])
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip("def handler(e, c):\n    return 1\n")})
        wait_active(lam, name)
        one = lam.publish_version(FunctionName=name)["Version"]
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion=one)
        lam.update_function_code(FunctionName=name, ZipFile=python_zip("def handler(e, c):\n    return 2\n"))
        wait_updated(lam, name)
        # Every node settles the new $LATEST in the shared registry: a write racing those is
        # refused with AWS's "update in progress" conflict, and a client tries again.
        two = wait_until(lambda: _publish(lam, name), timeout=15, what="the new version published")
        wait_until(lambda: all(_has(n, name, two) for n in nodes), timeout=10, what="the new version everywhere")

        # Started through node 1: node 0 runs it (10 % for 30 minutes); node 2 follows it.
        did = _deploy(nodes[1], name, "CodeDeployDefault.LambdaCanary10Percent30Minutes", one, two)
        wait_until(lambda: _info(nodes[2], did)["status"] == "InProgress", timeout=5, what="InProgress on node 2")
        wait_until(lambda: _alias(nodes[2], name) == (one, {two: 0.1}), timeout=5, what="10 % on the new version")
        assert did in _cd(nodes[2]).list_deployments()["deployments"]
        assert metric(nodes[1], "rapid_cluster_control_owner") == 0
        # Stopped through node 2: rolled back everywhere.
        stopped = _cd(nodes[2]).stop_deployment(deploymentId=did)
        assert stopped["status"] == "Pending"
        for node in nodes:
            wait_until(lambda node=node: _info(node, did)["status"] == "Stopped", timeout=5,  # type: ignore[misc]
                       what="Stopped on every node")
            assert _alias(node, name) == (one, {})
        info = _info(nodes[1], did)
        assert info["errorInformation"]["code"] == "MANUAL_STOP" and "rollbackInfo" in info

        # One left running by the node that dies is failed, and rolled back, by the next one.
        again = _deploy(nodes[2], name, "CodeDeployDefault.LambdaCanary10Percent30Minutes", one, two)
        wait_until(lambda: _alias(nodes[1], name) == (one, {two: 0.1}), timeout=5, what="10 % again")
        nodes[0].proc.send_signal(signal.SIGKILL)
        nodes[0].proc.wait(10)
        ended = wait_until(lambda: _info(nodes[1], again)["status"] == "Failed" and _info(nodes[1], again),
                           timeout=30, what="the orphaned deployment failed")
        assert ended["errorInformation"]["message"] == "the node running the deployment stopped"
        for node in nodes[1:]:
            wait_until(lambda node=node: _alias(node, name) == (one, {}), timeout=5,  # type: ignore[misc]
                       what="the alias back on the old version")
            assert _info(node, again)["status"] == "Failed"
