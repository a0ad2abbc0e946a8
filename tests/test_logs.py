"""Logs a person can read: kept per function, version and log stream in the data dir, read
with ``rapid logs`` (also ``--follow``, and with the daemon stopped), with boto3's CloudWatch
Logs client, and with the real AWS CLI v2's ``aws logs tail`` (``--follow`` included)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import boto3
import pytest

from tests.daemon import Daemon, run_cli, run_server, wait_until

AWS2 = "/usr/bin/aws"  # Debian's awscli is v2 (.ci/steps/75-awscli-v2.sh); the venv's is v1, without `logs tail`
TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Talker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      Runtime: python3.12
      AutoPublishAlias: live
"""
CODE = """
def handler(event, context):
    print("said " + event.get("say", "nothing"))
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}
"""


def _app(tmp_path: Path) -> Path:
    (tmp_path / "app" / "src").mkdir(parents=True)
    (tmp_path / "app" / "src" / "app.py").write_text(CODE)
    (tmp_path / "app" / "template.yaml").write_text(TEMPLATE)
    return tmp_path / "app" / "template.yaml"


def _aws2() -> str:
    ok = os.path.exists(AWS2) and subprocess.run([AWS2, "--version"], capture_output=True, text=True,
                                                 timeout=60).stdout.startswith("aws-cli/2")
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail("the AWS CLI v2 is missing at /usr/bin/aws (.ci/steps/75-awscli-v2.sh installs it)")
        pytest.skip("the AWS CLI v2 is not installed at /usr/bin/aws")
    return AWS2


def _env() -> dict[str, str]:
    return {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_PAGER": ""}


class Follower:
    """A command that keeps printing (``--follow``): its lines collected, ended by SIGINT."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 40) -> str:
        return wait_until(lambda: next((l for l in self.lines if text in l), None), timeout=timeout,
                          what=f"{text!r} from {self.proc.args}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the follower did not stop on SIGINT") from None


def _say(daemon: Daemon, text: str, qualifier: str = "live") -> None:
    reply = daemon.request("POST", f"/2015-03-31/functions/Talker/invocations?Qualifier={qualifier}",
                           f'{{"say": "{text}"}}'.encode())
    assert reply.status == 200, reply.body


def test_aws_logs_tail_and_follow(tmp_path: Path) -> None:
    aws = _aws2()
    with run_server(["--template", str(_app(tmp_path))]) as daemon:
        _say(daemon, "first")
        base = [aws, "--endpoint-url", daemon.url, "logs", "tail", "/aws/lambda/Talker"]
        out = subprocess.run([*base, "--since", "5m"], capture_output=True, text=True, env=_env(), timeout=60)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        said = next(l for l in lines if "said first" in l)
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00 \d{4}/\d\d/\d\d/\[1\][0-9a-f]{32} said first$",
                        said), said
        assert any(" START RequestId: " in l and "Version: 1" in l for l in lines)
        assert any(" REPORT RequestId: " in l for l in lines)
        filtered = subprocess.run([*base, "--since", "5m", "--filter-pattern", "said"], capture_output=True,
                                  text=True, env=_env(), timeout=60)
        assert [l.split(" ", 2)[2] for l in filtered.stdout.splitlines()] == ["said first"]
        follower = Follower([*base, "--follow", "--since", "5m", "--format", "short"])
        try:
            follower.wait_for("said first")
            marker = uuid.uuid4().hex
            _say(daemon, marker)
            follower.wait_for(f"said {marker}")  # the CLI asks every 5 s
            _say(daemon, "again")
            follower.wait_for("said again")
        finally:
            assert follower.stop() == 0
        assert sum("said first" in l for l in follower.lines) == 1  # nothing printed twice


def test_rapid_logs_follow_filter_colour_and_a_stopped_daemon(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with run_server(["--template", str(_app(tmp_path)), "--data-dir", str(data)]) as daemon:
        _say(daemon, "one")
        base = [sys.executable, "-m", "rapid", "logs", "Talker", "--endpoint-url", daemon.url]
        follower = Follower([*base, "--follow"])
        try:
            follower.wait_for("said one")
            marker = uuid.uuid4().hex
            _say(daemon, marker, qualifier="$LATEST")
            line = follower.wait_for(f"said {marker}")
            assert re.match(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32} \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} said ",
                            line), line
        finally:
            assert follower.stop() == 0
        out = run_cli(["logs", "Talker", "--endpoint-url", daemon.url, "--filter", "said", "--color", "on"])
        assert out.returncode == 0, out.stderr
        assert len(out.stdout.splitlines()) == 2 and "\033[36m" in out.stdout  # the stream in cyan
        assert run_cli(["logs", "Nobody", "--endpoint-url", daemon.url]).returncode == 1
    # the daemon has stopped: the logs are still in the data dir
    out = run_cli(["logs", "Talker", "--data-dir", str(data), "--since", "1h"])
    assert out.returncode == 0, out.stderr
    assert "said one" in out.stdout and f"said {marker}" in out.stdout and "REPORT RequestId" in out.stdout
    assert run_cli(["logs", "Talker", "--since", "sometime", "--data-dir", str(data)]).returncode == 2


def test_the_cloudwatch_logs_api_with_boto3(tmp_path: Path) -> None:
    with run_server(["--template", str(_app(tmp_path))]) as daemon:
        for word in ("a", "b", "c"):
            _say(daemon, word)
        _say(daemon, "d", qualifier="$LATEST")
        logs = boto3.client("logs", endpoint_url=daemon.url, region_name="us-east-1", aws_access_key_id="x",
                            aws_secret_access_key="x")
        groups = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
        assert [g["logGroupName"] for g in groups] == ["/aws/lambda/Talker"] and groups[0]["storedBytes"] > 0
        streams = logs.describe_log_streams(logGroupName="/aws/lambda/Talker", orderBy="LastEventTime",
                                            descending=True)["logStreams"]
        assert len(streams) == 2  # one instance of version 1, one of $LATEST
        assert "[$LATEST]" in streams[0]["logStreamName"] and "[1]" in streams[1]["logStreamName"]
        events = logs.get_log_events(logGroupName="/aws/lambda/Talker", logStreamName=streams[1]["logStreamName"],
                                     startFromHead=True)["events"]
        said = [e["message"] for e in events if e["message"].startswith("said")]
        assert said == ["said a\n", "said b\n", "said c\n"]
        assert events[0]["message"].startswith("START RequestId: ")
        page = logs.filter_log_events(logGroupName="/aws/lambda/Talker", filterPattern="said", limit=2)
        assert [e["message"] for e in page["events"]] == ["said a\n", "said b\n"] and "nextToken" in page
        rest = logs.filter_log_events(logGroupName="/aws/lambda/Talker", filterPattern="said",
                                      nextToken=page["nextToken"])
        assert [e["message"] for e in rest["events"]] == ["said c\n", "said d\n"] and "nextToken" not in rest
        with pytest.raises(logs.exceptions.ResourceNotFoundException):
            logs.filter_log_events(logGroupName="/aws/lambda/Nobody")
