"""Response streaming: a runtime's streaming ``/response`` reaches the invoker as it
arrives, through InvokeWithResponseStream's event stream, read by boto3.

"As it arrives" is shown without any clock: the raw runtime below sends its first chunk,
then waits for a file the test creates only once boto3 has handed it that chunk; so the
invoker holds chunk 1 while chunk 2 does not exist yet.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import boto3
import botocore.config
import pytest

from tests.daemon import make_function, run_server

# A raw streaming runtime: hand-written chunked HTTP with trailers, stdlib only.
#   {"chunks": [...], "gate": path}  -> sends chunk 0, waits for `gate`, sends the rest
#   {"fail": true} added             -> ends with the error trailers
#   {"size": n}                       -> streams n bytes of 'z' in 64 KB chunks
RAW = """#!{python}
import base64, http.client, json, os, socket, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
api = http.client.HTTPConnection(host, int(port))
while True:
    api.request("GET", "/2018-06-01/runtime/invocation/next")
    r = api.getresponse()
    event = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    s = socket.create_connection((host, int(port)))
    head = ("POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\\r\\nHost: x\\r\\n"
            "Lambda-Runtime-Function-Response-Mode: streaming\\r\\nTransfer-Encoding: chunked\\r\\n"
            "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\\r\\n"
            "Content-Type: text/plain\\r\\n\\r\\n") % rid
    s.sendall(head.encode())
    def chunk(data):
        s.sendall(b"%x\\r\\n" % len(data) + data + b"\\r\\n")
    if "size" in event:
        left = event["size"]
        while left:
            n = min(65536, left)
            chunk(b"z" * n)
            left -= n
    else:
        chunks = [c.encode() for c in event["chunks"]]
        chunk(chunks[0])
        gate = event.get("gate")
        while gate and not os.path.exists(gate):
            time.sleep(0.005)
        for c in chunks[1:]:
            chunk(c)
    trailer = b""
    if event.get("fail"):
        err = base64.b64encode(json.dumps({"errorType": "Function.StreamBroke", "errorMessage": "broke mid-stream"}).encode())
        trailer = b"Lambda-Runtime-Function-Error-Type: Function.StreamBroke\\r\\nLambda-Runtime-Function-Error-Body: " + err + b"\\r\\n"
    s.sendall(b"0\\r\\n" + trailer + b"\\r\\n")
    reply = s.recv(4096)
    assert b" 202 " in reply, reply
    s.close()
