"""Sync invocations across three rapid nodes on a real nats-server (rapid.cluster).

Reserved concurrency holds cluster-wide (leases in JetStream KV): with 2 reserved and 12
concurrent clients spread over three nodes, never more than 2 run at once and never more
than 2 instances exist; the others get 429 ReservedFunctionConcurrentInvocationLimitExceeded,
on whichever node they arrived. A node with no room forwards to one that has, and the
invoker gets the answer unchanged (log tail included).
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import threading
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.cluster import cluster, invoke, metric
from tests.control import ROLE, client, python_zip, wait_active
from tests.daemon import run_cli, unique, wait_until

pytestmark = pytest.mark.slow

SLEEPER = """import os, time
def handler(event, context):
    start = time.time()
    time.sleep(event.get("sleep", 0))
    print("slept in", os.environ["AWS_LAMBDA_LOG_STREAM_NAME"])
    return {"start": start, "end": time.time(), "stream": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]}
"""


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def test_reserved_concurrency_holds_across_nodes(tmp_path: Path) -> None:
    with cluster(tmp_path) as (_nats, nodes):
        name = f"reserved-{unique()}"
        lam = client(nodes[0])
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(SLEEPER)}, Timeout=30)
        wait_active(lam, name)
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
        for node in nodes:
            wait_until(lambda node=node: client(node).get_function_concurrency(FunctionName=name)
                       .get("ReservedConcurrentExecutions") == 2, timeout=15, what="the reservation everywhere")
        wait_until(lambda: all(metric(n, "rapid_cluster_nodes") == 3 for n in nodes), timeout=15,
                   what="every node to see the others")

        def one(i: int):  # type: ignore[no-untyped-def]
            return invoke(nodes[i % 3], name, {"sleep": 3})

        seen: list[float] = []
        done = threading.Event()

        def watch() -> None:  # the instances of all nodes, while the clients run
            while not done.is_set():
                seen.append(sum(metric(n, "rapid_cluster_instances") for n in nodes))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with concurrent.futures.ThreadPoolExecutor(12) as pool:
                replies = list(pool.map(one, range(12)))
        finally:
            done.set()
            watcher.join()
        peak_instances = max(seen)
        ok = [json.loads(r.body) for r in replies if r.status == 200]
        refused = [r for r in replies if r.status == 429]
        assert len(ok) + len(refused) == 12, [(r.status, r.body) for r in replies]
        assert ok, "no invocation ran at all"
        assert most_at_once([(o["start"], o["end"]) for o in ok]) <= 2
        assert len({o["stream"] for o in ok}) <= 2  # never more than 2 instances in all
        assert peak_instances <= 2
        for r in refused:
            assert r.headers["x-amzn-errortype"] == "TooManyRequestsException"
            assert json.loads(r.body)["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        # Every node refused some, or served some: the limit is the cluster's, not one node's.
        assert sum(metric(n, "rapid_cluster_instances") for n in nodes) <= 2
        # The reservation is whole again once they finish: two at once run (somewhere).
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            again = list(pool.map(lambda i: invoke(nodes[i], name, {"sleep": 0.5}), (1, 2)))
        assert [r.status for r in again] == [200, 200], [r.body for r in again]


def test_an_invoke_goes_to_the_node_that_has_room(tmp_path: Path) -> None:
    # Reserved concurrency 1: the one lease, and so the one instance, is node 1's; an
    # invoke arriving on node 0 is forwarded there and answered unchanged.
    with cluster(tmp_path) as (nats, nodes):
        name = f"forward-{unique()}"
        lam = client(nodes[1])
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(SLEEPER)}, Timeout=30)
        wait_active(lam, name)
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
        wait_until(lambda: all(client(n).get_function_concurrency(FunctionName=name)
                               .get("ReservedConcurrentExecutions") == 1 for n in nodes), timeout=15,
                   what="the reservation everywhere")
        warm = invoke(nodes[1], name)
        assert warm.status == 200
        stream = json.loads(warm.body)["stream"]
        wait_until(lambda: metric(nodes[0], "rapid_cluster_nodes") == 3, timeout=15, what="node 0 to see the others")

        reply = nodes[0].request("POST", f"/2015-03-31/functions/{name}/invocations", b'{"sleep": 0}',
                                 {"X-Amz-Log-Type": "Tail"})
        assert (reply.status, reply.headers.get("x-amz-function-error")) == (200, None), reply.body
        assert json.loads(reply.body)["stream"] == stream  # node 1's instance answered
        rid = reply.headers["x-amzn-requestid"]
        tail = base64.b64decode(reply.headers["x-amz-log-result"]).decode()
        assert f"REPORT RequestId: {rid}" in tail and "slept in" in tail
        assert reply.headers["x-amz-executed-version"] == "$LATEST"
        wait_until(lambda: any(f"START RequestId: {rid}" in line for line in nodes[1].lines), timeout=5,
                   what="the START line on node 1")
        assert not any(rid in line for line in nodes[0].lines)
        assert metric(nodes[0], "rapid_cluster_forwarded_out_total") == 1
        assert metric(nodes[1], "rapid_cluster_forwarded_in_total") == 1
        # `rapid cluster status` shows the three nodes, and node 1's instance and lease.
        wait_until(lambda: _status(nats)["nodes"] and all(n["alive"] for n in _status(nats)["nodes"]),
                   timeout=10, what="a status")
        status = _status(nats)
        assert sorted(n["url"] for n in status["nodes"]) == sorted(n.url for n in nodes)
        holder = next(n for n in status["nodes"] if n["url"] == nodes[1].url)
        wait_until(lambda: next(n for n in _status(nats)["nodes"] if n["url"] == nodes[1].url)["functions"]
                   .get(name) == [1, 1, 1], timeout=10, what="node 1's instance and lease in the status")
        assert holder["forwarded_in"] >= 0
        table = run_cli(["cluster", "status", "--cluster", nats.url])
        assert table.returncode == 0 and "3 node(s) alive" in table.stdout and nodes[1].url in table.stdout
        # A function error comes back as it is, too.
        failing = invoke(nodes[2], name, {"sleep": "not a number"})
        assert failing.status == 200 and failing.headers["x-amz-function-error"] == "Unhandled"
        assert json.loads(failing.body)["errorType"] == "TypeError"
        # While node 1's one instance is busy, node 2 refuses with the reserved reason.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            busy = pool.submit(invoke, nodes[1], name, {"sleep": 3})
            wait_until(lambda: metric(nodes[1], "rapid_cluster_inflight") == 1, timeout=10, what="the busy instance")
            refused = invoke(nodes[2], name)
            assert busy.result().status == 200
        assert refused.status == 429
        assert json.loads(refused.body)["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"


def _status(nats) -> dict:  # type: ignore[no-untyped-def,type-arg]
    result = run_cli(["cluster", "status", "--cluster", nats.url, "--json"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_provisioned_concurrency_is_spread_over_the_nodes(tmp_path: Path) -> None:
    with cluster(tmp_path) as (_nats, nodes):
        name = f"provisioned-{unique()}"
        lam = client(nodes[0])
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(SLEEPER)}, Timeout=30)
        wait_active(lam, name)
        version = lam.publish_version(FunctionName=name)["Version"]
        wait_until(lambda: all(metric(n, "rapid_cluster_nodes") == 3 for n in nodes), timeout=15,
                   what="every node to see the others")
        lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier=version,
                                               ProvisionedConcurrentExecutions=5)

        def total(of: list) -> float:  # type: ignore[type-arg]
            return sum(metric(n, "rapid_cluster_instances") for n in of)

        wait_until(lambda: total(nodes) == 5, timeout=30, what="5 provisioned instances in all")
        parts = sorted(metric(n, "rapid_cluster_instances") for n in nodes)
        assert parts == [1, 2, 2]
        # A node leaves: the others take its part, and the sum is the setting again.
        nodes[2].stop()
        wait_until(lambda: total(nodes[:2]) == 5, timeout=30,
                   what=f"5 instances on the two left (before: {parts}, now: "
                        f"{[metric(n, 'rapid_cluster_instances') for n in nodes[:2]]}, "
                        f"{[metric(n, 'rapid_cluster_nodes') for n in nodes[:2]]}, {nodes[0].stderr[-5:]})")
        reply = invoke(nodes[1], name, {"sleep": 0}, qualifier=version)
        assert reply.status == 200


def test_a_node_cut_off_from_nats_gives_its_leases_up(tmp_path: Path) -> None:
    # Reserved concurrency 1, its instance on node 0. NATS goes away for longer than a
    # lease lives: node 0 cannot renew, so it stops the instance at its own deadline
    # (before the server would let anyone else take the lease); when NATS is back, the
    # lease is free and another node runs the function.
    with cluster(tmp_path, n=2) as (nats, nodes):
        name = f"cutoff-{unique()}"
        lam = client(nodes[0])
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(SLEEPER)}, Timeout=30)
        wait_active(lam, name)
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
        wait_until(lambda: client(nodes[1]).get_function_concurrency(FunctionName=name)
                   .get("ReservedConcurrentExecutions") == 1, timeout=15, what="the reservation on node 1")
        assert invoke(nodes[0], name).status == 200
        assert metric(nodes[0], "rapid_cluster_leases") == 1 and metric(nodes[0], "rapid_cluster_instances") == 1
        nats.stop()
        try:
            wait_until(lambda: metric(nodes[0], "rapid_cluster_instances") == 0, timeout=20,
                       what="node 0 to stop the instance its lapsed lease covered")
            assert metric(nodes[0], "rapid_cluster_leases") == 0
            # Meanwhile the registry is read from memory, and a change is refused at once.
            assert lam.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name
            with pytest.raises(ClientError) as err:
                lam.update_function_configuration(FunctionName=name, Description="while NATS is away")
            assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            assert err.value.response["Error"]["Code"] == "ServiceException"
        finally:
            nats.start()
        wait_until(lambda: metric(nodes[1], "rapid_cluster_connected") == 1, timeout=20, what="node 1 to reconnect")
        wait_until(lambda: invoke(nodes[1], name).status == 200, timeout=30, what="the function on node 1")
        # One lease and one instance in all, wherever they are now.
        assert sum(metric(n, "rapid_cluster_leases") for n in nodes) == 1
        assert sum(metric(n, "rapid_cluster_instances") for n in nodes) == 1


def test_a_forwarded_invoke_whose_node_dies_is_answered(tmp_path: Path) -> None:
    # The one instance (reserved 1) is on node 1; node 0 forwards to it; node 1 is killed
    # while the invocation runs. Node 0 answers 502 ServiceException after the function's
    # timeout and a grace (it may have run, so it is not run again elsewhere), never hangs.
    import contextlib
    import signal

    from tests.daemon import run_server
    from tests.nats import nats_server

    with nats_server() as nats, contextlib.ExitStack() as stack:
        node0 = stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / "n0")]))
        node1 = stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / "n1")],
                                               expect_exit=None))
        name = f"dies-{unique()}"
        lam = client(node1)
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(SLEEPER)}, Timeout=3)
        wait_active(lam, name)
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
        wait_until(lambda: client(node0).get_function_concurrency(FunctionName=name)
                   .get("ReservedConcurrentExecutions") == 1, timeout=15, what="the reservation on node 0")
        assert invoke(node1, name).status == 200
        wait_until(lambda: metric(node0, "rapid_cluster_nodes") == 2, timeout=15, what="node 0 to see node 1")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(invoke, node0, name, {"sleep": 2.5})
            wait_until(lambda: metric(node1, "rapid_cluster_inflight") == 1, timeout=10, what="the forwarded invoke")
            node1.proc.send_signal(signal.SIGKILL)
            reply = pending.result(timeout=60)
        assert reply.status == 502
        assert reply.headers["x-amzn-errortype"] == "ServiceException"
