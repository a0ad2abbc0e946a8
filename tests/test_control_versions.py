"""Versions, aliases with weighted routing, layers and concurrency through boto3."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from tests.control import ROLE, behave_zip, client, make_zip, python_zip, wait_active, wait_updated
from tests.daemon import Daemon, run_server, unique


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("versions")
    with run_server(["--data-dir", str(root / "state"), "--max-concurrency", "300"]) as d:
        yield d


@pytest.fixture(scope="module")
def lam(daemon: Daemon):  # type: ignore[no-untyped-def]
    return client(daemon)


def _err(err: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    e = err.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"], e["Error"]["Message"]


def _answer(v: str) -> bytes:
    return python_zip(f"def handler(event, context):\n    return {v!r}\n")


def _function(lam, body: bytes | None = None, **kw) -> str:  # type: ignore[no-untyped-def]
    name = "fn-" + unique()
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": body or _answer("one")}, **kw)
    wait_active(lam, name)
    return name


def test_publish_versions_and_invoke_them(lam) -> None:  # type: ignore[no-untyped-def]
    name = _function(lam)
    v1 = lam.publish_version(FunctionName=name, Description="first")
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201 and v1["Version"] == "1"
    assert v1["FunctionArn"].endswith(f":{name}:1")
    again = lam.publish_version(FunctionName=name)
    assert again["Version"] == "1"  # nothing changed: the latest version
    lam.update_function_code(FunctionName=name, ZipFile=_answer("two"))
    wait_updated(lam, name)
    with pytest.raises(ClientError) as err:
        lam.publish_version(FunctionName=name, CodeSha256="bm90IHRoaXM=")
    assert _err(err)[1] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as err:
        lam.publish_version(FunctionName=name, RevisionId="stale")
    assert _err(err)[:2] == (412, "PreconditionFailedException")
    v2 = lam.publish_version(FunctionName=name)
    assert v2["Version"] == "2"
    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]]
    assert versions == ["$LATEST", "1", "2"]
    for qualifier, expected in (("1", b'"one"'), ("2", b'"two"'), ("$LATEST", b'"two"')):
        out = lam.invoke(FunctionName=name, Qualifier=qualifier)
        assert out["Payload"].read() == expected and out["ExecutedVersion"] == qualifier
    out = lam.invoke(FunctionName=f"{name}:1")
    assert out["Payload"].read() == b'"one"' and out["ExecutedVersion"] == "1"
    assert lam.get_function(FunctionName=name, Qualifier="1")["Configuration"]["Description"] == "first"
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName=name, Qualifier="9")
    assert _err(err)[:2] == (404, "ResourceNotFoundException")
    every = lam.list_functions(FunctionVersion="ALL")["Functions"]
    assert [f["Version"] for f in every if f["FunctionName"] == name] == ["$LATEST", "1", "2"]
    lam.delete_function(FunctionName=name, Qualifier="1")
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName=name, Qualifier="1")
    assert _err(err)[1] == "ResourceNotFoundException"
    assert lam.invoke(FunctionName=name, Qualifier="2")["Payload"].read() == b'"two"'


def test_aliases_and_weighted_routing(lam) -> None:  # type: ignore[no-untyped-def]
    name = _function(lam)
    lam.publish_version(FunctionName=name)
    lam.update_function_code(FunctionName=name, ZipFile=_answer("two"))
    wait_updated(lam, name)
    lam.publish_version(FunctionName=name)
    alias = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="prod",
                             RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}})
    assert alias["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert alias["AliasArn"].endswith(f":{name}:live")
    assert alias["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.3}}
    with pytest.raises(ClientError) as err:
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    assert _err(err)[:2] == (409, "ResourceConflictException")
    for weights in ({"2": 1.0}, {"$LATEST": 0.1}):
        with pytest.raises(ClientError) as err:
            lam.create_alias(FunctionName=name, Name="bad", FunctionVersion="1",
                             RoutingConfig={"AdditionalVersionWeights": weights})
        assert _err(err)[0] == 400
    with pytest.raises(ClientError) as err:
        lam.create_alias(FunctionName=name, Name="bad", FunctionVersion="$LATEST",
                         RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}})
    assert _err(err)[0] == 400

    n = 1000
    seen = {"1": 0, "2": 0}
    for _ in range(n):
        out = lam.invoke(FunctionName=name, Qualifier="live")
        body = out["Payload"].read()
        seen[out["ExecutedVersion"]] += 1
        assert body == (b'"one"' if out["ExecutedVersion"] == "1" else b'"two"')
    sigma = math.sqrt(n * 0.3 * 0.7)
    assert abs(seen["2"] - 300) < 4.5 * sigma, seen  # 4.5 sigma: fails by chance about once in 10^5 runs

    got = lam.get_alias(FunctionName=name, Name="live")
    with pytest.raises(ClientError) as err:
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2", RevisionId="stale")
    assert _err(err)[:2] == (412, "PreconditionFailedException")
    updated = lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2", RevisionId=got["RevisionId"],
                               RoutingConfig={"AdditionalVersionWeights": {}})
    assert updated["FunctionVersion"] == "2" and "RoutingConfig" not in updated
    assert lam.invoke(FunctionName=f"{name}:live")["ExecutedVersion"] == "2"
    lam.create_alias(FunctionName=name, Name="edge", FunctionVersion="$LATEST")
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]] == ["edge", "live"]
    assert lam.invoke(FunctionName=name, Qualifier="edge")["ExecutedVersion"] == "$LATEST"
    with pytest.raises(ClientError) as err:
        lam.delete_function(FunctionName=name, Qualifier="2")
    assert _err(err)[:2] == (409, "ResourceConflictException")  # the alias points at it
    assert lam.delete_alias(FunctionName=name, Name="live")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as err:
        lam.get_alias(FunctionName=name, Name="live")
    assert _err(err)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName=name, Qualifier="live")
    assert _err(err)[1] == "ResourceNotFoundException"


LAYER_PY = "def where():\n    return '{}'\n"


def test_layers_merge_into_opt_in_order(daemon: Daemon, lam) -> None:  # type: ignore[no-untyped-def]
    base = "base-" + unique()
    top = "top-" + unique()
    l1 = lam.publish_layer_version(
        LayerName=base, Description="first", CompatibleRuntimes=["python3.12"], LicenseInfo="MIT",
        Content={"ZipFile": make_zip({"python/shared.py": LAYER_PY.format("base"), "python/only_base.py": "X = 1\n",
                                      "bin/hello-layer": "#!/bin/sh\necho from-layer\n", "data/who.txt": "base"},
                                     {"bin/hello-layer": 0o755})})
    assert l1["ResponseMetadata"]["HTTPStatusCode"] == 201 and l1["Version"] == 1
    assert l1["LayerVersionArn"] == f"arn:aws:lambda:us-east-1:000000000000:layer:{base}:1"
    l2 = lam.publish_layer_version(LayerName=top, Content={"ZipFile": make_zip({
        "python/shared.py": LAYER_PY.format("top"), "data/who.txt": "top",
        "python/lib/python3.11/site-packages/sitepkg.py": "Y = 2\n"})})
    assert lam.get_layer_version(LayerName=base, VersionNumber=1)["Description"] == "first"
    assert lam.get_layer_version_by_arn(Arn=l2["LayerVersionArn"])["Version"] == 1
    assert base in [x["LayerName"] for x in lam.list_layers()["Layers"]]
    assert [x["Version"] for x in lam.list_layer_versions(LayerName=base)["LayerVersions"]] == [1]

    probe = ("import os, shared, only_base, sitepkg, subprocess\n"
             "def handler(event, context):\n"
             "    root = os.environ['PATH'].split(':')[-1][:-4]\n"
             "    return {'shared': shared.where(), 'who': open(root + '/data/who.txt').read(),\n"
             "            'bin': subprocess.run(['hello-layer'], capture_output=True, text=True).stdout.strip(),\n"
             "            'path': os.environ['PATH'], 'ld': os.environ['LD_LIBRARY_PATH'],\n"
             "            'pythonpath': os.environ['PYTHONPATH'], 'node': os.environ['NODE_PATH'],\n"
             "            'site': sitepkg.Y}\n")
    name = _function(lam, python_zip(probe), Layers=[l1["LayerVersionArn"], l2["LayerVersionArn"]])
    conf = lam.get_function_configuration(FunctionName=name)
    assert [x["Arn"] for x in conf["Layers"]] == [l1["LayerVersionArn"], l2["LayerVersionArn"]]
    assert conf["Layers"][0]["CodeSize"] == l1["Content"]["CodeSize"]
    out = json.loads(lam.invoke(FunctionName=name)["Payload"].read())
    assert out["shared"] == "top" and out["who"] == "top"  # the later layer wins
    assert out["bin"] == "from-layer" and out["site"] == 2
    root = out["path"].split(":")[-1][:-4]
    if any("mount namespace" in line for line in daemon.stderr):
        assert root == "/opt"  # the merged tree is mounted there
    else:
        assert root.endswith(tuple("0123456789abcdef")) and "/code/opt/" in root
    assert out["path"].endswith(f"{root}/bin") and f"{root}/lib" in out["ld"].split(":")
    assert out["pythonpath"].split(":")[0] == f"{root}/python"
    assert out["node"] == f"{root}/nodejs/node_modules"

    # A shell (provided) function sees the same tree.
    shell = make_zip({"bootstrap": SHELL_LS}, {"bootstrap": 0o755})
    sh = "sh-" + unique()
    lam.create_function(FunctionName=sh, Runtime="provided.al2023", Role=ROLE, Code={"ZipFile": shell},
                        Layers=[l2["LayerVersionArn"], l1["LayerVersionArn"]])
    wait_active(lam, sh)
    listing = json.loads(lam.invoke(FunctionName=sh)["Payload"].read())
    assert listing["who"] == "base"  # reversed order: base is now the later layer
    assert "hello-layer" in listing["bin"].split()

    arns = [l1["LayerVersionArn"]] * 2
    with pytest.raises(ClientError) as err:
        lam.update_function_configuration(FunctionName=name, Layers=arns)
    assert _err(err)[1] == "InvalidParameterValueException"
    six = [f"arn:aws:lambda:us-east-1:000000000000:layer:l{i}:1" for i in range(6)]
    with pytest.raises(ClientError) as err:
        lam.update_function_configuration(FunctionName=name, Layers=six)
    assert _err(err)[2] == "Cannot reference more than 5 layers."
    lam.update_function_configuration(FunctionName=name, Layers=[])
    wait_updated(lam, name)
    assert "Layers" not in lam.get_function_configuration(FunctionName=name)
    assert lam.delete_layer_version(LayerName=top, VersionNumber=1)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as err:
        lam.get_layer_version(LayerName=top, VersionNumber=1)
    assert _err(err)[:2] == (404, "ResourceNotFoundException")
    assert lam.publish_layer_version(LayerName=top, Content={"ZipFile": make_zip({"a": "b"})})["Version"] == 2


# A shell bootstrap answering what /opt (or the merged folder) holds.
SHELL_LS = r"""#!/bin/sh
root="${PATH##*:}"; root="${root%/bin}"
while true; do
  headers=$(mktemp)
  curl -sS -D "$headers" -o /dev/null "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next"
  rid=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | tr -d '\r' | cut -d' ' -f2)
  who=$(cat "$root/data/who.txt")
  bin=$(ls "$root/bin" | tr '\n' ' ')
  curl -sS -o /dev/null -d "{\"who\": \"$who\", \"bin\": \"$bin\"}" \
    "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/$rid/response"
