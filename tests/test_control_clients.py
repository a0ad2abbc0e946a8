"""The control plane with the other real clients (the AWS CLI, the JavaScript SDK v3),
persistence across ``kill -9``, and the guard on a non-loopback address (SigV4)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.control import ROLE, behave_zip, client, make_zip, python_zip, wait_active
from tests.daemon import ROOT, Daemon, run_cli, run_server

AWS = shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")
JS_SDK = ROOT / ".cache" / "js-sdk" / "node_modules"


def _aws(daemon: Daemon, *args: str, cwd: Path) -> dict:  # type: ignore[type-arg]
    assert AWS is not None, "the AWS CLI (awscli, in the test extra) is not installed"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": ""}
    out = subprocess.run([AWS, "--endpoint-url", f"http://127.0.0.1:{daemon.port}", "--output", "json",
                          "lambda", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else {}


def test_aws_cli_deploys_publishes_aliases_and_invokes(tmp_path: Path) -> None:
    (tmp_path / "hello.zip").write_bytes(python_zip("def handler(e, c):\n    return {'hi': e.get('n')}\n"))
    (tmp_path / "deps.zip").write_bytes(make_zip({"python/dep.py": "X = 1\n"}))
    with run_server(["--data-dir", str(tmp_path / "state")]) as daemon:
        layer = _aws(daemon, "publish-layer-version", "--layer-name", "deps", "--zip-file", "fileb://deps.zip",
                     cwd=tmp_path)
        assert layer["Version"] == 1
        created = _aws(daemon, "create-function", "--function-name", "hello", "--runtime", "python3.12",
                       "--handler", "app.handler", "--role", ROLE, "--zip-file", "fileb://hello.zip",
                       "--layers", layer["LayerVersionArn"], cwd=tmp_path)
        assert created["FunctionName"] == "hello" and created["Layers"][0]["Arn"] == layer["LayerVersionArn"]
        _aws(daemon, "wait", "function-active-v2", "--function-name", "hello", cwd=tmp_path)
        result = _aws(daemon, "invoke", "--function-name", "hello",
                      "--payload", '{"n": 7}', "out.json", cwd=tmp_path)
        assert result["StatusCode"] == 200 and result["ExecutedVersion"] == "$LATEST"
        assert json.loads((tmp_path / "out.json").read_text()) == {"hi": 7}
        assert _aws(daemon, "publish-version", "--function-name", "hello", cwd=tmp_path)["Version"] == "1"
        alias = _aws(daemon, "create-alias", "--function-name", "hello", "--name", "live", "--function-version", "1",
                     cwd=tmp_path)
        assert alias["FunctionVersion"] == "1"
        result = _aws(daemon, "invoke", "--function-name", "hello:live", "out2.json", cwd=tmp_path)
        assert result["ExecutedVersion"] == "1"


JS = r"""
const { LambdaClient, CreateFunctionCommand, InvokeCommand, GetFunctionCommand } = require("@aws-sdk/client-lambda");
const fs = require("fs");
const [endpoint, zip] = process.argv.slice(2);
const client = new LambdaClient({ endpoint, region: "us-east-1", maxAttempts: 1,
  credentials: { accessKeyId: "test", secretAccessKey: "test" } });
