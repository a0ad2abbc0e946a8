"""What the owner of a cluster's built-in queues runs, and how every node routes to it.

``OwnedQueues`` is the single-node set (live queues, their SQS JSON and query APIs, the
Kinesis API, the mapping store and its pollers, the mapping API) built on a
``ClusterJournal`` replayed from JetStream and on the KV bucket ``rapid-mappings`` (event
source mappings, Kinesis checkpoints, mapping counters). ``route`` puts the
``QueueOwner``'s handlers where the daemon would put those APIs, so the same request on
any node reaches the owner's objects.

``take`` imports the records of the async destinations (``QueueOwner.take_records``)
under their message ids. An id imported in the last ``DEDUP_WINDOW`` seconds is skipped
(kept in ``sqs_imported``, journaled with the message, so a new owner knows them too): a
record sent again because its sender died before hearing ``ok``, or because the answer
was lost, lands once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from rapid.api.mappings import BASE, MappingsAPI
from rapid.cluster.queue_journal import ClusterJournal
from rapid.cluster.queue_owner import QueueOwner
from rapid.queues.sqs_api import SqsAPI
from rapid.queues.sqs_live import LiveQueues
from rapid.queues.sqs_query import SqsQueryAPI, is_query
from rapid.registry.jetstream_store import JetStreamRegistryStore
from rapid.registry.mappings import MappingStore
from rapid.core.errors import ServiceError
from rapid.core.naming import Target
from rapid.sources import metrics as esm_metrics
from rapid.sources.invoker import Invoker, Result
from rapid.sources.pollers import Pollers
from rapid.streams.kinesis_api import KinesisAPI

MAPPINGS_BUCKET = "rapid-mappings"
DEDUP_WINDOW = 600.0  # seconds an imported record's id is remembered (a redelivery comes within ~30 s)


LEASE_RETRY = 0.5  # seconds between tries for a reserved function's lease, all being held elsewhere


class LeasedInvoker(Invoker):
    """The pollers' invoker on the owner: a function with reserved concurrency runs here
    only under a cluster-wide lease (``rapid.cluster.leases``), so before a batch finds no
    room here it takes one more lease, waiting while all of them are held elsewhere."""

    def __init__(self, host: Any, leases: Any) -> None:
        super().__init__(host)
        self.leases = leases

    async def __call__(self, name: str, qualifier: str | None, payload: bytes) -> Result:
        from rapid.cluster.forwarding import has_room

        while self.leases is not None and self.leases.reserved_of(name) is not None and not self.host.stopping:
            try:
                fn = self.host.resolve(Target(name, qualifier))
            except ServiceError:
                break  # the base invoker says why
            if has_room(fn) or await self.leases.acquire(name):
                break
            await asyncio.sleep(LEASE_RETRY)
        return await super().__call__(name, qualifier, payload)


class OwnedQueues:
    def __init__(self, journal: ClusterJournal, kv: JetStreamRegistryStore, ctx: Any, events: Any,
                 say: Callable[[str], None], account: str, leases: Any = None) -> None:
        host = ctx.host
        self.journal, self.kv = journal, kv
        self.queues = LiveQueues(journal, host.region, account)
        self.sqs_api = SqsAPI(self.queues)
        self.query_api = SqsQueryAPI(self.sqs_api)
        self.streams = KinesisAPI(journal, host.region, account)
        self.mappings = MappingStore(kv)
        self.mappings.load()
        self.pollers = Pollers(self.mappings, host, ctx.registry, self.queues, self.streams, say, events)
        self.pollers.invoker = LeasedInvoker(host, leases)  # before any poller is made
        self.mappings_api = MappingsAPI(ctx, self.pollers)
        now = time.monotonic()  # ids imported under an earlier owner: remembered from now
        self.taken: OrderedDict[str, float] = OrderedDict(
            (row[0], now) for row in journal.load("SELECT id FROM sqs_imported"))

    async def take(self, rows: list[tuple[str, str, bytes, str, float]]) -> int:
        """Import records (queue, message id, body, attributes JSON, sent at) as messages;
        returns once the journal has them, with how many were new."""
        new = 0
        service, now, seen = self.queues.service, time.time(), time.monotonic()
        for queue, message_id, body, attributes, sent_at in rows:
            q = service.queues.get(queue)
            if message_id in self.taken or (q is not None and message_id in q.messages):
                continue
            service.deliver(queue, message_id, body.decode("utf-8", "replace"),
                            json.loads(attributes) if attributes else {}, sent_at, now)
            service.changes.append(("imported", message_id))
            self.taken[message_id] = seen
            new += 1
        old = []
        while self.taken and seen - next(iter(self.taken.values())) > DEDUP_WINDOW:
            old.append(self.taken.popitem(last=False)[0])
        if old:
            self.journal.submit([("DELETE FROM sqs_imported WHERE id = ?", (i,)) for i in old], lambda exc: None)
        await self.queues.resolve(self.queues.create_future(), None)
        return new

    def describe(self) -> str:
        return (f"{len(self.queues.service.queues)} queues, {len(self.streams.service.streams)} streams, "
                f"{len(self.mappings.mappings)} mappings, {self.journal.replayed} journal messages replayed")

    def start(self) -> None:
        self.journal.start(asyncio.get_running_loop())
        self.pollers.start()

    async def stop(self) -> None:
        await self.pollers.stop()  # batches cut short come back after their visibility timeout
        self.queues.close()
        await asyncio.to_thread(self.journal.close)
        self.kv.close()
        if self.kv._rewatch in self.journal.link.on_reconnect:
            self.journal.link.on_reconnect.remove(self.kv._rewatch)

    def __repr__(self) -> str:
        return f"<OwnedQueues {self.journal!r} {self.mappings!r} {self.pollers!r}>"


async def _ended(fut: asyncio.Future[Any]) -> None:
    """Wait until ``fut`` is done, whatever it raises, even if this task is cancelled again."""
    while not fut.done():
        with contextlib.suppress(BaseException):
            await asyncio.shield(fut)
    if not fut.cancelled():
        fut.exception()  # retrieved: its failure is the replay's, already told by what the caller raises


def owner_for(node: Any, ctx: Any, events: Any, data_dir: str, account: str, say: Callable[[str], None]) -> QueueOwner:
    link = node.link

    async def build(valid: Callable[[], bool], on_lost: Callable[[str], None]) -> OwnedQueues:
        journal = ClusterJournal(data_dir, link, valid, on_lost)
        replaying = asyncio.ensure_future(asyncio.to_thread(journal.replay))
        try:
            await asyncio.shield(replaying)
            kv = JetStreamRegistryStore(link, MAPPINGS_BUCKET)
            kv.open()
            return OwnedQueues(journal, kv, ctx, events, say, account, node.leases)
        except BaseException:
            # Cancelled (the node stops, or lost the lease) while the worker thread replays:
            # it stops at its next wait, and the database is closed only once it is done with it.
            journal.stop_replay()
            await _ended(replaying)
            await asyncio.to_thread(journal.close)
            raise

    owner = QueueOwner(link, node.id, build, say)
    if node.event_store is not None:  # every node's destination records for the queues reach the owner
        node.event_store.records.sink = lambda records: owner.take_records(
            [(r.target, r.key, r.body, r.attributes, r.created_at) for r in records])
    return owner


def route(owner: QueueOwner, app: Any) -> None:
    """The SQS, Kinesis and mapping APIs of this node, served by the queues' owner."""
    app.targets["AmazonSQS"] = lambda req, rid: owner.handle(req, rid, lambda o: o.sqs_api(req, rid))
    app.targets["Kinesis_20131202"] = lambda req, rid: owner.handle(req, rid, lambda o: o.streams(req, rid))
    app.query_protocol = (is_query, lambda req, rid: owner.handle(req, rid, lambda o: o.query_api(req, rid)))

    def mapping(name: str) -> Callable[..., Any]:
        return lambda req, params, rid: owner.handle(
            req, rid, lambda o: getattr(o.mappings_api, name)(req, params, rid))

    router = app.router
    router.add("POST", BASE, mapping("create"))
    router.add("GET", BASE, mapping("list"))
    router.add("GET", BASE + "/{uuid}", mapping("get"))
    router.add("PUT", BASE + "/{uuid}", mapping("update"))
    router.add("DELETE", BASE + "/{uuid}", mapping("delete"))
    app.more_metrics.append(lambda: metrics(owner))