done
"""


def test_reserved_and_provisioned_concurrency(lam) -> None:  # type: ignore[no-untyped-def]
    name = "conc-" + unique()
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE, Code={"ZipFile": behave_zip()})
    wait_active(lam, name)
    assert lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") is None
    assert lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)[
        "ReservedConcurrentExecutions"] == 5
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    assert lam.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 5}
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 295
    with pytest.raises(ClientError) as err:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=201)
    status, code, message = _err(err)
    assert (status, code) == (400, "InvalidParameterValueException") and "[100]" in message
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName=name, Payload=b'{"echo": 1}')
    assert _err(err)[:2] == (429, "TooManyRequestsException")
    assert lam.delete_function_concurrency(FunctionName=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.invoke(FunctionName=name, Payload=b'{"echo": 1}')["Payload"].read() == b"1"

    lam.publish_version(FunctionName=name)
    with pytest.raises(ClientError) as err:
        lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="$LATEST",
                                               ProvisionedConcurrentExecutions=1)
    assert _err(err)[1] == "InvalidParameterValueException"
    put = lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["Status"] == "IN_PROGRESS" and put["RequestedProvisionedConcurrentExecutions"] == 2
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
        if got["Status"] == "READY":
            break
        time.sleep(0.1)
    assert got["Status"] == "READY" and got["AvailableProvisionedConcurrentExecutions"] == 2
    listed = lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"].rsplit(":", 1)[1] for c in listed] == ["1"]
    out = lam.invoke(FunctionName=name, Qualifier="1", Payload=b'{"env": "AWS_LAMBDA_INITIALIZATION_TYPE"}')
    assert out["Payload"].read() == b'"provisioned-concurrency"'
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    with pytest.raises(ClientError) as err:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert _err(err)[:2] == (404, "ProvisionedConcurrencyConfigNotFoundException")


def test_node_function_finds_layer_modules_on_node_path(lam) -> None:  # type: ignore[no-untyped-def]
    layer = lam.publish_layer_version(LayerName="greet-" + unique(), CompatibleRuntimes=["nodejs20.x"], Content={
        "ZipFile": make_zip({"nodejs/node_modules/greet/index.js": "exports.greet = (n) => `hello ${n}`;\n"})})
    name = "node-" + unique()
    lam.create_function(FunctionName=name, Runtime="nodejs20.x", Handler="index.handler", Role=ROLE,
                        Layers=[layer["LayerVersionArn"]], Code={"ZipFile": make_zip({
                            "index.js": "const { greet } = require('greet');\n"
                                        "exports.handler = async (event) => greet(event.who);\n"})})
    wait_active(lam, name)
    assert lam.invoke(FunctionName=name, Payload=b'{"who": "node"}')["Payload"].read() == b'"hello node"'


def test_provisioned_concurrency_of_a_version_that_cannot_init_fails(lam) -> None:  # type: ignore[no-untyped-def]
    name = "broken-" + unique()
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                        Code={"ZipFile": make_zip({"bootstrap": "#!/bin/sh\nexit 3\n"}, {"bootstrap": 0o755})})
    wait_active(lam, name)
    lam.publish_version(FunctionName=name)
    lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
        if got["Status"] != "IN_PROGRESS":
            break
        time.sleep(0.1)
    assert got["Status"] == "FAILED" and "Runtime.ExitError" in got["StatusReason"]
    out = lam.invoke(FunctionName=name, Qualifier="1")  # on-demand still answers, with the init error
    assert out["FunctionError"] == "Unhandled"