(async () => {
  const created = await client.send(new CreateFunctionCommand({ FunctionName: "jsfn", Runtime: "provided.al2023",
    Role: "arn:aws:iam::000000000000:role/x", Code: { ZipFile: fs.readFileSync(zip) } }));
  for (let i = 0; i < 100; i++) {
    const got = await client.send(new GetFunctionCommand({ FunctionName: "jsfn" }));
    if (got.Configuration.State === "Active") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const out = await client.send(new InvokeCommand({ FunctionName: "jsfn", Payload: Buffer.from('{"echo": "js"}') }));
  console.log(JSON.stringify({ state: created.State, arn: created.FunctionArn, version: out.ExecutedVersion,
    payload: Buffer.from(out.Payload).toString() }));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def test_javascript_sdk_creates_and_invokes(tmp_path: Path) -> None:
    if not (JS_SDK / "@aws-sdk" / "client-lambda").is_dir():
        pytest.skip("@aws-sdk/client-lambda is not installed (.ci/steps/40-js-sdk.sh installs it)")
    (tmp_path / "fn.zip").write_bytes(behave_zip())
    (tmp_path / "deploy.js").write_text(JS)
    with run_server(["--data-dir", str(tmp_path / "state")]) as daemon:
        out = subprocess.run(["node", str(tmp_path / "deploy.js"), f"http://127.0.0.1:{daemon.port}",
                              str(tmp_path / "fn.zip")], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "NODE_PATH": str(JS_SDK)})
        assert out.returncode == 0, out.stderr
        seen = json.loads(out.stdout)
        assert seen == {"state": "Pending", "arn": "arn:aws:lambda:us-east-1:000000000000:function:jsfn",
                        "version": "$LATEST", "payload": '"js"'}


def test_everything_survives_kill_9(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    env = {"RAPID_PRIVATE_TMP": "directory"}  # no mount namespace: layers at the merged folder
    with run_server(["--data-dir", state], env=env, expect_exit=None) as daemon:
        lam = client(daemon)
        layer = lam.publish_layer_version(LayerName="kept", Content={"ZipFile": make_zip({"data/x.txt": "kept"})})
        lam.create_function(FunctionName="durable", Runtime="provided.al2023", Role=ROLE,
                            Code={"ZipFile": behave_zip()}, Layers=[layer["LayerVersionArn"]],
                            Environment={"Variables": {"K": "v1"}}, Tags={"t": "1"})
        wait_active(lam, "durable")
        lam.publish_version(FunctionName="durable")
        lam.update_function_configuration(FunctionName="durable", Environment={"Variables": {"K": "v2"}})
        lam.publish_version(FunctionName="durable")
        lam.create_alias(FunctionName="durable", Name="live", FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
        lam.put_function_concurrency(FunctionName="durable", ReservedConcurrentExecutions=7)
        lam.put_provisioned_concurrency_config(FunctionName="durable", Qualifier="live",
                                               ProvisionedConcurrentExecutions=1)
        before = lam.get_function(FunctionName="durable")["Configuration"]
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(10)
    with run_server(["--data-dir", state], env=env) as daemon:
        lam = client(daemon)
        after = lam.get_function(FunctionName="durable")
        assert after["Configuration"]["RevisionId"] == before["RevisionId"]
        assert after["Configuration"]["CodeSha256"] == before["CodeSha256"]
        assert after["Tags"] == {"t": "1"} and after["Concurrency"] == {"ReservedConcurrentExecutions": 7}
        assert [v["Version"] for v in lam.list_versions_by_function(FunctionName="durable")["Versions"]] == [
            "$LATEST", "1", "2"]
        assert lam.get_alias(FunctionName="durable", Name="live")["RoutingConfig"] == {
            "AdditionalVersionWeights": {"2": 0.5}}
        assert lam.get_layer_version(LayerName="kept", VersionNumber=1)["Version"] == 1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # provisioned instances are started again
            status = lam.get_provisioned_concurrency_config(FunctionName="durable", Qualifier="live")["Status"]
            if status == "READY":
                break
            time.sleep(0.1)
        assert status == "READY"
        for qualifier, expected in (("1", b'"v1"'), ("2", b'"v2"'), ("$LATEST", b'"v2"')):
            out = lam.invoke(FunctionName="durable", Qualifier=qualifier, Payload=b'{"env": "K"}')
            assert out["Payload"].read() == expected
        versions = {lam.invoke(FunctionName="durable", Qualifier="live", Payload=b'{"echo": 1}')["ExecutedVersion"]
                    for _ in range(40)}
        assert versions == {"1", "2"}
        path = json.loads(lam.invoke(FunctionName="durable", Payload=b'{"env": "PATH"}')["Payload"].read())
        root = path.rsplit(":", 1)[1].removesuffix("/bin")
        assert root.startswith(state) and root != "/opt"  # the merged folder itself, said in the variables
        read = json.loads(lam.invoke(FunctionName="durable", Payload=json.dumps(
            {"read": f"{root}/data/x.txt"}).encode())["Payload"].read())
        assert read == "kept"


def test_non_loopback_management_needs_credentials(tmp_path: Path) -> None:
    # Bound to every address, reached through 127.0.0.1 only.
    with run_server(["--host", "0.0.0.0", "--data-dir", str(tmp_path / "a")]) as daemon:
        lam = client(daemon)
        with pytest.raises(ClientError) as err:
            lam.list_functions()
        e = err.value.response
        assert e["ResponseMetadata"]["HTTPStatusCode"] == 403 and e["Error"]["Code"] == "AccessDeniedException"
        assert "--credentials" in e["Error"]["Message"]
        assert daemon.request("GET", "/healthz").status == 200  # not a management call
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKIDRAPID\naws_secret_access_key = s3cret\n")
    with run_server(["--host", "0.0.0.0", "--credentials", str(creds), "--data-dir", str(tmp_path / "b")]) as daemon:
        good = client(daemon, "AKIDRAPID", "s3cret")
        good.create_function(FunctionName="signed", Runtime="provided.al2023", Role=ROLE,
                             Code={"ZipFile": behave_zip()})
        wait_active(good, "signed")
        assert good.get_function(FunctionName="arn:aws:lambda:us-east-1:000000000000:function:signed:$LATEST")
        good.tag_resource(Resource="arn:aws:lambda:us-east-1:000000000000:function:signed", Tags={"a": "b c"})
        assert good.list_tags(Resource="arn:aws:lambda:us-east-1:000000000000:function:signed")["Tags"] == {"a": "b c"}
        for key, secret, code in (("AKIDOTHER", "s3cret", "UnrecognizedClientException"),
                                  ("AKIDRAPID", "wrong", "InvalidSignatureException")):
            with pytest.raises(ClientError) as err:
                client(daemon, key, secret).list_functions()
            e = err.value.response
            assert e["ResponseMetadata"]["HTTPStatusCode"] == 403 and e["Error"]["Code"] == code
        reply = daemon.request("GET", "/2015-03-31/functions")
        assert reply.status == 403
        # Invoke stays open, as a drop-in container needs.
        assert client(daemon, "any", "thing").invoke(FunctionName="signed", Payload=b'{"echo": 2}')[
            "Payload"].read() == b"2"
    with run_server(["--host", "0.0.0.0", "--allow-unauthenticated", "--data-dir", str(tmp_path / "c")]) as daemon:
        assert client(daemon).list_functions()["Functions"] == []


def test_unreadable_credentials_stop_start_up(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("[default]\n")
    for path in (tmp_path / "missing", tmp_path / "empty"):
        out = run_cli(["serve", "--port", "0", "--data-dir", str(tmp_path / "s"), "--credentials", str(path)])
        assert out.returncode == 2 and "credentials" in out.stderr
