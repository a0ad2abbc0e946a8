"""deploy/kubernetes/ is checked against the schemas, not applied to a cluster (there is none
here): the Deployment, Service and Secret against Kubernetes' own OpenAPI schemas
(``kubernetes-validate`` from PyPI, strict: unknown fields are errors); the KEDA
ScaledObject against KEDA's CRD schema (``@kubernetes-models/keda`` from npm, installed by
``.ci/steps/70-nats.sh``); and the pieces against each other and against rapid's own names
(the stream and the consumer KEDA reads, the metric it queries, the flags the pods run)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from rapid.cluster.metrics import render  # noqa: F401 - the metric names below are rapid's
from rapid.events.jetstream_store import BACKLOG, STREAM

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
MODELS = ROOT / ".cache" / "k8s-models" / "node_modules"
VERSION = "1.30.0"


def documents() -> dict[str, dict]:  # type: ignore[type-arg]
    docs = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "nats-values.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def test_the_core_resources_are_valid_kubernetes() -> None:
    docs = documents()
    assert {"Deployment", "Service", "Secret", "ScaledObject"} <= set(docs)
    for kind in ("Deployment", "Service", "Secret"):
        kubernetes_validate.validate(docs[kind], VERSION, strict=True)


def test_the_validator_refuses_a_broken_deployment() -> None:
    broken = copy.deepcopy(documents()["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)
    unknown = copy.deepcopy(documents()["Service"])
    unknown["spec"]["colour"] = "blue"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, VERSION, strict=True)


def _keda(docs: list[dict]) -> subprocess.CompletedProcess[str]:  # type: ignore[type-arg]
    node = shutil.which("node")
    if node is None or not (MODELS / "@kubernetes-models" / "keda").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("node or @kubernetes-models/keda is missing (.ci/steps/70-nats.sh installs it)")
        pytest.skip("@kubernetes-models/keda is not installed in .cache/k8s-models")
    script = MODELS.parent / "keda_validate.mjs"  # next to node_modules, so the import resolves
    shutil.copyfile(ROOT / "tests" / "keda_validate.mjs", script)
    return subprocess.run([node, str(script)], input="\n".join(json.dumps(d) for d in docs), text=True,
                          capture_output=True, timeout=60)


def test_the_scaled_object_is_valid_keda() -> None:
    result = _keda([documents()["ScaledObject"]])
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr
    broken = copy.deepcopy(documents()["ScaledObject"])
    del broken["spec"]["triggers"][0]["type"]
    refused = _keda([broken])
    assert refused.returncode == 1 and "type" in refused.stdout


def test_the_pieces_fit_together() -> None:
    docs = documents()
    deployment, service, scaled = docs["Deployment"], docs["Service"], docs["ScaledObject"]
    pod = deployment["spec"]["template"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    container = pod["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--cluster") + 1].startswith("nats://")
    secret = docs["Secret"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == secret["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "credentials")
    assert args[args.index("--credentials") + 1] == f"{mount['mountPath']}/{next(iter(secret['stringData']))}"
    # The parsers rapid itself uses accept what the manifests give it.
    from rapid.config import load

    config = load({"cluster": args[args.index("--cluster") + 1],
                   "cluster_replicas": args[args.index("--cluster-replicas") + 1],
                   "data_dir": "/tmp/rapid-manifest-check"}, environ={})
    assert config.cluster_replicas == 3
    triggers = {t["type"]: t["metadata"] for t in scaled["spec"]["triggers"]}
    assert triggers["nats-jetstream"]["stream"] == STREAM
    assert triggers["nats-jetstream"]["consumer"] == BACKLOG
    assert "rapid_cluster_inflight" in triggers["prometheus"]["query"]
    values = yaml.safe_load((DEPLOY / "nats-values.yaml").read_text())
    assert values["config"]["jetstream"]["enabled"] is True
    assert triggers["nats-jetstream"]["natsServerMonitoringEndpoint"].endswith(f":{values['config']['monitor']['port']}")
