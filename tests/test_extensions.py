"""Extensions API (2020-01-01): real extension processes, in Python and in bash, beside a
real runtime under the real daemon.

The agents do what observability agents do: register, loop on ``event/next``, write a file
per INVOKE, flush on SHUTDOWN and exit. Files go to a folder the test names (with
``private_tmp = directory``, so the test can read them), except where the shared ``/tmp``
itself is what is tested.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.daemon import BEHAVE, make_function, run_server, unique

PY_AGENT = """#!{python}
import http.client, json, os, sys
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
out = os.environ["OUT"]
name = os.path.basename(sys.argv[0])
conn = http.client.HTTPConnection(api)
conn.request("POST", "/2020-01-01/extension/register", json.dumps({"events": ["INVOKE", "SHUTDOWN"]}),
             {"Lambda-Extension-Name": name, "Lambda-Extension-Accept-Feature": "accountId"})
r = conn.getresponse()
info = json.loads(r.read())
ident = r.getheader("Lambda-Extension-Identifier")
if os.path.isdir(out):  # not when the test's folder is hidden by a private /tmp
  with open(os.path.join(out, name + ".registered"), "w") as f:
    json.dump({"status": r.status, "body": info, "uid": os.getuid(),
               "handler_env": os.environ.get("_HANDLER"), "task_root_env": os.environ.get("LAMBDA_TASK_ROOT")}, f)
if os.environ.get("TMP_MARKER"):
    with open("/tmp/ext-marker", "w") as f:
        f.write("uid=%d" % os.getuid())
print("agent registered", flush=True)
seen = []
while True:
    conn.request("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ident})
    r = conn.getresponse()
    event = json.loads(r.read())
    if event["eventType"] == "INVOKE":
        seen.append(event["requestId"])
        gate = os.environ.get("GATE")
        if gate:
            with open(os.path.join(out, "holding-" + event["requestId"]), "w"):
                pass
            while not os.path.exists(gate):
                import time; time.sleep(0.01)
            os.unlink(gate)
        try:  # the test's folder may be hidden or read-only under a private /tmp
            path = os.path.join(out, "invoke-" + event["requestId"])
            with open(path + ".part", "w") as f:  # whole when it appears: the test reads it at once
                json.dump(event, f)
            os.replace(path + ".part", path)
        except OSError as e:
            print("agent cannot record the invoke:", e, flush=True)
    else:
        with open(os.path.join(out, name + ".shutdown"), "w") as f:
            json.dump({"event": event, "seen": seen}, f)
        print("agent flushed", flush=True)
        sys.exit(0)
""".replace("{python}", sys.executable)

BASH_AGENT = r"""#!/bin/bash
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2020-01-01/extension"
name=$(basename "$0")
headers=$(mktemp "$OUT/h.XXXXXX")
curl -sS -D "$headers" -o /dev/null -X POST "$api/register" \
  -H "Lambda-Extension-Name: $name" -d '{"events":["INVOKE","SHUTDOWN"]}'
id=$(grep -i '^Lambda-Extension-Identifier:' "$headers" | cut -d' ' -f2 | tr -d '\r')
rm -f "$headers"
echo "bash agent $name registered"
buffer="$OUT/$name.buffer"
: > "$buffer"
while true; do
  event=$(curl -sS -H "Lambda-Extension-Identifier: $id" "$api/event/next")
  case "$event" in
    *'"eventType":"INVOKE"'*)
      rid=$(printf '%s' "$event" | sed -E 's/.*"requestId":"([^"]+)".*/\1/')
      echo "$rid" >> "$buffer"
      printf '%s' "$event" > "$OUT/.bash-invoke-$rid" && mv "$OUT/.bash-invoke-$rid" "$OUT/bash-invoke-$rid"
      ;;
    *'"eventType":"SHUTDOWN"'*)
      mv "$buffer" "$OUT/$name.flushed"
      printf '%s' "$event" > "$OUT/$name.shutdown"
      exit 0
      ;;
  esac
