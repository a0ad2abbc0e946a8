"""Gradual deployments of an alias on a time-scaled daemon (RAPID_SCALING_TIME_SCALE=0.01:
Canary10Percent5Minutes holds its 10 % for 3 s), started through CodeDeploy's
CreateDeployment with a Lambda AppSpec, followed with GetDeployment and ``rapid deployments``."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from tests.control import ROLE, client, python_zip, wait_active, wait_updated
from tests.daemon import Daemon, run_cli, run_server, unique, wait_until

HOOK = """import json, os, urllib.request

def handler(event, context):
    verdict = os.environ["VERDICT"]
    body = json.dumps({"deploymentId": event["DeploymentId"], "status": verdict,
                       "lifecycleEventHookExecutionId": event["LifecycleEventHookExecutionId"]}).encode()
    req = urllib.request.Request(os.environ["RAPID_ENDPOINT"], data=body, headers={
        "X-Amz-Target": "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus",
        "Content-Type": "application/x-amz-json-1.1"})
    urllib.request.urlopen(req, timeout=10).read()
    return verdict
"""


def _answer(text: str) -> bytes:
    return python_zip(f"def handler(event, context):\n    return {text!r}\n")


BAD = python_zip("def handler(event, context):\n    raise RuntimeError('the new version is broken')\n")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("deployments")
    with run_server(["--data-dir", str(root / "state")], env={"RAPID_SCALING_TIME_SCALE": "0.01"}) as d:
        d.data_dir = str(root / "state")  # type: ignore[attr-defined]
        yield d


@pytest.fixture(scope="module")
def lam(daemon: Daemon):  # type: ignore[no-untyped-def]
    return client(daemon)


@pytest.fixture(scope="module")
def cd(daemon: Daemon):  # type: ignore[no-untyped-def]
    return boto3.client("codedeploy", endpoint_url=daemon.url, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test", config=Config(retries={"max_attempts": 0}))


def _function(lam, first: bytes) -> str:  # type: ignore[no-untyped-def]
    name = "dep-" + unique()
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": first})
    wait_active(lam, name)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    return name


def _publish(lam, name: str, code: bytes) -> str:  # type: ignore[no-untyped-def]
    lam.update_function_code(FunctionName=name, ZipFile=code)
    wait_updated(lam, name)
    return lam.publish_version(FunctionName=name)["Version"]


def _hook(lam, daemon: Daemon, verdict: str) -> str:  # type: ignore[no-untyped-def]
    name = "hook-" + unique()
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": python_zip(HOOK)}, Timeout=15,
                        Environment={"Variables": {"VERDICT": verdict, "RAPID_ENDPOINT": daemon.url}})
    wait_active(lam, name)
    return name


def _deploy(cd, name: str, current: str, target: str, config: str, pre: str | None = None,  # type: ignore[no-untyped-def]
            post: str | None = None) -> str:
    hooks = ([{"BeforeAllowTraffic": pre}] if pre else []) + ([{"AfterAllowTraffic": post}] if post else [])
    spec = {"version": 0.0, "Resources": [{"fn": {"Type": "AWS::Lambda::Function", "Properties": {
        "Name": name, "Alias": "live", "CurrentVersion": current, "TargetVersion": target}}}], "Hooks": hooks}
    return cd.create_deployment(applicationName="app", deploymentGroupName="group", deploymentConfigName=config,
                                revision={"revisionType": "AppSpecContent",
                                          "appSpecContent": {"content": json.dumps(spec)}})["deploymentId"]


def _ended(cd, deployment_id: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    def probe():  # type: ignore[no-untyped-def]
        info = cd.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        return info if info["status"] in ("Succeeded", "Failed", "Stopped") else None
    return wait_until(probe, timeout=90, what=f"deployment {deployment_id} to end")  # type: ignore[no-any-return]


class Load:
    """Callers invoking the alias without pause; every answer kept (status, version, error, body)."""

    def __init__(self, daemon: Daemon, name: str, callers: int = 3) -> None:
        self.daemon, self.name = daemon, name
        self.sent = 0
        self.answers: list[tuple[int, str, str | None, bytes]] = []
        self.sent_at: list[float] = []  # when each answered request was sent (time.monotonic), same order
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._call) for _ in range(callers)]

    def _call(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.sent += 1
            at = time.monotonic()
            r = self.daemon.request("POST", f"/2015-03-31/functions/{self.name}/invocations?Qualifier=live", b"{}")
            with self._lock:
                self.answers.append((r.status, r.headers.get("x-amz-executed-version", ""),
                                     r.headers.get("x-amz-function-error"), r.body))
                self.sent_at.append(at)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def test_canary_of_a_good_version_reaches_all_traffic(daemon: Daemon, lam, cd) -> None:  # type: ignore[no-untyped-def]
    name = _function(lam, _answer("one"))
    two = _publish(lam, name, _answer("two"))
    pre, post = _hook(lam, daemon, "Succeeded"), _hook(lam, daemon, "Succeeded")
    with Load(daemon, name) as load:
        did = _deploy(cd, name, "1", two, "CodeDeployDefault.LambdaCanary10Percent5Minutes", pre, post)
        info = _ended(cd, did)
    assert info["status"] == "Succeeded", info
    assert info["deploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    alias = lam.get_alias(FunctionName=name, Name="live")
    assert alias["FunctionVersion"] == two and not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")
    assert load.sent == len(load.answers) and {a[0] for a in load.answers} == {200}
    assert {(a[1], a[3]) for a in load.answers} <= {("1", b'"one"'), ("2", b'"two"')}
    assert (two, b'"two"') in {(a[1], a[3]) for a in load.answers}
    assert lam.invoke(FunctionName=name, Qualifier="live")["Payload"].read() == b'"two"'
    out = run_cli(["deployments", "--url", daemon.url, "--json"])
    assert out.returncode == 0, out.stderr
    (mine,) = [d for d in json.loads(out.stdout) if d["id"] == did]
    events = [(e["event"], e["status"]) for e in mine["events"]]
    assert events[1:3] == [("BeforeAllowTraffic", "InProgress"), ("BeforeAllowTraffic", "Succeeded")]
    assert [e["weight"] for e in mine["events"] if e["event"] == "AllowTraffic"] == [0.1, 1.0]
    assert ("AfterAllowTraffic", "Succeeded") in events and events[-1] == ("End", "Succeeded")
    text = run_cli(["deployments", "--url", daemon.url])
    assert did in text.stdout and "Succeeded" in text.stdout and "10%" in text.stdout


def test_a_bad_version_is_rolled_back_by_its_alarm_within_one_step(daemon: Daemon, lam, cd) -> None:  # type: ignore[no-untyped-def]
    name = _function(lam, _answer("good"))
    bad = _publish(lam, name, BAD)
    with Load(daemon, name) as load:
        did = _deploy(cd, name, "1", bad, "CodeDeployDefault.LambdaLinear10PercentEvery3Minutes")
        info = _ended(cd, did)
        ended = time.monotonic()  # the alias was rolled back before the deployment ended
        wait_until(lambda: sum(t > ended for t in load.sent_at) > 20, timeout=30,
                   what="invocations sent after the rollback")
    assert info["status"] == "Failed" and info["errorInformation"]["code"] == "ALARM_ACTIVE", info
    assert f"new version {bad} errors" in info["errorInformation"]["message"]
    alias = lam.get_alias(FunctionName=name, Name="live")
    assert alias["FunctionVersion"] == "1" and not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")
    # No invocation lost, none answered by anything but one whole version.
    assert load.sent == len(load.answers) and {a[0] for a in load.answers} == {200}
    for status, version, error, body in load.answers:
        assert (version, error, body) == ("1", None, b'"good"') or (version == bad and error == "Unhandled"), body
    assert any(a[1] == bad for a in load.answers)
    after = [a for a, t in zip(load.answers, load.sent_at) if t > ended]
    assert after and all(a[1] == "1" for a in after)  # sent after the rollback: the old version only
    (mine,) = [d for d in daemon.request("GET", "/_rapid/api/deployments").json() if d["id"] == did]  # type: ignore[union-attr]
    assert [e["weight"] for e in mine["events"] if e["event"] == "AllowTraffic"] == [0.1]  # never a second step
    assert any(e["event"] == "Rollback" for e in mine["events"])


def test_a_failing_pre_traffic_hook_aborts_before_any_traffic_moves(daemon: Daemon, lam, cd) -> None:  # type: ignore[no-untyped-def]
    name = _function(lam, _answer("old"))
    new = _publish(lam, name, _answer("new"))
    before = lam.get_alias(FunctionName=name, Name="live")
    pre = _hook(lam, daemon, "Failed")
    with Load(daemon, name, callers=2) as load:
        did = _deploy(cd, name, "1", new, "CodeDeployDefault.LambdaAllAtOnce", pre)
        info = _ended(cd, did)
    assert info["status"] == "Failed" and info["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE", info
    assert pre in info["errorInformation"]["message"] and "reported Failed" in info["errorInformation"]["message"]
    after = lam.get_alias(FunctionName=name, Name="live")
    assert after["RevisionId"] == before["RevisionId"]  # the alias was never touched
    assert {(a[0], a[1], a[3]) for a in load.answers} == {(200, "1", b'"old"')}
    (mine,) = [d for d in daemon.request("GET", "/_rapid/api/deployments").json() if d["id"] == did]  # type: ignore[union-attr]
    assert not [e for e in mine["events"] if e["event"] == "AllowTraffic"]


def test_codedeploy_errors(daemon: Daemon, lam, cd) -> None:  # type: ignore[no-untyped-def]
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as err:
        cd.get_deployment(deploymentId="d-NOPE12345")
    assert err.value.response["Error"]["Code"] == "DeploymentDoesNotExistException"
    name = _function(lam, _answer("x"))
    with pytest.raises(ClientError) as err:
        _deploy(cd, name, "1", "1", "CodeDeployDefault.LambdaCanary99Percent")
    assert err.value.response["Error"]["Code"] == "DeploymentConfigDoesNotExistException"
    with pytest.raises(ClientError) as err:
        _deploy(cd, name, "1", "7", "CodeDeployDefault.LambdaAllAtOnce")
    assert err.value.response["Error"]["Code"] == "DeploymentTargetDoesNotExistException"
    with pytest.raises(ClientError) as err:
        cd.put_lifecycle_event_hook_execution_status(deploymentId="d-NOPE12345", lifecycleEventHookExecutionId="x",
                                                     status="Succeeded")
    assert err.value.response["Error"]["Code"] == "DeploymentDoesNotExistException"


@pytest.mark.slow
@pytest.mark.skipif(not (os.path.exists("/usr/bin/chromium") or os.environ.get("CI")),
                    reason="needs Debian's chromium (.ci/steps/60-chromium.sh installs it)")
async def test_the_dashboard_shows_deployments(daemon: Daemon, lam, cd) -> None:  # type: ignore[no-untyped-def]
    from tests.browser import browser

    name = _function(lam, _answer("a"))
    two = _publish(lam, name, _answer("b"))
    did = _deploy(cd, name, "1", two, "CodeDeployDefault.LambdaAllAtOnce")
    assert _ended(cd, did)["status"] == "Succeeded"
    async with browser() as page:
        await page.goto(f"{daemon.url}/_rapid/")
        await page.wait_for("document.body.dataset.ready === 'true'")
        cells = await page.wait_for(
            "(() => { const r = [...document.querySelectorAll('#deployments tbody tr')]"
            f".find(r => r.textContent.includes('{did}')); return r ? [...r.cells].map(c => c.textContent) : null; }})()")
        assert cells[2] == f"{name}:live" and cells[4] == "AllAtOnce" and cells[5] == "100 %"
        assert cells[6] == "Succeeded" and "AllowTraffic 100%" in cells[7]
        assert page.errors == []


def test_provisioned_concurrency_follows_the_alias_to_the_new_version(daemon: Daemon, lam, cd) -> None:  # type: ignore[no-untyped-def]
    name = _function(lam, _answer("a"))
    two = _publish(lam, name, _answer("b"))
    lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1)

    def ready() -> bool:
        cfg = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
        return cfg["Status"] == "READY" and cfg["AvailableProvisionedConcurrentExecutions"] == 1

    wait_until(ready, timeout=30, what="provisioned concurrency READY on version 1")
    did = _deploy(cd, name, "1", two, "CodeDeployDefault.LambdaAllAtOnce")
    assert _ended(cd, did)["status"] == "Succeeded"
    wait_until(ready, timeout=30, what="provisioned concurrency READY on version 2")  # its instance, initialised
    reply = daemon.invoke(f"{name}:live")
    assert reply.body == b'"b"' and reply.headers["x-amz-executed-version"] == two