def metrics(owner: QueueOwner) -> str:
    """Prometheus text: whether this node owns the queues, its takeovers and forwards, and,
    on the owner, the mappings' figures (``rapid.sources.metrics``)."""
    owned = owner.owned
    text = ("# HELP rapid_cluster_queues_owner 1 on the node that owns the built-in queues, streams and mappings\n"
            "# TYPE rapid_cluster_queues_owner gauge\n"
            f"rapid_cluster_queues_owner {1 if owned is not None else 0}\n"
            "# TYPE rapid_cluster_queues_takeovers_total counter\n"
            f"rapid_cluster_queues_takeovers_total {owner.takeovers}\n"
            "# TYPE rapid_cluster_queues_forwarded_total counter\n"
            f"rapid_cluster_queues_forwarded_total {owner.forwarded}\n"
            "# TYPE rapid_cluster_queues_served_total counter\n"
            f"rapid_cluster_queues_served_total {owner.served}\n"
            "# HELP rapid_cluster_queues_records_taken_total Async destination records imported into the built-in "
            "queues on this node (as their owner), from any node\n"
            "# TYPE rapid_cluster_queues_records_taken_total counter\n"
            f"rapid_cluster_queues_records_taken_total {owner.records_taken}\n")
    if owned is not None:
        text += esm_metrics.render(owned.mappings.mappings, owned.pollers.stats)
    return text