done
"""

CRASHER = """#!/bin/sh
echo "crasher starting"
exit 3
"""


def _function(tmp_path: Path, agents: dict[str, str]) -> Path:
    fn = make_function(tmp_path / "fn", BEHAVE)
    ext = fn / "extensions"
    ext.mkdir()
    for name, text in agents.items():
        (ext / name).write_text(text)
        (ext / name).chmod(0o755)
    return fn


def _wait_for(path: Path, timeout: float = 15.0) -> Path:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)
    return path


def _env(out: Path, **extra: str) -> dict[str, str]:
    return {"RAPID_PRIVATE_TMP": "directory", **extra}


def test_python_and_bash_agents_get_invoke_and_shutdown(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    fn = _function(tmp_path, {"py-agent": PY_AGENT, "bash-agent": BASH_AGENT})
    args = ["--function", f"f={fn}", "--env", f"OUT={out}", "--handler", "h.main", "--concurrency", "1"]
    with run_server(args, env={**_env(out), "RAPID_OVERFLOW": "queue"}) as d:
        ids = []
        for i in range(2):
            r = d.invoke("f", {"echo": i})
            assert r.status == 200 and r.json() == i and r.function_error is None
            ids.append(r.headers["x-amzn-requestid"])
        for rid in ids:
            py = json.loads(_wait_for(out / f"invoke-{rid}").read_text())
            assert py["eventType"] == "INVOKE" and py["requestId"] == rid
            assert py["invokedFunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:f"
            assert py["deadlineMs"] > time.time() * 1000 - 60_000
            assert py["tracing"]["type"] == "X-Amzn-Trace-Id" and py["tracing"]["value"].startswith("Root=1-")
            bash = json.loads(_wait_for(out / f"bash-invoke-{rid}").read_text())
            assert bash["requestId"] == rid
        reg = json.loads((out / "py-agent.registered").read_text())
        assert reg["status"] == 200
        assert reg["body"] == {"functionName": "f", "functionVersion": "$LATEST", "handler": "h.main",
                               "accountId": "000000000000"}
        assert reg["handler_env"] is None and reg["task_root_env"] is None  # hidden from extensions
        d.wait_for_line(r"EXTENSION\tName: py-agent\tState: Ready\tEvents: \[INVOKE, SHUTDOWN\]")
        d.wait_for_line(r"EXTENSION\tName: bash-agent\tState: Ready")
        d.wait_for_line(r"\] agent registered$")  # an extension's output is in the log stream
        d.wait_for_line(r"\] bash agent bash-agent registered$")
        report = d.wait_for_line(rf"REPORT RequestId: {ids[1]}")
        assert "Init Duration" not in report
    # SIGTERM: the shutdown phase sends SHUTDOWN (spindown); the agents flush and exit.
    py_down = json.loads((out / "py-agent.shutdown").read_text())
    assert py_down["event"]["eventType"] == "SHUTDOWN"
    assert py_down["event"]["shutdownReason"] == "spindown"
    assert py_down["seen"] == ids
    assert (out / "bash-agent.flushed").read_text().split() == ids
    assert json.loads((out / "bash-agent.shutdown").read_text())["shutdownReason"] == "spindown"
    assert "[f] agent flushed" in d.lines


def test_extension_shares_tmp_and_uid_with_the_runtime(tmp_path):
    """With the default isolation (a private /tmp per instance where the host allows it),
    what an extension writes to /tmp the runtime reads, under the same uid."""
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    fn = _function(tmp_path, {"agent": PY_AGENT})
    args = ["--function", f"f={fn}", "--env", f"OUT={out}", "--env", "TMP_MARKER=1"]
    with run_server(args, env={"RAPID_PRIVATE_TMP": "auto"}) as d:
        r = d.invoke("f", {"id": True})
        assert r.function_error is None, (r.body, d.lines)
        uid = r.json()[0]
        assert d.invoke("f", {"read": "/tmp/ext-marker"}).json() == f"uid={uid}"


def test_slow_extension_delays_reuse_but_not_the_answer(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    gate = out / "gate"
    fn = _function(tmp_path, {"agent": PY_AGENT})
    args = ["--function", f"f={fn}", "--env", f"OUT={out}", "--env", f"GATE={gate}", "--concurrency", "1"]
    with run_server(args, env={**_env(out), "RAPID_OVERFLOW": "queue"}) as d:
        first = d.invoke("f", {"pid": True})
        rid = first.headers["x-amzn-requestid"]
        # The invoker has its answer while the extension still holds the invocation.
        assert first.status == 200 and first.function_error is None
        _wait_for(out / f"holding-{rid}")
        assert not (out / f"invoke-{rid}").exists()
        assert not any(line.startswith(f"REPORT RequestId: {rid}") for line in d.lines)
        second: list[object] = []
        t = threading.Thread(target=lambda: second.append(d.invoke("f", {"pid": True})))
        t.start()
        time.sleep(0.5)
        assert not second, "the instance was reused before its extension was done"
        gate.touch()  # release the first invocation
        report = d.wait_for_line(rf"REPORT RequestId: {rid}")
        assert "Duration" in report
        # The second invocation runs on the same instance once the first is over.
        deadline = time.monotonic() + 15
        while not list(out.glob("holding-*"))[1:] and time.monotonic() < deadline:
            time.sleep(0.02)
        gate.touch()
        t.join(15)
        assert second and second[0].json() == first.json()  # the same runtime process


def test_crashed_extension_fails_init(tmp_path):
    fn = _function(tmp_path, {"crasher": CRASHER})
    with run_server(["--function", f"f={fn}"], env={"RAPID_PRIVATE_TMP": "directory"}) as d:
        r = d.invoke("f", {"echo": 1})
        assert r.status == 200 and r.function_error == "Unhandled"
        body = r.json()
        assert body["errorType"] == "Extension.Crash"
        assert "exit status 3" in body["errorMessage"]
        d.wait_for_line(r"INIT_REPORT Init Duration: .*Phase: init\tStatus: error\tError Type: Extension.Crash")
        d.wait_for_line(r"INIT_REPORT Init Duration: .*Phase: invoke\tStatus: error\tError Type: Extension.Crash")
        assert "[f] crasher starting" in d.lines


# A runtime with an internal extension: a thread of its own process registers, polls next
# and counts INVOKEs; the runtime answers with what the thread has seen and what the
# Extensions API answered to bad calls.
INTERNAL = """#!{python}
import http.client, json, os, threading
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
def call(method, path, body=None, headers={}):
    c = http.client.HTTPConnection(api)
    c.request(method, path, body, headers)
    r = c.getresponse()
    return r.status, dict(r.getheaders()), r.read()
