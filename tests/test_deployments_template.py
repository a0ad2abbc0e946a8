"""A SAM template with AutoPublishAlias and DeploymentPreference under ``rapid serve
--template --watch`` (time-scaled): a good code change shifts the alias by canary to 100 %;
a slow one is rolled back by the template's own CloudWatch alarm on Duration."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tests.daemon import Daemon, run_cli, run_server, wait_until

TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  Greeter:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: greeter
      CodeUri: src/
      Handler: app.handler
      Runtime: python3.12
      Timeout: 10
      AutoPublishAlias: live
      DeploymentPreference:
        Type: Canary10Percent5Minutes
        Alarms:
          - !Ref GreeterSlow
  GreeterSlow:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/Lambda
      MetricName: Duration
      Statistic: Maximum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 250
      ComparisonOperator: GreaterThanThreshold
      Dimensions:
        - Name: Resource
          Value: !Sub "${Greeter}:live"
        - Name: FunctionName
          Value: !Ref Greeter
"""


def _code(folder: Path, body: str) -> None:
    (folder / "src" / "app.py").write_text(body)


def _alias(d: Daemon) -> dict:  # type: ignore[type-arg]
    r = d.request("GET", "/2015-03-31/functions/greeter/aliases/live")
    return r.json() if r.status == 200 else {}  # type: ignore[return-value]


def _deployments(d: Daemon) -> list[dict]:  # type: ignore[type-arg]
    return d.request("GET", "/_rapid/api/deployments").json()  # type: ignore[return-value]


def test_template_deployments_shift_and_roll_back(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    _code(tmp_path, "def handler(event, context):\n    return 'v1'\n")
    env = {"RAPID_SCALING_TIME_SCALE": "0.01"}
    with run_server(["--template", str(tmp_path / "template.yaml"), "--watch", "--data-dir", str(tmp_path / "state"),
                     "--api-port", "0"], env=env) as d:
        wait_until(lambda: _alias(d).get("FunctionVersion") == "1", timeout=30, what="alias live on version 1")
        assert _deployments(d) == []  # the first version: nothing to shift from

        _code(tmp_path, "def handler(event, context):\n    return 'v2'\n")
        wait_until(lambda: any(x["status"] == "Succeeded" for x in _deployments(d)), timeout=60,
                   what="the canary of version 2 to succeed")
        (good,) = _deployments(d)
        assert (good["from_version"], good["to_version"], good["type"]) == ("1", "2", "Canary10Percent5Minutes")
        assert [e["weight"] for e in good["events"] if e["event"] == "AllowTraffic"] == [0.1, 1.0]
        assert _alias(d)["FunctionVersion"] == "2"
        assert d.invoke("greeter:live").body == b'"v2"'

        stop = threading.Event()
        answers: list[tuple[int, str, bytes]] = []

        def caller() -> None:
            while not stop.is_set():
                r = d.invoke("greeter:live")
                answers.append((r.status, r.headers.get("x-amz-executed-version", ""), r.body))

        threads = [threading.Thread(target=caller) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            _code(tmp_path, "import time\n\ndef handler(event, context):\n    time.sleep(0.4)\n    return 'v3'\n")
            bad = wait_until(lambda: next((x for x in _deployments(d) if x["to_version"] == "3"
                                           and x["status"] == "Failed"), None), timeout=60,
                             what="the slow version 3 to be rolled back")
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert bad["error_code"] == "ALARM_ACTIVE" and "alarm GreeterSlow: Duration Maximum" in bad["reason"], bad
        assert [e["weight"] for e in bad["events"] if e["event"] == "AllowTraffic"] == [0.1]
        alias = _alias(d)
        assert alias["FunctionVersion"] == "2" and not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")
        assert {a[0] for a in answers} == {200}
        assert {(a[1], a[2]) for a in answers} <= {("2", b'"v2"'), ("3", b'"v3"')}
        out = run_cli(["deployments", "--data-dir", str(tmp_path / "state"), "--function", "greeter", "--json"])
        assert out.returncode == 0, out.stderr
        assert [x["id"] for x in json.loads(out.stdout)] == [bad["id"], good["id"]]
