"""Node membership: every node's ``NodeStatus`` in the KV bucket ``rapid-nodes``.

Each node rewrites its own key (its node id) every second and watches the bucket. A peer
whose last status arrived more than ``STALE`` seconds ago (by this node's clock, so no
clocks need agree) is taken for gone: the bucket's TTL also drops its key after ``TTL``
seconds without a write, so a node that died (``kill -9``) vanishes by itself; one that
stops deletes its key at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec

from rapid.cluster.link import Link
from rapid.cluster.status import NodeStatus

BUCKET = "rapid-nodes"
TTL = 10.0
STALE = 3.0
BEAT = 1.0


class Membership:
    def __init__(self, link: Link, node_id: str, describe: Callable[[], NodeStatus]) -> None:
        self.link = link
        self.id = node_id
        self.describe = describe
        self.peers: dict[str, tuple[NodeStatus, float]] = {}  # id -> (status, when it arrived)
        self._kv: Any = None
        self._watcher: Any = None
        self._beat: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._decode = msgspec.json.Decoder(NodeStatus).decode

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.link.run(self._open())
        await self._publish()
        self._beat = self._loop.create_task(self._beating())
        self.link.on_reconnect.append(self._watch)

    async def _open(self) -> None:
        self._kv = await self.link.js.create_key_value(bucket=BUCKET, history=1, ttl=TTL,
                                                          replicas=self.link.replicas)
        await self._watch()

    async def _watch(self) -> None:
        if self._watcher is not None:
            try:
                await self._watcher.stop()
            except Exception:  # noqa: BLE001 - gone with the old connection
                pass
        self._watcher = watcher = await self._kv.watchall()
        asyncio.get_running_loop().create_task(self._follow(watcher))

    async def _follow(self, watcher: Any) -> None:
        async for entry in watcher:
            if entry is None:
                continue
            assert self._loop is not None
            body = None if entry.operation else bytes(entry.value)
            self._loop.call_soon_threadsafe(self._arrived, entry.key, body)

    def _arrived(self, key: str, body: bytes | None) -> None:
        if key == self.id:
            return
        if body is None:
            self.peers.pop(key, None)
            return
        try:
            self.peers[key] = (self._decode(body), time.monotonic())
        except msgspec.DecodeError:
            pass

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(BEAT)
            try:
                await self._publish()
            except Exception:  # noqa: BLE001 - NATS away: the next beat tries again
                pass

    async def _publish(self) -> None:
        body = msgspec.json.encode(self.describe())
        await self.link.run(self._kv.put(self.id, body))

    def alive(self) -> list[NodeStatus]:
        now = time.monotonic()
        return [status for status, at in self.peers.values() if now - at <= STALE]

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        try:
            await self.link.run(self._leave(), 3)
        except Exception:  # noqa: BLE001 - the TTL removes the key anyway
            pass

    async def _leave(self) -> None:
        if self._watcher is not None:
            try:
                await self._watcher.stop()
            except Exception:  # noqa: BLE001
                pass
        await self._kv.delete(self.id)

    def __repr__(self) -> str:
        return f"<Membership {self.id} peers={len(self.alive())}/{len(self.peers)}>"
