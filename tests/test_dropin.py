"""Drop-in mode as the RIE behaves (issue 8, part 2): `function` answers whatever the
function's name, the last word of a command is the handler, and the official Node client
runs the documented way."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.daemon import run_server
from tests.node_ric import require_node_ric

# A runtime on the test's Python that answers its own view: name, handler, argv.
PROBE = """import http.client, json, os, sys
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse(); r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    out = {"name": os.environ["AWS_LAMBDA_FUNCTION_NAME"], "handler": os.environ.get("_HANDLER"),
           "arn": r.getheader("Lambda-Runtime-Invoked-Function-Arn"), "argv": sys.argv[1:]}
    conn.request("POST", "/2018-06-01/runtime/invocation/" + rid + "/response", json.dumps(out))
    conn.getresponse().read()
"""


@pytest.fixture
def probe_dir(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    return tmp_path


def test_function_answers_whatever_the_name_and_so_does_the_real_name(probe_dir):
    env = {"AWS_LAMBDA_FUNCTION_NAME": "my-fn"}
    with run_server(["--", sys.executable, "probe.py"], cwd=probe_dir, env=env) as d:
        arn = "arn:aws:lambda:us-east-1:000000000000:function"
        for name in ("function", "my-fn", f"{arn}:function", f"{arn}:my-fn", "000000000000:function:function",
                     "function:$LATEST"):
            reply = d.invoke(name, {})
            assert reply.status == 200, (name, reply.body)
            assert reply.json()["name"] == "my-fn"
            assert reply.json()["arn"].endswith(":function:my-fn" + (":$LATEST" if name.endswith("$LATEST") else ""))
        missing = d.invoke("other", {})
        assert missing.status == 404 and missing.headers["x-amzn-errortype"] == "ResourceNotFoundException"


def test_the_last_word_of_a_command_is_the_handler(probe_dir):
    with run_server(["--", sys.executable, "probe.py", "index.handler"], cwd=probe_dir) as d:
        out = d.invoke("function", {}).json()
        assert out["handler"] == "index.handler" and out["argv"] == ["index.handler"]


def test_handler_flag_and_a_one_word_command(probe_dir):
    (probe_dir / "bootstrap").write_text(f"#!{sys.executable}\n" + PROBE)
    (probe_dir / "bootstrap").chmod(0o755)
    with run_server(["--handler", "app.main", "--", sys.executable, "probe.py", "index.handler"], cwd=probe_dir) as d:
        assert d.invoke("function", {}).json()["handler"] == "app.main"  # the flag wins
    with run_server(["--", "./bootstrap"], cwd=probe_dir, env={"_HANDLER": "from.env"}) as d:
        assert d.invoke("function", {}).json()["handler"] == "from.env"  # one word: nothing taken


@pytest.mark.slow
@pytest.mark.parametrize("style", ["npx", "bin"])
def test_the_official_node_client_in_drop_in_mode(tmp_path, style):
    """`rapid serve -- npx aws-lambda-ric index.handler`, as the client's README says to run it."""
    command = require_node_ric()
    assert shutil.which("npx"), "npx is missing"
    (tmp_path / "node_modules").symlink_to(Path(command).parent.parent)
    (tmp_path / "index.js").write_text(
        "exports.handler = async (event, context) => ({ got: event, name: context.functionName,\n"
        "  handler: process.env._HANDLER });\n"
        "exports.fail = async () => { throw new TypeError('nope'); };\n"
    )
    cmd = ["npx", "aws-lambda-ric"] if style == "npx" else [command]
    env = {"AWS_LAMBDA_FUNCTION_NAME": "node-fn"}
    with run_server(["--", *cmd, "index.handler"], cwd=tmp_path, env=env) as d:
        reply = d.invoke("function", {"a": 1}, timeout=60)
        assert reply.status == 200 and reply.function_error is None, reply.body
        assert reply.json() == {"got": {"a": 1}, "name": "node-fn", "handler": "index.handler"}
        assert d.invoke("node-fn", {"b": 2}).json()["got"] == {"b": 2}
    with run_server(["--", *cmd, "index.fail"], cwd=tmp_path) as d:
        reply = d.invoke("function", {})
        assert reply.function_error == "Unhandled"
        assert reply.json()["errorType"] == "TypeError" and reply.json()["errorMessage"] == "nope"
