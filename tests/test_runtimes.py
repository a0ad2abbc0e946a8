"""Real runtimes under rapid: the bundled Python, Node and shell bootstraps, the official
awslambdaric from PyPI, and boto3 as the invoker."""

import json
import sys

import boto3
import pytest
from botocore.config import Config

from tests.capabilities import need
from tests.daemon import EXAMPLES, run_server


def client(d, **kw):
    return boto3.client(
        "lambda", endpoint_url=d.url, region_name="us-east-1", aws_access_key_id="test",
        aws_secret_access_key="test", config=Config(retries={"total_max_attempts": 1}, read_timeout=30, **kw),
    )


PY_APP = '''
import json, os, time
state = {"n": 0}
def handler(event, context):
    state["n"] += 1
    if event.get("fail"):
        raise ValueError("bad things")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {
        "event": event, "n": state["n"], "pid": os.getpid(),
        "request_id": context.aws_request_id, "function_name": context.function_name,
        "version": context.function_version, "arn": context.invoked_function_arn,
        "memory": int(context.memory_limit_in_mb), "remaining": context.get_remaining_time_in_millis(),
        "group": context.log_group_name, "stream": context.log_stream_name,
        "client_context": getattr(getattr(context, "client_context", None), "custom", None),
    }
'''


@pytest.fixture
def py_app(tmp_path):
    folder = tmp_path / "pyapp"
    folder.mkdir()
    (folder / "app.py").write_text(PY_APP)
    return folder


