"""Events of nodes that died, taken over by the living: ``JetStreamEventStore``'s other half.

Every ``ROUND`` seconds a node lists the durable consumers of ``RAPID_EVENTS``. A consumer
``ev-<id>`` whose node has not been seen alive for ``GRACE`` seconds (membership) belongs
to a dead node (or to this data dir's previous run): the node pulls from it. JetStream
hands a message to one puller at a time, and only once its holder has stopped sending
AckProgress for ``ACK_WAIT`` seconds (or gave it back), so a slow but living node keeps
its events, and two adopters never get the same message. What is pulled is held here
(AckProgress from now on), written to the working copy and put in the dispatcher's lanes
as recovered events: counted, and said on stderr, as possible duplicates. A dead node's
consumer is deleted once nothing is pending or unacknowledged on it.

The same goes for a dead node's records on their way to destinations (the consumers
``rec-<id>`` of ``RAPID_RECORDS``, ``rapid.events.jetstream_records``): a queue record is
sent to the queues' owner from here, a file or HTTP delivery is put in this node's outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rapid.cluster.link import Link
from rapid.events import jetstream_records
from rapid.events.jetstream_store import STREAM, JetStreamEventStore
from rapid.events.store import Entry

if TYPE_CHECKING:
    from rapid.cluster.membership import Membership

ROUND = 2.0
GRACE = 6.0  # seconds a node must be missing from membership before its consumer is adopted


class Adoption:
    def __init__(self, store: JetStreamEventStore, membership: Membership, offer: Callable[[list[Entry]], None],
                 say: Callable[[str], None]) -> None:
        self.store = store
        self.link = store.link
        self.membership = membership
        self.offer = offer
        self.say = say
        self.adopted = 0
        self.redelivered = 0
        self.records = 0  # records of dead nodes taken over
        self._missing: dict[str, float] = {}
        self._since = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._since = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._rounds())

    async def _rounds(self) -> None:
        while True:
            await asyncio.sleep(ROUND)
            try:
                await self._round()
            except Exception as exc:  # noqa: BLE001 - NATS away: the next round
                self.say(f"warning: cluster adoption: {exc or type(exc).__name__}")

    async def _round(self) -> None:
        now = time.monotonic()
        if now - self._since < GRACE:
            return  # this node's view of the others is not complete yet
        alive = {status.id for status in self.membership.alive()} | {self.store.node_id}
        for stream, prefix in ((STREAM, "ev-"), (jetstream_records.STREAM, "rec-")):
            infos = await self.link.run(self.link.js.consumers_info(stream))
            for info in infos:
                name = info.name or ""
                if not name.startswith(prefix):
                    continue
                node = name[len(prefix):]
                if node in alive:
                    self._missing.pop(name, None)
                    continue
                if now - self._missing.setdefault(name, now) < GRACE:
                    continue
                if prefix == "ev-":
                    got, again = await self.link.run(self._drain(node))
                    if got:
                        self.say(f"cluster: took over {got} event(s) of node {node}, gone ({again} had been handed "
                                 "to it, so may have run there: possible duplicates)")
                else:
                    got = await self.link.run(self._drain_records(node))
                    if got:
                        self.say(f"cluster: took over {got} record(s) for destinations of node {node}, gone")

    async def _drain(self, node: str) -> tuple[int, int]:
        """On the link's loop: pull what ``node``'s consumer may hand out now."""
        got = again = 0

        async def take(msg: Any) -> None:
            nonlocal got, again
            event = self.store.decode(msg.data)
            got += 1
            again += msg.metadata.num_delivered > 1
            self.adopted += 1  # counted as taken (the event may finish before this drain ends)
            self.redelivered += msg.metadata.num_delivered > 1
            await self.store.hold_adopted(event, msg, lambda entry: self.offer([entry]))

        await _emptied(self.link, await self.store.pull(node), STREAM, 512, take)
        return got, again

    async def _drain_records(self, node: str) -> int:
        """On the link's loop: hold what ``node``'s record consumer may hand out now."""
        records = self.store.records
        got = 0

        async def take(msg: Any) -> None:
            nonlocal got
            if await records.take(msg, adopted=True):
                got += 1
                self.records += 1

        await _emptied(self.link, await records.pull(node), jetstream_records.STREAM, 256, take)
        return got

    async def stop(self) -> None:
        """No more rounds: the one under way is cancelled, and waited for."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def __repr__(self) -> str:
        return f"<Adoption adopted={self.adopted} redelivered={self.redelivered} records={self.records}>"


async def _emptied(link: Link, sub: Any, stream: str, batch: int, take: Callable[[Any], Awaitable[None]]) -> None:
    """On the link's loop: each message a dead node's consumer hands out now to ``take``; the
    consumer is deleted once nothing is pending or unacknowledged on it."""
    try:
        while True:
            try:
                msgs = await sub.fetch(batch, timeout=0.5)
            except Exception:  # noqa: BLE001 - nothing (more) to hand out
                break
            for msg in msgs:
                await take(msg)
        info = await sub.consumer_info()
        if info.num_pending == 0 and info.num_ack_pending == 0:
            await link.js.delete_consumer(stream, info.name)
    finally:
        await sub.unsubscribe()
