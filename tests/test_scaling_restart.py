"""What autoscaling and deployments keep in the data dir survives a restart; a deployment
cut short by a killed daemon is rolled back when rapid starts again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import boto3
from botocore.config import Config

from tests.control import ROLE, client, python_zip, wait_active, wait_updated
from tests.daemon import run_server, wait_until

DIM = "lambda:function:ProvisionedConcurrency"
ENV = {"RAPID_SCALING_TIME_SCALE": "0.01"}
AWS = shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")


def _clients(url: str):  # type: ignore[no-untyped-def]
    kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test",
              config=Config(retries={"max_attempts": 0}))
    return boto3.client("application-autoscaling", **kw), boto3.client("codedeploy", **kw)


def test_targets_policies_actions_and_deployments_survive_a_kill(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    resource = "function:kept:live"
    with run_server(["--data-dir", state], env=ENV, expect_exit=None) as d:
        lam = client(d)
        aas, cd = _clients(d.url)
        lam.create_function(FunctionName="kept", Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip("def handler(e, c):\n    return 1\n")})
        wait_active(lam, "kept")
        lam.publish_version(FunctionName="kept")
        lam.create_alias(FunctionName="kept", Name="live", FunctionVersion="1")
        lam.update_function_code(FunctionName="kept", ZipFile=python_zip("def handler(e, c):\n    return 2\n"))
        wait_updated(lam, "kept")
        lam.publish_version(FunctionName="kept")
        aas.register_scalable_target(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                                     MinCapacity=0, MaxCapacity=3)
        aas.put_scaling_policy(PolicyName="p", ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                               PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration={
                                   "TargetValue": 0.7, "ScaleInCooldown": 120, "PredefinedMetricSpecification": {
                                       "PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"}})
        aas.put_scheduled_action(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=DIM,
                                 ScheduledActionName="nightly", Schedule="cron(0 2 * * ? *)",
                                 Timezone="Europe/Paris", ScalableTargetAction={"MaxCapacity": 1})
        spec = {"Resources": [{"f": {"Type": "AWS::Lambda::Function", "Properties": {
            "Name": "kept", "Alias": "live", "CurrentVersion": "1", "TargetVersion": "2"}}}]}
        did = cd.create_deployment(applicationName="a", deploymentGroupName="g",
                                   deploymentConfigName="CodeDeployDefault.LambdaCanary10Percent30Minutes",
                                   revision={"revisionType": "AppSpecContent",
                                             "appSpecContent": {"content": json.dumps(spec)}})["deploymentId"]
        wait_until(lambda: lam.get_alias(FunctionName="kept", Name="live").get("RoutingConfig", {})
                   .get("AdditionalVersionWeights") == {"2": 0.1}, timeout=30, what="the canary's 10 %")
        d.stop(signal.SIGKILL)

    with run_server(["--data-dir", state], env=ENV) as d:
        lam = client(d)
        aas, cd = _clients(d.url)
        (t,) = aas.describe_scalable_targets(ServiceNamespace="lambda")["ScalableTargets"]
        assert (t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) == (resource, 0, 3)
        (p,) = aas.describe_scaling_policies(ServiceNamespace="lambda", ResourceId=resource)["ScalingPolicies"]
        assert p["TargetTrackingScalingPolicyConfiguration"]["ScaleInCooldown"] == 120
        (a,) = aas.describe_scheduled_actions(ServiceNamespace="lambda")["ScheduledActions"]
        assert (a["Schedule"], a["Timezone"]) == ("cron(0 2 * * ? *)", "Europe/Paris")
        info = cd.get_deployment(deploymentId=did)["deploymentInfo"]
        assert info["status"] == "Failed" and "rapid stopped during the deployment" in info["errorInformation"]["message"]
        alias = lam.get_alias(FunctionName="kept", Name="live")
        assert alias["FunctionVersion"] == "1" and not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")
        # The AWS CLI reads the same API.
        out = subprocess.run([str(AWS), "application-autoscaling", "describe-scalable-targets",
                              "--service-namespace", "lambda", "--endpoint-url", d.url, "--region", "us-east-1",
                              "--output", "json"], capture_output=True, text=True, timeout=60,
                             env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "PATH": "/usr/bin:/bin",
                                  "HOME": str(tmp_path)})
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["ScalableTargets"][0]["ResourceId"] == resource