checks = {}
s, h, b = call("POST", "/2020-01-01/extension/register", json.dumps({"events": ["SHUTDOWN"]}),
               {"Lambda-Extension-Name": "internal-shutdown"})
checks["internal_shutdown"] = [s, json.loads(b)]
s, h, b = call("POST", "/2020-01-01/extension/register", json.dumps({"events": ["BOGUS"]}),
               {"Lambda-Extension-Name": "bogus"})
checks["bogus_event"] = [s, json.loads(b)]
s, h, b = call("POST", "/2020-01-01/extension/register", "{}", {})
checks["no_name"] = [s, json.loads(b)]
s, h, b = call("GET", "/2020-01-01/extension/event/next")
checks["no_id"] = [s, json.loads(b)]
s, h, b = call("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": "nope"})
checks["bad_id"] = [s, json.loads(b)]
s, h, b = call("GET", "/2020-01-01/extension/event/next",
               headers={"Lambda-Extension-Identifier": "00000000-0000-4000-8000-000000000000"})
checks["unknown_id"] = [s, json.loads(b)]
s, h, b = call("POST", "/2020-01-01/extension/register", json.dumps({"events": ["INVOKE"]}),
               {"Lambda-Extension-Name": "internal-agent"})
ident = {k.lower(): v for k, v in h.items()}["lambda-extension-identifier"]
seen = []
def agent():
    c = http.client.HTTPConnection(api)
    while True:
        c.request("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ident})
        r = c.getresponse()
        seen.append(json.loads(r.read())["requestId"])
threading.Thread(target=agent, daemon=True).start()
conn = http.client.HTTPConnection(api)
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse(); r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    conn.request("POST", "/2018-06-01/runtime/invocation/" + rid + "/response",
                 json.dumps({"seen": list(seen), "checks": checks}))
    conn.getresponse().read()
    s, h, b = call("POST", "/2020-01-01/extension/register", "{}", {"Lambda-Extension-Name": "late"})
    checks["late"] = [s, json.loads(b)]
""".replace("{python}", sys.executable)


def test_internal_extension_and_api_errors(tmp_path):
    fn = make_function(tmp_path / "fn", INTERNAL)
    with run_server(["--function", f"f={fn}"]) as d:
        a = d.invoke("f", {})
        b = d.invoke("f", {})
        c = d.invoke("f", {}).json()
        # The thread got an INVOKE for each earlier invocation before that one ended.
        ids = [a.headers["x-amzn-requestid"], b.headers["x-amzn-requestid"]]
        assert c["seen"][:2] == ids
        checks = c["checks"]
        assert checks["internal_shutdown"][0] == 403
        assert checks["internal_shutdown"][1]["errorType"] == "Extension.InvalidEventType"
        assert checks["bogus_event"] == [403, {"errorType": "Extension.InvalidEventType",
                                               "errorMessage": "Invalid event type: BOGUS"}]
        assert checks["no_name"] == [403, {"errorType": "Extension.InvalidExtensionName",
                                           "errorMessage": "Empty extension name"}]
        assert checks["no_id"] == [403, {"errorType": "Extension.MissingExtensionIdentifier",
                                         "errorMessage": "Missing Lambda-Extension-Identifier header"}]
        assert checks["bad_id"] == [403, {"errorType": "Extension.InvalidExtensionIdentifier",
                                          "errorMessage": "Invalid Lambda-Extension-Identifier"}]
        assert checks["unknown_id"][1]["errorType"] == "Extension.UnknownExtensionIdentifier"
        assert checks["late"] == [403, {"errorType": "Extension.RegistrationClosed",
                                        "errorMessage": "Extension registration closed already"}]


def test_dropin_mode_starts_extensions_from_the_named_folder(tmp_path):
    """Drop-in mode reads /opt/extensions; RAPID_EXTENSIONS names another folder (a test
    cannot write /opt)."""
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    fn = make_function(tmp_path / "task", BEHAVE)
    ext = tmp_path / "opt-extensions"
    ext.mkdir()
    (ext / "agent").write_text(PY_AGENT)
    (ext / "agent").chmod(0o755)
    env = {"RAPID_PRIVATE_TMP": "directory", "RAPID_EXTENSIONS": str(ext), "OUT": str(out)}
    with run_server(["--", str(fn / "bootstrap")], env=env, cwd=fn) as d:
        r = d.invoke("function", {"echo": "x"})
        assert r.json() == "x"
        _wait_for(out / f"invoke-{r.headers['x-amzn-requestid']}")
        info = json.loads((out / "agent.registered").read_text())
        assert info["body"]["functionName"] == "function"


def test_default_extension_folders():
    from rapid.config import FunctionConfig
    from rapid.host.code import code_for

    dropin = FunctionConfig(path="/srv/task", command=["/srv/task/bootstrap"], inherit_environment=True)
    assert code_for(dropin, dropin=True, data_dir=Path("/nonexistent")).extensions == "/opt/extensions"
    folder = FunctionConfig(path="/srv/fn")
    assert code_for(folder, dropin=False, data_dir=Path("/nonexistent")).extensions == "/srv/fn/extensions"
    named = FunctionConfig(path="/srv/fn", extensions="/srv/ext")
    assert code_for(named, dropin=False, data_dir=Path("/nonexistent")).extensions == "/srv/ext"


def test_extension_from_a_layer_of_a_function_created_through_the_api(tmp_path):
    """As on Lambda, a layer's extensions/ folder is where a deployed function's extensions
    come from (the control plane merges layers at /opt)."""
    from tests.control import ROLE, behave_zip, client, make_zip, wait_active

    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    layer_zip = make_zip({"extensions/layer-agent": PY_AGENT}, {"extensions/layer-agent": 0o755})
    env = {"RAPID_PRIVATE_TMP": "directory"}
    with run_server(["--data-dir", str(tmp_path / "state")], env=env) as d:
        lam = client(d)
        layer = lam.publish_layer_version(LayerName="agents", Content={"ZipFile": layer_zip})
        lam.create_function(FunctionName="layered", Runtime="provided.al2023", Role=ROLE,
                            Code={"ZipFile": behave_zip()}, Layers=[layer["LayerVersionArn"]],
                            Environment={"Variables": {"OUT": str(out)}})
        wait_active(lam, "layered")
        r = lam.invoke(FunctionName="layered", Payload=b'{"echo": "hi"}')
        assert r["Payload"].read() == b'"hi"' and "FunctionError" not in r
        rid = r["ResponseMetadata"]["RequestId"]
        event = json.loads(_wait_for(out / f"invoke-{rid}").read_text())
        assert event["invokedFunctionArn"].endswith(":function:layered")
        d.wait_for_line(r"EXTENSION\tName: layer-agent\tState: Ready")
    assert json.loads((out / "layer-agent.shutdown").read_text())["event"]["shutdownReason"] == "spindown"
