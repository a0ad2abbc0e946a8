"""Records on their way to destinations, in a cluster: durable in the JetStream stream
``RAPID_RECORDS`` until delivered, taken over by a survivor when their node dies.

Theory of operation
-------------------
On one node a finished event's records wait in ``events.db``: a built-in queue's in the
table ``messages`` (imported by ``rapid.queues.store``), a file or HTTP destination's in
the outbox ``deliveries``. In a cluster the queues live on one node (their owner,
``rapid.cluster.queue_owner``) and a node's disk may go with the node, so every such
record goes into JetStream before the event that made it is acknowledged
(``JetStreamEventStore.finish``):

- ``publish`` puts it on ``rapid.records.<node id>`` (``Nats-Msg-Id`` is the record's key,
  so a publish tried again after a lost acknowledgement is stored once), retrying until
  JetStream has it; only then is the event acknowledged. A node that dies between its
  finishing transaction and that acknowledgement has its event run again by a survivor
  (its records made again: a possible duplicate, never a loss).
- The node's durable consumer ``rec-<node id>`` hands each record back; the node holds it
  (AckProgress every ``ack_wait / 3`` s) until it is delivered, then acknowledges and
  deletes it (``done``):

  - a queue record is handed to ``sink`` (the queues' owner: a local call on the owner,
    NATS request/reply elsewhere), which imports it under its message id and answers once
    its journal has it; one the owner did not take (a takeover under way, NATS away) is
    sent again ``RETRY`` s later, and the owner skips an id it has already imported;
  - a file or HTTP delivery is worked on by the dispatcher's outbox from its row in
    ``deliveries`` (the working copy: tries, next due time), exactly as on one node; it is
    done when the outbox delivered or dropped it.

- A node that dies stops sending AckProgress: after AckWait ``rapid.cluster.adoption`` on
  a survivor pulls the dead node's consumer and hands each message to ``take`` with
  ``adopted=True``: queue records go to the owner from the survivor, a delivery gets a
  row in the survivor's outbox (``on_delivery``; its tries start again).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from rapid.cluster.link import Link, LinkError

STREAM = "RAPID_RECORDS"
RETRY = 0.5  # seconds before a publish or a send to the owner is tried again
SEND_BATCH = 256  # queue records per call to the owner
SEND_BYTES = 256 * 1024  # and at most this many bytes of bodies per call


class Record(msgspec.Struct, array_like=True):
    """A record as it travels in the stream."""

    kind: str  # "sqs": for a built-in queue; "delivery": for a file or HTTP destination
    key: str  # unique: the queue message's id, or "<node id>.<outbox row id>"
    function: str  # whose event made it
    target: str  # the queue's name, or the destination as configured
    body: bytes
    attributes: str  # a queue record's MessageAttributes (JSON); "" otherwise
    created_at: float
    expires_at: float  # a delivery is dropped once a retry would be due after this


def subject(node_id: str) -> str:
    return f"rapid.records.{node_id}"


def consumer(node_id: str) -> str:
    return f"rec-{node_id}"


class RecordStream:
    def __init__(self, link: Link, node_id: str, ack_wait: float, say: Callable[[str], None]) -> None:
        self.link = link
        self.node_id = node_id
        self.ack_wait = ack_wait
        self.say = say
        self.held: dict[str, Any] = {}  # key -> its message, unacknowledged (the link's loop)
        self._ack_when_fetched: set[str] = set()
        self._finished: OrderedDict[str, None] = OrderedDict()
        # Set by the daemon: the queues' owner takes queue records (a coroutine on the daemon's
        # loop that raises when they were not taken); an adopted delivery goes to the outbox.
        self.sink: Callable[[list[Record]], Awaitable[None]] | None = None
        self.on_delivery: Callable[[Record], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._to_send: dict[str, Record] = {}  # the daemon's loop: queue records not yet taken
        self._wake: asyncio.Event | None = None
        self._sending_task: asyncio.Task[None] | None = None  # the daemon's loop
        self._loops = link.tasks()  # fetching and progressing, on the link's loop
        self.work = link.tasks()  # publishes, acknowledgements, give-backs (the link's loop)
        self._encode = msgspec.msgpack.Encoder().encode
        self.decode = msgspec.msgpack.Decoder(Record).decode
        self.sub: Any = None
        self.published = 0
        self.delivered = 0  # acknowledged and deleted from the stream
        self.adopted = 0
        self._complained = False

    def __repr__(self) -> str:
        return (f"<RecordStream {STREAM} node={self.node_id} held={len(self.held)} to_send={len(self._to_send)} "
                f"published={self.published} delivered={self.delivered} adopted={self.adopted}>")

    # -- life -----------------------------------------------------------------------------

    async def open(self) -> None:
        """On the link's loop: the stream (made by the first node) and this node's consumer."""
        from nats.js import api

        config = api.StreamConfig(name=STREAM, subjects=["rapid.records.>"], retention=api.RetentionPolicy.LIMITS,
                                  storage=api.StorageType.FILE, duplicate_window=120.0,
                                  num_replicas=self.link.replicas)
        try:
            await self.link.js.add_stream(config)
        except Exception:  # noqa: BLE001 - made by another node: check it is there
            await self.link.js.stream_info(STREAM)
        self.sub = await self.pull(self.node_id)

    async def pull(self, node_id: str) -> Any:
        """A pull subscription on ``node_id``'s durable consumer (made if missing)."""
        return await self.link.pull_own(STREAM, subject(node_id), consumer(node_id), self.ack_wait)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._wake = asyncio.Event()
        self._loops.submit(self.link.fetching(self.sub, 256, lambda msg: self.take(msg, adopted=False)))
        self._loops.submit(self.link.progressing(lambda: self.held, self.ack_wait))
        self._sending_task = loop.create_task(self._sending())

    def close(self, grace: float = 0.0) -> None:
        """From any thread but the link's, in order: nothing more is fetched; the publishes
        and acknowledgements under way get ``grace`` seconds, then are cancelled and waited
        for; the held records go back (Nak) for another node."""
        task = self._sending_task
        if task is not None and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the daemon's loop closed meanwhile
                self._loop.call_soon_threadsafe(task.cancel)
        self._loops.stop()
        self.work.stop(grace)
        try:
            self.link.call(self._give_back(), timeout=5)
        except Exception:  # noqa: BLE001 - AckWait hands them over anyway
            pass

    async def _give_back(self) -> None:
        held, self.held = self.held, {}
        await self.link.give_back(held)

    # -- publishing (the link's loop) -----------------------------------------------------

    async def publish(self, records: list[Record]) -> None:
        """Each record into the stream, tried again until JetStream has it."""
        limit = int(getattr(self.link.nc, "max_payload", 1048576) or 1048576) - 1024
        for rec in records:
            data = self._encode(rec)
            if len(data) > limit:
                self.say(f"destination {rec.target} for {rec.function}: a record of {len(data)} bytes is over "
                         f"NATS's max_payload ({limit + 1024}); record dropped")
                continue
            while True:
                try:
                    await self.link.js.publish(subject(self.node_id), data, headers={"Nats-Msg-Id": rec.key})
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - NATS away: again, the same id (stored once)
                    await asyncio.sleep(RETRY)
            self.published += 1

    # -- records back from the stream (the link's loop) -----------------------------------

    async def take(self, msg: Any, adopted: bool) -> bool:
        """Hold a record handed out by a consumer (this node's, or a dead node's when
        ``adopted``) until it is delivered; False when it was done with already."""
        try:
            rec = self.decode(msg.data)
        except msgspec.DecodeError:
            await self._done_with(msg)
            return False
        key = rec.key
        if key in self._ack_when_fetched or key in self._finished:
            self._ack_when_fetched.discard(key)  # delivered before the stream handed it (back)
            await self._done_with(msg)
            return False
        known = key in self.held
        self.held[key] = msg  # handed out again (after a NATS outage): the newer message is the one to ack
        if known:
            return True
        if adopted:
            self.adopted += 1
        if rec.kind == "sqs" or adopted:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._queued, rec)
        return True

    async def ack(self, keys: list[str]) -> None:
        for key in keys:
            self._finished[key] = None
            while len(self._finished) > 100_000:
                self._finished.popitem(last=False)
            msg = self.held.pop(key, None)
            if msg is None:
                self._ack_when_fetched.add(key)
                continue
            await self._done_with(msg)

    async def _done_with(self, msg: Any) -> None:
        if await self.link.done_with(msg, STREAM):
            self.delivered += 1

    def done(self, key: str) -> None:
        """From any thread: the record ``key`` was delivered (or dropped for good)."""
        self._submit(self.ack([key]))

    def _submit(self, coro: Any) -> None:
        """Work on the link's loop, stopped in order by ``close``; once closed: not done
        here (what it would have acknowledged is handed out again, skipped by its key)."""
        with contextlib.suppress(LinkError):
            self.work.submit(coro)

    # -- the daemon's loop: queue records to the owner, adopted deliveries to the outbox ----

    def _queued(self, rec: Record) -> None:
        if rec.kind == "sqs":
            self._to_send[rec.key] = rec
            assert self._wake is not None
            self._wake.set()
        elif self.on_delivery is not None:
            self.on_delivery(rec)
        else:  # nobody delivers here (cannot happen once the daemon runs): the next adopter will
            self.give_back(rec.key)

    def give_back(self, key: str) -> None:
        """From any thread: this node will not deliver ``key``: handed out again (Nak)."""
        self._submit(self._nak(key))

    async def _nak(self, key: str) -> None:
        msg = self.held.pop(key, None)
        if msg is not None:
            try:
                await msg.nak()
            except Exception:  # noqa: BLE001
                pass

    async def _sending(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._to_send:
                batch: list[Record] = []
                size = 0
                for rec in self._to_send.values():
                    if batch and (len(batch) >= SEND_BATCH or size + len(rec.body) > SEND_BYTES):
                        break
                    batch.append(rec)
                    size += len(rec.body)
                if not await self._send(batch):
                    await asyncio.sleep(RETRY)
                    continue
                for rec in batch:
                    self._to_send.pop(rec.key, None)
                self._submit(self.ack([rec.key for rec in batch]))

    async def _send(self, batch: list[Record]) -> bool:
        if self.sink is None:
            return False
        try:
            await self.sink(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - not taken: sent again
            if not self._complained:
                self._complained = True
                self.say(f"cluster: {len(batch)} record(s) for the built-in queues wait for their owner: "
                         f"{exc or type(exc).__name__}; trying again")
            return False
        self._complained = False
        return True

    @property
    def waiting(self) -> int:
        """Queue records held here that the owner has not taken yet."""
        return len(self._to_send)