def check_python_context(d, name):
    lam = client(d)
    import base64

    ctx = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    r = lam.invoke(FunctionName=name, Payload=json.dumps({"hello": 1}), ClientContext=ctx)
    body = json.loads(r["Payload"].read())
    assert r["StatusCode"] == 200 and "FunctionError" not in r
    assert body["event"] == {"hello": 1}
    assert body["request_id"] == r["ResponseMetadata"]["RequestId"]
    assert body["function_name"] == name and body["version"] == "$LATEST"
    assert body["arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert body["group"] == f"/aws/lambda/{name}" and "[$LATEST]" in body["stream"]
    assert 0 < body["remaining"] <= 3000
    assert body["client_context"] == {"k": "v"}
    second = json.loads(lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())
    assert second["n"] == 2 and second["pid"] == body["pid"]
    err = lam.invoke(FunctionName=name, Payload=json.dumps({"fail": True}))
    assert err["FunctionError"] == "Unhandled"
    detail = json.loads(err["Payload"].read())
    assert detail["errorType"] == "ValueError" and detail["errorMessage"] == "bad things"
    assert isinstance(detail["stackTrace"], list)
    timeout = lam.invoke(FunctionName=name, Payload=json.dumps({"sleep": 10}))
    assert json.loads(timeout["Payload"].read())["errorType"] == "Sandbox.Timedout"
    after = json.loads(lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())
    assert after["n"] == 1 and after["pid"] != body["pid"]


def test_bundled_python_runtime_with_boto3(py_app):
    with run_server(["--function", f"py={py_app}", "--runtime", "python", "--handler", "app.handler"]) as d:
        check_python_context(d, "py")


def test_awslambdaric_as_drop_in(py_app):
    """The RIE way: `rapid serve -- python -m awslambdaric app.handler` from the function's folder."""
    with run_server(["--timeout", "3", "--", sys.executable, "-m", "awslambdaric", "app.handler"], cwd=py_app) as d:
        check_python_context(d, "function")


def test_bundled_python_init_errors(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "app.py").write_text("def handler(event, context):\n    return 1\n")
    args = ["--function", f"nomod={folder}", "--function", f"nofn={folder}", "--runtime", "python"]
    # Per-function handlers come from a TOML file.
    toml = tmp_path / "rapid.toml"
    toml.write_text(
        f'[functions.nomod]\npath = "{folder}"\nruntime = "python"\nhandler = "missing.handler"\n'
        f'[functions.nofn]\npath = "{folder}"\nruntime = "python"\nhandler = "app.nope"\n'
    )
    del args
    with run_server(["--config", str(toml)]) as d:
        r = d.invoke("nomod", {})
        assert r.function_error == "Unhandled"
        assert r.json()["errorType"] == "Runtime.ImportModuleError"
        assert r.json()["errorMessage"] == "Unable to import module 'missing': No module named 'missing'"
        r = d.invoke("nofn", {})
        assert r.json()["errorType"] == "Runtime.HandlerNotFound"
        assert r.json()["errorMessage"] == "Handler 'nope' missing on module 'app'"


def test_bundled_node_runtime(tmp_path):
    need("node")
    folder = tmp_path / "node"
    folder.mkdir()
    (folder / "index.js").write_text(
        "let n = 0;\n"
        "exports.handler = async (event, context) => {\n"
        "  n += 1;\n"
        "  if (event.fail) throw new TypeError('node failed');\n"
        "  return {event, n, id: context.awsRequestId, name: context.functionName,\n"
        "          remaining: context.getRemainingTimeInMillis()};\n"
        "};\n"
    )
    with run_server(["--function", f"js={folder}", "--runtime", "node", "--handler", "index.handler"]) as d:
        lam = client(d)
        r = lam.invoke(FunctionName="js", Payload=b'{"a": 1}')
        body = json.loads(r["Payload"].read())
        assert body["event"] == {"a": 1} and body["n"] == 1 and body["name"] == "js"
        assert body["id"] == r["ResponseMetadata"]["RequestId"]
        assert 0 < body["remaining"] <= 3000
        assert json.loads(lam.invoke(FunctionName="js", Payload=b"{}")["Payload"].read())["n"] == 2
        err = lam.invoke(FunctionName="js", Payload=b'{"fail": true}')
        assert err["FunctionError"] == "Unhandled"
        detail = json.loads(err["Payload"].read())
        assert detail["errorType"] == "TypeError" and detail["errorMessage"] == "node failed"


def test_shell_example_echoes(tmp_path):
    need("curl")
    with run_server(["--function", f"sh={EXAMPLES / 'shell-echo'}"]) as d:
        r = d.invoke("sh", {"name": "shell"})
        assert r.status == 200 and r.json() == {"name": "shell"}
        assert d.invoke("sh", {"n": 2}).json() == {"n": 2}
        d.wait_for_line("shell-echo got")


def test_examples_toml(tmp_path):
    need("node", "curl")
    with run_server(["--config", str(EXAMPLES / "rapid.toml")]) as d:
        assert d.invoke("hello", {"name": "x"}).json() == {"message": "Hello, x!"}
        assert d.invoke("sh", {"name": "x"}).json() == {"name": "x"}
        assert d.invoke("node-hello", {"name": "x"}).json() == {"message": "Hello, x!"}


def test_boto3_invocation_types_and_log_tail(py_app):
    import base64

    with run_server(["--function", f"py={py_app}", "--runtime", "python", "--handler", "app.handler"]) as d:
        lam = client(d)
        r = lam.invoke(FunctionName="py", Payload=b"{}", LogType="Tail")
        tail = base64.b64decode(r["LogResult"]).decode()
        rid = r["ResponseMetadata"]["RequestId"]
        assert f"START RequestId: {rid}" in tail and f"REPORT RequestId: {rid}" in tail
        assert r["ExecutedVersion"] == "$LATEST"
        assert lam.invoke(FunctionName="py", InvocationType="DryRun")["StatusCode"] == 204
        assert lam.invoke(FunctionName="py", InvocationType="Event", Payload=b"{}")["StatusCode"] == 202
        arn = "arn:aws:lambda:us-east-1:000000000000:function:py"
        assert lam.invoke(FunctionName=arn, Payload=b"{}")["StatusCode"] == 200
        assert lam.invoke(FunctionName="py", Qualifier="$LATEST", Payload=b"{}")["StatusCode"] == 200
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            lam.invoke(FunctionName="nope", Payload=b"{}")
        with pytest.raises(lam.exceptions.InvalidRequestContentException):
            lam.invoke(FunctionName="py", Payload=b"not json")
        with pytest.raises(lam.exceptions.RequestTooLargeException):
            lam.invoke(FunctionName="py", Payload=b'"' + b"x" * (6 * 1024 * 1024) + b'"')
