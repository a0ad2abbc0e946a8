"""A right that one node at a time holds: a key in the KV bucket ``rapid-owner``.

Theory of operation
-------------------
The key is a lease with the rules of every lease here (``lease_rules``): taken with a KV
*create* (refused while another node's value lives), renewed every ``RENEW`` seconds with
an update conditioned on the revision last written, and counted valid by its holder only
until ``MARGIN`` before the server could expire it (``TTL`` after the last write). So two
nodes never both count it valid, and a node that dies (``kill -9``) loses it within
``TTL`` seconds, when another node's next round takes it. A holder that stops gives it
back at once (a conditioned delete), so another node need not wait for the expiry.

``SoleLease`` runs that loop and nothing else. What holding the right means is the
subclass's: ``_gained`` once the key is this node's (the queues' owner rebuilds its
queues, the control owner starts running the autoscaler), ``_wind_down`` when it is not
any more (``lose``) or the node stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from rapid.cluster import lease_rules
from rapid.cluster.link import Link

BUCKET = "rapid-owner"


class SoleLease:
    key = ""  # the KV key, one per right
    label = ""  # in warnings ("warning: cluster queues: ...")
    what = ""  # the lease, in messages ("the queues' lease was taken by another node")
    right = ""  # what it is for, in messages ("cluster: gave up the built-in queues: ...")

    def __init__(self, link: Link, node_id: str, say: Callable[[str], None]) -> None:
        self.link = link
        self.node_id = node_id
        self.say = say
        self.revision: int | None = None  # of this node's last successful write, while held
        self.sent = 0.0  # this node's monotonic clock when it sent that write
        self.takeovers = 0
        self._kv: Any = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    async def _open(self) -> None:
        """Join in: the bucket, a first round, then a round every ``RENEW`` seconds."""
        self._loop = asyncio.get_running_loop()
        self._kv = await self.link.run(self.link.js.create_key_value(
            bucket=BUCKET, history=1, ttl=lease_rules.TTL, replicas=self.link.replicas))
        await self._round()
        self._task = self._loop.create_task(self._tending())

    def valid(self) -> bool:
        """The lease is this node's by its own clock (from any thread)."""
        return self.revision is not None and time.monotonic() < self.sent + lease_rules.TTL - lease_rules.MARGIN

    async def _tending(self) -> None:
        while not self._stopped:
            await asyncio.sleep(lease_rules.RENEW)
            try:
                await self._round()
            except Exception as exc:  # noqa: BLE001 - next round
                self.say(f"warning: {self.label}: {exc}")

    async def _round(self) -> None:
        from nats.js.errors import KeyWrongLastSequenceError

        sent = time.monotonic()
        if self.revision is None:
            try:
                rev = await self.link.run(self._kv.create(self.key, self.node_id.encode()), lease_rules.RENEW)
            except KeyWrongLastSequenceError:
                return  # another node holds it
            except Exception:  # noqa: BLE001 - NATS away: next round
                return
            self.revision, self.sent = int(rev), sent
            await self._gained()
            return
        try:
            rev = await self.link.run(self._kv.update(self.key, self.node_id.encode(), last=self.revision),
                                      lease_rules.RENEW)
            self.revision, self.sent = int(rev), sent
        except KeyWrongLastSequenceError:
            await self.lose(f"{self.what} was taken by another node")
        except Exception:  # noqa: BLE001 - NATS away: the deadline decides
            if not self.valid():
                await self.lose(f"{self.what} could not be renewed in time")

    async def _gained(self) -> None:
        """The key is this node's now: start what the right is for."""

    def _running(self) -> bool:
        """What the right is for still runs here (it may outlive ``revision`` briefly)."""
        return False

    async def _wind_down(self) -> None:
        """Stop what the right is for (``valid`` is already false)."""

    async def lose(self, why: str) -> None:
        """The key is not this node's any more."""
        if self.revision is None and not self._running():
            return
        self.say(f"cluster: gave up {self.right}: {why}")
        await self._give_back()

    async def _give_back(self) -> None:
        """``valid`` turns false at once; what the right runs stops; then the key is deleted if
        it still holds this node's last write (so another node takes it without waiting for
        the expiry); a key already taken or expired is left alone."""
        revision, self.revision = self.revision, None
        await self._wind_down()
        if revision is not None:
            headers = {"KV-Operation": "DEL", "Nats-Expected-Last-Subject-Sequence": str(revision)}
            with contextlib.suppress(Exception):
                await self.link.run(self.link.js.publish(f"$KV.{BUCKET}.{self.key}", b"", headers=headers), 2)

    async def stop(self) -> None:
        """Stopping: no more rounds, and the right goes back at once."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._give_back()