""".replace("{python}", sys.executable)


def _client(url: str):
    return boto3.client(
        "lambda", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
        config=botocore.config.Config(retries={"max_attempts": 0}, read_timeout=30),
    )


@pytest.fixture
def raw(tmp_path):
    fn = make_function(tmp_path / "raw", RAW)
    with run_server(["--function", f"raw={fn}"], env={"RAPID_PRIVATE_TMP": "directory"}) as d:
        yield d, tmp_path


def _events(stream):
    for event in stream:
        yield event


def test_chunks_arrive_as_the_runtime_sends_them(raw):
    d, tmp = raw
    gate = tmp / "gate"
    lam = _client(d.url)
    out = lam.invoke_with_response_stream(
        FunctionName="raw", Payload=json.dumps({"chunks": ["first,", "second,", "third"], "gate": str(gate)}),
        LogType="Tail")
    assert out["StatusCode"] == 200 and out["ExecutedVersion"] == "$LATEST"
    assert out["ResponseStreamContentType"] == "application/vnd.amazon.eventstream"
    events = iter(out["EventStream"])
    first = next(events)
    # The invoker holds chunk 1; the runtime cannot have sent chunk 2 (it waits for the gate).
    assert first == {"PayloadChunk": {"Payload": b"first,"}}
    assert not gate.exists()
    gate.touch()
    rest = list(events)
    payload = b"".join(e["PayloadChunk"]["Payload"] for e in rest if "PayloadChunk" in e)
    assert payload == b"second,third"
    complete = rest[-1]["InvokeComplete"]
    assert "ErrorCode" not in complete
    tail = base64.b64decode(complete["LogResult"]).decode()
    assert "START RequestId" in tail and "REPORT RequestId" in tail


def test_mid_stream_error_in_trailers(raw):
    d, _ = raw
    out = _client(d.url).invoke_with_response_stream(
        FunctionName="raw", Payload=json.dumps({"chunks": ["partial"], "fail": True}))
    events = list(out["EventStream"])
    assert events[0] == {"PayloadChunk": {"Payload": b"partial"}}
    complete = events[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "Function.StreamBroke"
    assert complete["ErrorDetails"] == "broke mid-stream"
    d.wait_for_line(r"REPORT RequestId: .*Status: error\tError Type: Function.StreamBroke")


def test_plain_invoke_of_a_streaming_function_is_buffered(raw):
    d, _ = raw
    r = d.invoke("raw", {"chunks": ["a", "b", "c"]})
    assert r.status == 200 and r.body == b"abc" and r.function_error is None
    failed = d.invoke("raw", {"chunks": ["a"], "fail": True})
    assert failed.function_error == "Unhandled"
    assert failed.json() == {"errorType": "Function.StreamBroke", "errorMessage": "broke mid-stream"}


@pytest.mark.slow
def test_a_large_stream_goes_through(raw):
    d, _ = raw
    size = 20 * 1024 * 1024  # more than Invoke's 6 MB could carry
    out = _client(d.url).invoke_with_response_stream(FunctionName="raw", Payload=json.dumps({"size": size}))
    total = 0
    for event in out["EventStream"]:
        if "PayloadChunk" in event:
            total += len(event["PayloadChunk"]["Payload"])
        else:
            assert "ErrorCode" not in event["InvokeComplete"]
    assert total == size
    too_big = d.invoke("raw", {"size": 7 * 1024 * 1024})  # buffered: over 6 MB
    assert too_big.function_error == "Unhandled"
    assert too_big.json()["errorType"] == "Function.ResponseSizeTooLarge"


def test_buffered_runtime_answer_is_one_chunk(tmp_path, echo_fn):
    with run_server(["--function", f"echo={echo_fn}"]) as d:
        lam = _client(d.url)
        out = lam.invoke_with_response_stream(FunctionName="echo", Payload=b'{"hello": "stream"}')
        events = list(out["EventStream"])
        assert events[0] == {"PayloadChunk": {"Payload": b'{"hello": "stream"}'}}
        assert events[1] == {"InvokeComplete": {}}
        assert len(events) == 2
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            lam.invoke_with_response_stream(FunctionName="nope", Payload=b"{}")
        dry = lam.invoke_with_response_stream(FunctionName="echo", Payload=b"{}", InvocationType="DryRun")
        assert dry["StatusCode"] == 204


PY_HANDLER = '''
import os, time

def handler(event, context):
    yield "one,"
    while event.get("gate") and not os.path.exists(event["gate"]):
        time.sleep(0.005)
    yield b"two,"
    yield {"three": 3}
    if event.get("fail"):
        raise ValueError("generator broke")
'''

NODE_HANDLER = '''
const fs = require('fs');
exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType('text/plain');
  responseStream.write('one,');
  while (event.gate && !fs.existsSync(event.gate)) await new Promise((r) => setTimeout(r, 5));
  responseStream.write('two,');
  if (event.fail) throw new TypeError('stream broke');
  responseStream.write(context.awsRequestId.length + '');
  responseStream.end();
});
'''


@pytest.fixture
def bundled(tmp_path):
    py = tmp_path / "py"
    py.mkdir()
    (py / "app.py").write_text(PY_HANDLER)
    node = tmp_path / "node"
    node.mkdir()
    (node / "app.js").write_text(NODE_HANDLER)
    (tmp_path / "rapid.toml").write_text(f"""
[functions.py]
path = "{py}"
runtime = "python"
handler = "app.handler"

