"""``rapid cluster status`` reads the nodes' heartbeats while the nodes keep rewriting them.

A real nats-server; three "nodes" rewrite their ``rapid-nodes`` key as fast as they can
(a real node does it every second, three nodes' beats can meet a read at any moment) and
a fourth key is deleted, as a node that stops deletes its own. Every read must list each
live node exactly once. (Read through a KV watch up to its "caught up" marker, about one
read in eight listed one node twice and left another out.)
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from rapid.cli.cluster import _read
from rapid.cluster.membership import BUCKET, TTL
from rapid.cluster.status import NodeStatus
from tests.nats import nats_server

READS = 100


async def _reads_while_beating(url: str) -> list[list[str]]:
    import nats

    nc = await nats.connect(url)
    try:
        kv = await nc.jetstream().create_key_value(bucket=BUCKET, history=1, ttl=TTL)
        await kv.put("stopped", msgspec.json.encode(NodeStatus(id="stopped", url="http://stopped", started=0)))
        await kv.delete("stopped")
        beating = True

        async def beat(i: int) -> None:
            while beating:
                status = NodeStatus(id=f"node-{i}", url=f"http://127.0.0.1:{4000 + i}", started=time.time())
                await kv.put(status.id, msgspec.json.encode(status))
                await asyncio.sleep(0.005)

        beats = [asyncio.create_task(beat(i)) for i in range(3)]
        try:
            await asyncio.sleep(0.2)
            return [[n["url"] for n in (await _read(url))["nodes"]] for _ in range(READS)]
        finally:
            beating = False
            await asyncio.gather(*beats)
    finally:
        await nc.close()


def test_status_lists_each_node_once_while_they_beat() -> None:
    with nats_server() as nats:
        reads = asyncio.run(_reads_while_beating(nats.url))
    expected = [f"http://127.0.0.1:{4000 + i}" for i in range(3)]
    wrong = [urls for urls in reads if urls != expected]
    assert not wrong, f"{len(wrong)} of {READS} reads were wrong, e.g. {wrong[:3]}"
