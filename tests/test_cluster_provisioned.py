"""Provisioned concurrency reported for the whole function on every node of a cluster.

Three nodes, a setting of 5 (spread 2/2/1): GetProvisionedConcurrencyConfig and
ListProvisionedConcurrencyConfigs on each node answer Requested 5 and, once every node's
part is up, Allocated 5 / Available 5 / READY (not the asking node's 1 or 2). A node killed
with SIGKILL: the survivors take its part, and the figures come back to 5 / READY. A
version whose init fails is FAILED with AWS's StatusReason on every node.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import pytest

from tests.cluster import metric
from tests.control import ROLE, client, python_zip, wait_active
from tests.daemon import run_server, unique, wait_until
from tests.nats import nats_server

pytestmark = pytest.mark.slow

HANDLER = "def handler(event, context):\n    return {'ok': True}\n"
BROKEN = "raise RuntimeError('no init today')\ndef handler(event, context):\n    return 1\n"


def _config(node, name: str, version: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    out = client(node).get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    out.pop("ResponseMetadata")
    return out


def _figures(node, name: str, version: str) -> tuple[int, int, int, str]:  # type: ignore[no-untyped-def]
    c = _config(node, name, version)
    return (c["RequestedProvisionedConcurrentExecutions"], c["AllocatedProvisionedConcurrentExecutions"],
            c["AvailableProvisionedConcurrentExecutions"], c["Status"])


def test_every_node_reports_the_whole_setting(tmp_path: Path) -> None:
    with nats_server() as nats, contextlib.ExitStack() as stack:
        nodes = [stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / f"n{i}")],
                                                expect_exit=None if i == 2 else 0))
                 for i in range(3)]
        name = f"whole-{unique()}"
        lam = client(nodes[0])
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(HANDLER)}, Timeout=30)
        wait_active(lam, name)
        version = lam.publish_version(FunctionName=name)["Version"]
        wait_until(lambda: all(metric(n, "rapid_cluster_nodes") == 3 for n in nodes), timeout=15,
                   what="every node to see the others")
        put = lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier=version,
                                                     ProvisionedConcurrentExecutions=5)
        assert put["RequestedProvisionedConcurrentExecutions"] == 5
        assert put["Status"] in ("IN_PROGRESS", "READY")
        wait_until(lambda: all(_figures(n, name, version) == (5, 5, 5, "READY") for n in nodes), timeout=40,
                   what=f"5 / READY on every node (now {[_figures(n, name, version) for n in nodes]})")
        # Each node holds only its part of the five, yet answers for the whole.
        parts = sorted(metric(n, "rapid_cluster_instances") for n in nodes)
        assert parts == [1, 2, 2]
        for node in nodes:
            listed = client(node).list_provisioned_concurrency_configs(FunctionName=name)
            [config] = listed["ProvisionedConcurrencyConfigs"]
            assert config["FunctionArn"].endswith(f":{name}:{version}")
            assert (config["AllocatedProvisionedConcurrentExecutions"], config["Status"]) == (5, "READY")

        # A node dies: its part moves to the survivors and the figures come back to 5.
        nodes[2].proc.send_signal(signal.SIGKILL)
        nodes[2].proc.wait(10)
        survivors = nodes[:2]
        wait_until(lambda: all(metric(n, "rapid_cluster_nodes") == 2 for n in survivors), timeout=20,
                   what="the survivors to see the node gone")
        wait_until(lambda: sum(metric(n, "rapid_cluster_instances") for n in survivors) == 5, timeout=40,
                   what="5 instances on the two left")
        wait_until(lambda: all(_figures(n, name, version) == (5, 5, 5, "READY") for n in survivors), timeout=20,
                   what=f"5 / READY again (now {[_figures(n, name, version) for n in survivors]})")
        assert sorted(metric(n, "rapid_cluster_instances") for n in survivors) == [2, 3]


def test_a_part_that_cannot_start_is_failed_everywhere(tmp_path: Path) -> None:
    with nats_server() as nats, contextlib.ExitStack() as stack:
        nodes = [stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / f"n{i}")]))
                 for i in range(2)]
        name = f"broken-{unique()}"
        lam = client(nodes[0])
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(BROKEN)}, Timeout=30)
        wait_active(lam, name)
        version = lam.publish_version(FunctionName=name)["Version"]
        wait_until(lambda: all(metric(n, "rapid_cluster_nodes") == 2 for n in nodes), timeout=15,
                   what="both nodes to see each other")
        lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier=version,
                                               ProvisionedConcurrentExecutions=2)
        wait_until(lambda: all(_config(n, name, version)["Status"] == "FAILED" for n in nodes), timeout=60,
                   what=f"FAILED on both nodes (now {[_config(n, name, version) for n in nodes]})")
        for node in nodes:
            config = _config(node, name, version)
            assert config["AllocatedProvisionedConcurrentExecutions"] == 0
            assert config["StatusReason"].startswith("FUNCTION_ERROR_INIT_FAILURE")