[functions.node]
path = "{node}"
runtime = "node"
handler = "app.handler"
""")
    with run_server(["--config", str(tmp_path / "rapid.toml")], env={"RAPID_PRIVATE_TMP": "directory"}) as d:
        yield d, tmp_path


@pytest.mark.parametrize("name,expected", [("py", b'one,two,{"three": 3}'), ("node", b"one,two,36")])
def test_bundled_runtimes_stream(bundled, name, expected):
    d, tmp = bundled
    gate = tmp / f"gate-{name}"
    out = _client(d.url).invoke_with_response_stream(FunctionName=name, Payload=json.dumps({"gate": str(gate)}))
    events = iter(out["EventStream"])
    assert next(events) == {"PayloadChunk": {"Payload": b"one,"}}
    assert not gate.exists()  # the handler is still waiting: the first chunk came ahead of the rest
    gate.touch()
    rest = list(events)
    body = b"one," + b"".join(e["PayloadChunk"]["Payload"] for e in rest if "PayloadChunk" in e)
    assert body == expected
    assert rest[-1] == {"InvokeComplete": {}}
    # A plain Invoke gets the same bytes, whole.
    assert d.invoke(name, {}).body == expected


@pytest.mark.parametrize("name,error_type,message", [("py", "ValueError", "generator broke"),
                                                     ("node", "TypeError", "stream broke")])
def test_bundled_runtimes_report_mid_stream_errors(bundled, name, error_type, message):
    d, _ = bundled
    out = _client(d.url).invoke_with_response_stream(FunctionName=name, Payload=json.dumps({"fail": True}))
    events = list(out["EventStream"])
    assert events[0] == {"PayloadChunk": {"Payload": b"one,"}}
    complete = events[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == error_type and complete["ErrorDetails"] == message


JS_SDK = Path(__file__).resolve().parent.parent / ".cache" / "js-sdk" / "node_modules"
JS_STREAM = """
const { LambdaClient, InvokeWithResponseStreamCommand } = require('@aws-sdk/client-lambda');
(async () => {
  const client = new LambdaClient({ endpoint: process.argv[2], region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const out = await client.send(new InvokeWithResponseStreamCommand({
    FunctionName: 'raw', Payload: Buffer.from(process.argv[3]) }));
  const events = [];
  for await (const event of out.EventStream) {
    if (event.PayloadChunk) events.push({ chunk: Buffer.from(event.PayloadChunk.Payload).toString() });
    if (event.InvokeComplete) events.push({ complete: event.InvokeComplete });
  }
  console.log(JSON.stringify({ status: out.StatusCode, version: out.ExecutedVersion, events }));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def test_javascript_sdk_reads_the_stream(raw):
    if not (JS_SDK / "@aws-sdk" / "client-lambda").is_dir():
        pytest.skip("@aws-sdk/client-lambda is not installed (.ci/steps/40-js-sdk.sh installs it)")
    import os
    import subprocess

    d, tmp = raw
    script = tmp / "stream.js"
    script.write_text(JS_STREAM)

    def run(event: dict) -> dict:
        out = subprocess.run(["node", str(script), d.url, json.dumps(event)], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "NODE_PATH": str(JS_SDK)})
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    ok = run({"chunks": ["first,", "second"]})
    assert ok["status"] == 200 and ok["version"] == "$LATEST"
    assert [e["chunk"] for e in ok["events"] if "chunk" in e] == ["first,", "second"]
    assert ok["events"][-1] == {"complete": {}}
    failed = run({"chunks": ["partial"], "fail": True})
    assert failed["events"][0] == {"chunk": "partial"}
    assert failed["events"][-1]["complete"]["ErrorCode"] == "Function.StreamBroke"
    assert failed["events"][-1]["complete"]["ErrorDetails"] == "broke mid-stream"


NODE_RIC = Path(__file__).resolve().parent.parent / ".cache" / "node-ric" / "node_modules"
RIC_HANDLER = """
exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType('text/plain');
  responseStream.write('hello ');
  await new Promise((r) => setTimeout(r, 10));
  if (event.fail) throw new TypeError('ric broke');
  responseStream.write('from the ric');
  responseStream.end();
});
"""


@pytest.mark.slow
def test_the_official_node_client_streams(tmp_path):
    """aws-lambda-ric (npm), the client Lambda's Node runtimes use, streams through rapid."""
    ric = NODE_RIC / ".bin" / "aws-lambda-ric"
    if not ric.exists():
        pytest.skip("the npm aws-lambda-ric is not installed in .cache/node-ric")
    (tmp_path / "node_modules").symlink_to(NODE_RIC)
    (tmp_path / "index.js").write_text(RIC_HANDLER)
    with run_server(["--", str(ric), "index.handler"], cwd=tmp_path) as d:
        lam = _client(d.url)
        events = list(lam.invoke_with_response_stream(FunctionName="function", Payload=b"{}")["EventStream"])
        chunks = [e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e]
        assert b"".join(chunks) == b"hello from the ric" and events[-1] == {"InvokeComplete": {}}
        failed = list(lam.invoke_with_response_stream(FunctionName="function",
                                                      Payload=b'{"fail": true}')["EventStream"])
        assert failed[0] == {"PayloadChunk": {"Payload": b"hello "}}
        assert failed[-1]["InvokeComplete"]["ErrorCode"] == "TypeError"
        assert d.invoke("function", {}).body == b"hello from the ric"
