"""``rapid serve --template``: SAM templates of the usual shapes (tests/fixtures/sam), served
by the real daemon and exercised as a user would: HTTP requests on the local API, messages
on the built-in SQS, schedules, async invokes, boto3 and --watch."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.control import client
from tests.daemon import ROOT, Daemon, run_cli, run_server, wait_until

FIXTURES = ROOT / "tests" / "fixtures" / "sam"


def api_port(daemon: Daemon) -> int:
    line = wait_until(lambda: next((l for l in daemon.stderr if re.search(r"template: .* on http://", l)), None),
                      what="the local API's address")
    return int(re.search(r"on http://127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]


def call(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        resp = conn.getresponse()
        headers: dict[str, str] = {}
        for k, v in resp.getheaders():
            headers[k.lower()] = headers[k.lower()] + "\n" + v if k.lower() in headers else v
        return resp.status, headers, resp.read()
    finally:
        conn.close()


def sqs(daemon: Daemon):  # type: ignore[no-untyped-def]
    return boto3.client("sqs", endpoint_url=daemon.url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x", config=Config(retries={"max_attempts": 0}))


def test_a_python_api_function_with_payloads_1_and_2() -> None:
    with run_server(["--template", str(FIXTURES / "api" / "template.yaml"), "--api-port", "0"]) as daemon:
        port = api_port(daemon)
        status, _, body = call(port, "GET", "/hello?x=1")
        assert status == 200
        assert json.loads(body) == {"message": "hello world", "version": "1.0", "resource": "/hello",
                                    "method": "GET", "query": {"x": "1"}, "stage": "Prod"}
        status, _, body = call(port, "POST", "/hello")  # no such method: API Gateway's answer
        assert status == 403 and json.loads(body) == {"message": "Missing Authentication Token"}
        status, _, body = call(port, "GET", "/users/42")
        assert status == 200
        assert json.loads(body) == {"route": "GET /users/{id}", "method": "GET", "params": {"id": "42"},
                                    "version": "2.0"}
        status, headers, body = call(port, "POST", "/users", b'{"name": "ann"}')
        assert status == 201 and headers["location"] == "/users/new" and headers["set-cookie"] == "made=1"
        assert json.loads(body) == {"created": {"name": "ann"}}
        status, _, body = call(port, "DELETE", "/files/a/b.txt")
        assert json.loads(body)["params"] == {"path": "a/b.txt"}
        lam = client(daemon)
        names = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
        assert names == {"HelloWorldFunction", "UsersFunction"}
        tags = lam.get_function(FunctionName="UsersFunction")["Tags"]
        assert tags["aws:cloudformation:logical-id"] == "UsersFunction"
        assert lam.get_function(FunctionName="UsersFunction")["Configuration"]["Timeout"] == 3  # Globals


def test_an_sqs_consumer_with_dead_letter_queues() -> None:
    with run_server(["--template", str(FIXTURES / "sqs-dlq" / "template.yaml")],
                    env={"RAPID_ASYNC_TIME_SCALE": "0.01"}) as daemon:
        q = sqs(daemon)
        work = q.get_queue_url(QueueName="WorkQueue")["QueueUrl"]
        dead = q.get_queue_url(QueueName="DeadLetters")["QueueUrl"]
        attrs = q.get_queue_attributes(QueueUrl=work, AttributeNames=["All"])["Attributes"]
        assert json.loads(attrs["RedrivePolicy"]) == {
            "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:DeadLetters", "maxReceiveCount": 2}
        q.send_message(QueueUrl=work, MessageBody="ok-1")
        q.send_message(QueueUrl=work, MessageBody="poison-1")
        daemon.wait_for_line(r"consumed ok-1", timeout=20)

        def dead_letter() -> list[str]:
            got = q.receive_message(QueueUrl=dead, WaitTimeSeconds=1, MaxNumberOfMessages=10)
            return [m["Body"] for m in got.get("Messages", [])]

        assert wait_until(dead_letter, timeout=30, what="the poison message in the dead-letter queue") == ["poison-1"]
        assert sum("failed poison-1" in line for line in daemon.lines) == 2  # maxReceiveCount
        # an async invoke that fails goes, with no retry (EventInvokeConfig), to the function's DLQ
        lam = client(daemon)
        assert lam.invoke(FunctionName="ConsumerFunction", InvocationType="Event",
                          Payload=b'{"x": 1}')["StatusCode"] == 202
        async_dead = q.get_queue_url(QueueName="AsyncDeadLetters")["QueueUrl"]
        got = wait_until(lambda: q.receive_message(QueueUrl=async_dead, WaitTimeSeconds=1).get("Messages"),
                         timeout=30, what="the failed async event in the function's dead-letter queue")
        assert json.loads(got[0]["Body"]) == {"x": 1}
        mappings = lam.list_event_source_mappings(FunctionName="ConsumerFunction")["EventSourceMappings"]
        assert [(m["BatchSize"], m["FunctionResponseTypes"]) for m in mappings] == [
            (1, ["ReportBatchItemFailures"])]


def test_a_scheduled_function_gets_eventbridge_events() -> None:
    with run_server(["--template", str(FIXTURES / "scheduled" / "template.yaml")],
                    env={"RAPID_SCHEDULE_TIME_SCALE": "0.01"}) as daemon:  # a minute is 0.6 s

        def events() -> list[dict]:  # type: ignore[type-arg]
            return [json.loads(line.split("EVENT ", 1)[1]) for line in list(daemon.lines) if "EVENT " in line]

        def enough() -> bool:
            got = events()
            return (sum(e.get("detail-type") == "Scheduled Event" for e in got) >= 3
                    and {"job": "report"} in got and {"job": "v2"} in got)

        wait_until(enough, timeout=60, what="three scheduled events and both inputs")
        scheduled = [e for e in events() if e.get("detail-type") == "Scheduled Event"]
        first = scheduled[0]
        assert set(first) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources",
                              "detail"}
        assert first["source"] == "aws.events" and first["detail"] == {} and first["account"] == "000000000000"
        assert first["resources"] == ["arn:aws:events:us-east-1:000000000000:rule/every-minute"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["time"])
        times = [e["time"] for e in scheduled if e["resources"] == first["resources"]]
        assert len(set(times)) == len(times)  # each firing its own minute (two may run on two instances)
        assert {"job": "never"} not in events()  # Enabled: false


def test_a_layered_function_its_alias_and_watch(tmp_path: Path) -> None:
    app = tmp_path / "layered"
    shutil.copytree(FIXTURES / "layered", app)
    template = app / "template.yaml"
    with run_server(["--template", str(template), "--watch", "--parameter-overrides", "Greeting=hi"],
                    env={"RAPID_SCALING_TIME_SCALE": "0.001"}) as daemon:  # its Linear deployment, in ms
        lam = client(daemon)

        def live() -> tuple[dict, str]:  # type: ignore[type-arg]
            out = lam.invoke(FunctionName="LayeredFunction", Qualifier="live")
            return json.loads(out["Payload"].read()), out["ExecutedVersion"]

        assert live() == ({"said": "hi from the layer", "code": "v1"}, "1")
        got = lam.get_function(FunctionName="LayeredFunction")
        assert got["Concurrency"] == {"ReservedConcurrentExecutions": 5}
        pc = lam.get_provisioned_concurrency_config(FunctionName="LayeredFunction", Qualifier="live")
        assert pc["RequestedProvisionedConcurrentExecutions"] == 1
        layers = got["Configuration"]["Layers"]
        assert [l["Arn"] for l in layers] == ["arn:aws:lambda:us-east-1:000000000000:layer:shared:1"]
        # edit the code: the next invokes run it, on a new version the alias moved to
        src = app / "src" / "app.py"
        src.write_text(src.read_text().replace('"v1"', '"v2"'))
        wait_until(lambda: lam.get_alias(FunctionName="LayeredFunction", Name="live")["FunctionVersion"] == "2",
                   timeout=30, what="the gradual deployment to version 2")
        assert live() == ({"said": "hi from the layer", "code": "v2"}, "2")
        (done,) = daemon.request("GET", "/_rapid/api/deployments").json()
        assert done["status"] == "Succeeded" and done["type"] == "Linear10PercentEvery1Minute"
        # edit the layer: a new layer version, and the function uses it
        shared = app / "layer" / "python" / "shared.py"
        shared.write_text(shared.read_text().replace("from the layer", "from layer two"))
        wait_until(lambda: lam.get_alias(FunctionName="LayeredFunction", Name="live")["FunctionVersion"] == "3",
                   timeout=30, what="the gradual deployment to version 3")
        assert live() == ({"said": "hi from layer two", "code": "v2"}, "3")
        assert [v["Version"] for v in lam.list_layer_versions(LayerName="shared")["LayerVersions"]] == [2, 1]
        # a broken template is reported, and the last good one keeps serving
        template.write_text(template.read_text().replace("Runtime: python3.12", "Runtime: python2.1"))
        wait_until(lambda: any("not applied, the last good one still serves" in l and ":24: resource "
                               "LayeredFunction" in l for l in daemon.stderr), timeout=30, what="the refusal")
        assert live()[0]["said"] == "hi from layer two"
        # the template fixed again, with a new variable
        template.write_text(template.read_text().replace("Runtime: python2.1", "Runtime: python3.12")
                            .replace("GREETING: !Ref Greeting", "GREETING: !Sub '${Greeting}, again'"))
        assert wait_until(lambda: live()[0]["said"] == "hi, again from layer two", timeout=30,
                          what="the template's change")
        versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName="LayeredFunction")["Versions"]]
        assert versions == ["$LATEST", "1", "2", "3", "4"]


def test_plain_cloudformation_in_json(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with run_server(["--template", str(FIXTURES / "plain" / "template.yaml"), "--data-dir", str(data)]) as daemon:
        lam = client(daemon)
        out = lam.invoke(FunctionName="plain-fn", Qualifier="prod")
        assert json.loads(out["Payload"].read()) == {"plain": True} and out["ExecutedVersion"] == "1"
        mappings = lam.list_event_source_mappings(FunctionName="plain-fn")["EventSourceMappings"]
        assert len(mappings) == 1 and mappings[0]["BatchSize"] == 5
        assert mappings[0]["FunctionArn"].endswith(":function:plain-fn:prod")
        assert lam.get_function_url_config(FunctionName="plain-fn")["AuthType"] == "NONE"
        q = sqs(daemon)
        q.send_message(QueueUrl=q.get_queue_url(QueueName="plain-jobs")["QueueUrl"], MessageBody="job-1")
        daemon.wait_for_line(r"plain got .*job-1", timeout=20)
    with run_server(["--template", str(FIXTURES / "plain" / "template.yaml"), "--data-dir", str(data)]) as daemon:
        assert any("applied (1 function; changed: none)" in line for line in daemon.stderr)
        again = client(daemon).list_event_source_mappings(FunctionName="plain-fn")["EventSourceMappings"]
        assert [m["UUID"] for m in again] == [mappings[0]["UUID"]]  # the same mapping, kept

def test_applying_again_changes_nothing_and_removed_functions_go(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(FIXTURES / "api", app)
    data = tmp_path / "data"
    args = ["--template", str(app / "template.yaml"), "--api-port", "0", "--data-dir", str(data)]
    with run_server(args) as daemon:
        assert any("changed: HelloWorldFunction, UsersFunction" in l for l in daemon.stderr)
        assert daemon.request("GET", "/healthz").status == 200  # its signal handlers are in place now
    with run_server(args) as daemon:
        assert any("applied (2 functions; changed: none)" in l for l in daemon.stderr)
        assert daemon.request("GET", "/healthz").status == 200
    text = (app / "template.yaml").read_text()
    start = text.index("  UsersFunction:")
    (app / "template.yaml").write_text(text[:start] + text[text.index("Outputs:"):])
    with run_server(args) as daemon:
        assert any("function UsersFunction is no longer in the template: deleted" in l for l in daemon.stderr)
        names = {f["FunctionName"] for f in client(daemon).list_functions()["Functions"]}
        assert names == {"HelloWorldFunction"}


@pytest.mark.parametrize("edit, line, message", [
    (("CodeUri: users/", "CodeUri: missing/"), 28, "resource UsersFunction: CodeUri 'missing/': no such folder"),
    (("Runtime: python3.12", "Runtime: cobol85"), 10, "Value cobol85 at 'runtime' failed to satisfy constraint"),
    (("Path: /users/{id}", "Path: !GetAtt Nope.Arn"), 34, "references undefined resource Nope"),
])
def test_a_bad_template_stops_start_up_naming_the_resource_and_line(tmp_path: Path, edit: tuple[str, str],
                                                                     line: int, message: str) -> None:
    app = tmp_path / "app"
    shutil.copytree(FIXTURES / "api", app)
    template = app / "template.yaml"
    template.write_text(template.read_text().replace(*edit))
    out = run_cli(["serve", "--template", str(template), "--port", "0"])
    assert out.returncode == 2, out.stderr
    assert f"rapid: error: {template}:{line}: " in out.stderr and message in out.stderr, out.stderr
    assert "listening" not in out.stderr
