"""Three rapid nodes on one real nats-server share one registry (rapid.cluster).

Created on node 1, served by nodes 2 and 3; updated on node 3, the new code served
everywhere; RevisionId preconditions hold across nodes (JetStream orders the writes);
each node keeps the package once, by digest, in its own data dir.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.control import ROLE, client, python_zip, wait_active, wait_updated
from tests.cluster import cluster, invoke, served
from tests.daemon import unique, wait_until

pytestmark = pytest.mark.slow

HANDLER = "import os\ndef handler(event, context):\n    return {{'code': '{tag}', 'event': event}}\n"


def test_one_registry_across_three_nodes(tmp_path: Path) -> None:
    with cluster(tmp_path) as (_nats, (n1, n2, n3)):
        name = f"shared-{unique()}"
        l1, l2, l3 = client(n1), client(n2), client(n3)
        v1 = python_zip(HANDLER.format(tag="v1"))
        l1.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                           Code={"ZipFile": v1}, Timeout=10)
        wait_active(l1, name)
        # Seen by the other nodes within a second or so (KV watch); bounded wait, not timed.
        for node in (n2, n3):
            wait_until(lambda node=node: served(node, name, "v1"), timeout=15, what="v1 on another node")
        reply = invoke(n2, name, {"hello": "n2"})
        assert reply.status == 200 and json.loads(reply.body) == {"code": "v1", "event": {"hello": "n2"}}
        assert l3.get_function(FunctionName=name)["Configuration"]["State"] == "Active"

        # Updated on node 3: the new code is served everywhere.
        v2 = python_zip(HANDLER.format(tag="v2"))
        l3.update_function_code(FunctionName=name, ZipFile=v2)
        wait_updated(l3, name)
        for node in (n1, n2, n3):
            wait_until(lambda node=node: served(node, name, "v2"), timeout=15, what="v2 everywhere")
        # Each node holds each package once, by digest, in its own data dir.
        for i, digest in ((0, hashlib.sha256(v1).hexdigest()), (1, hashlib.sha256(v2).hexdigest())):
            for node in range(3):
                assert (tmp_path / f"n{node}" / "code" / "objects" / f"{digest}.zip").is_file()

        # A version and an alias made on node 2 route on node 1.
        version = l2.publish_version(FunctionName=name)["Version"]
        l2.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
        wait_until(lambda: served(n1, name, "v2", "live"), timeout=15, what="the alias on node 1")
        assert l1.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == version

        # RevisionId holds across nodes: of two updates naming the same revision, sent to
        # two nodes at once, exactly one wins; the other is refused with 412.
        wait_until(lambda: len({l.get_function(FunctionName=name)["Configuration"]["RevisionId"]
                                for l in (l1, l2, l3)}) == 1, timeout=15, what="one revision everywhere")
        rev = l1.get_function(FunctionName=name)["Configuration"]["RevisionId"]

        def update(lam, memory):  # type: ignore[no-untyped-def]
            try:
                lam.update_function_configuration(FunctionName=name, MemorySize=memory, RevisionId=rev)
                return 200
            except ClientError as err:
                return err.response["ResponseMetadata"]["HTTPStatusCode"]

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            statuses = sorted(pool.map(lambda args: update(*args), ((l1, 256), (l2, 512))))
        assert statuses == [200, 412]
        wait_until(lambda: len({l.get_function_configuration(FunctionName=name)["MemorySize"]
                                for l in (l1, l2, l3)}) == 1, timeout=15, what="the winner everywhere")
        # The loser's revision is stale on every node, however the refusal was found.
        for lam in (l1, l2, l3):
            with pytest.raises(ClientError) as err:
                lam.update_function_configuration(FunctionName=name, Timeout=7, RevisionId=rev)
            assert err.value.response["Error"]["Code"] == "PreconditionFailedException"

        # Deleted on node 1: gone everywhere.
        l1.delete_function(FunctionName=name)
        for node in (n2, n3):
            wait_until(lambda node=node: invoke(node, name).status == 404, timeout=15, what="the delete")


def test_a_cluster_that_cannot_be_joined_stops_start_up(tmp_path: Path) -> None:
    from tests.daemon import run_cli
    from tests.nats import free_port

    result = run_cli(["serve", "--cluster", f"nats://127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d")],
                     timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rapid: error: cannot join the cluster at nats://127.0.0.1:")
    bad = run_cli(["serve", "--cluster", "http://127.0.0.1:4222", "--data-dir", str(tmp_path / "d")])
    assert bad.returncode == 2 and "cluster" in bad.stderr
