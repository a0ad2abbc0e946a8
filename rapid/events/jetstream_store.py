"""The async queue of a cluster node: events durable in a JetStream stream, worked on here.

Theory of operation
-------------------
A ``JetStreamEventStore`` is the node's ``SQLiteStore`` (its working copy: the events this
node holds, their attempts, the records on their way to destinations, the event invoke
configs, the counters behind ``/metrics``) with the stream ``RAPID_EVENTS`` behind it,
shared by every node, as the durable truth of which events exist:

- ``enqueue`` publishes the event (its fields and payload, ``Nats-Msg-Id`` = request id,
  so a retried publish is not stored twice) to ``rapid.events.<node id>`` and waits for
  JetStream's acknowledgement before it writes the working copy: the 202 means the
  event is in JetStream. This node's durable pull consumer ``ev-<node id>`` (explicit
  acks, ``ACK_WAIT``) delivers the message back; the node holds it
  unacknowledged while the event waits or runs, and tells JetStream it is still working
  on it (AckProgress) every ``ACK_WAIT / 3`` seconds, however long the invocation takes.
- ``finish`` completes the working copy (records, dead letters, deliveries, as on a single
  node), then acknowledges the message and deletes it from the stream: the stream (limits
  retention) holds exactly the events not finished yet, which the consumer
  ``rapid-backlog``, never pulled from, counts as pending (KEDA's ``nats-jetstream``
  trigger scales on it). An event a destination
  function gets is published the same way.
- A node that dies stops sending AckProgress: after ``ACK_WAIT`` its messages are
  deliverable again, to whoever pulls from its consumer; ``rapid.cluster.adoption`` on
  the surviving nodes does, one node per dead consumer (a KV lease), and runs them as
  recovered events (counted as redelivered: possible duplicates, never losses).
- A node that stops cleanly gives its unfinished messages back at once (Nak), for the
  others to adopt; its working copy's events are dropped when it starts again (they are
  the stream's, under the old consumer), so nothing runs twice because of a restart.

Retry counts and due times live in the working copy: an event adopted after a crash
starts again from the attempt counts it was published with.

The records an event leaves for a built-in queue, a file or an HTTP endpoint go into
JetStream too before its message is acknowledged (``jetstream_records``): the queues'
owner gets the queue records from whichever node made them, and a dead node's undelivered
records are delivered by a survivor.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgspec

from rapid.cluster.link import Link, LinkError
from rapid.events.destinations import Response
from rapid.events.jetstream_records import Record, RecordStream
from rapid.events.say import say
from rapid.events.sqlite_db import connect
from rapid.events.sqlite_store import SQLiteStore
from rapid.events.store import Delivery, Done, Entry, Finish, Finished, Recovery, StoreError

STREAM = "RAPID_EVENTS"
BACKLOG = "rapid-backlog"  # a consumer nobody pulls from: its num_pending is every unfinished event
ACK_WAIT = 10.0  # seconds without AckProgress before a node's messages go to another node
CLOSE_GRACE = 1.5  # seconds a stopping node lets its publishes and acknowledgements under way finish


class Event(msgspec.Struct, array_like=True):
    """An event as it travels in the stream."""

    request_id: str
    function: str
    qualifier: str
    trace_id: str
    enqueued_at: float
    attempts: int
    errors: int
    payload: bytes


def subject(node_id: str) -> str:
    return f"rapid.events.{node_id}"


def consumer(node_id: str) -> str:
    return f"ev-{node_id}"


class JetStreamEventStore:
    def __init__(self, local: SQLiteStore, link: Link, node_id: str, ack_wait: float = ACK_WAIT) -> None:
        self.local = local
        self.link = link
        self.node_id = node_id
        self.ack_wait = ack_wait
        self.held: dict[str, Any] = {}  # request id -> its message, unacknowledged (the link's loop)
        self._ack_when_fetched: set[str] = set()
        self._finished: OrderedDict[str, None] = OrderedDict()  # recently acknowledged request ids
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loops = link.tasks()  # fetching and progressing, on the link's loop
        self._work = link.tasks()  # publishes and acknowledgements under way (the link's loop)
        self._reader_lock = threading.Lock()  # the reader: the daemon's loop reads, close() closes
        self._encode = msgspec.msgpack.Encoder().encode
        self.decode = msgspec.msgpack.Decoder(Event).decode
        self.published = 0
        self.acked = 0
        self.shared: Any = None  # the registry's JetStream store: event invoke configs for every node
        self._reader: Any = None  # a read-only connection to the working copy
        self._closed = False
        self.records = RecordStream(link, node_id, ack_wait, say)
        self.records.on_delivery = self._adopt_delivery
        self.delivery_keys: dict[int, str] = {}  # outbox row id -> its record's key (the daemon's loop)
        self.outbox_add: Callable[[list[Delivery]], None] | None = None  # the dispatcher's outbox, once it runs

    # -- life -----------------------------------------------------------------------------

    def open(self) -> Recovery:
        """The ``EventStore`` way in: open the working copy, then join the stream."""
        return self.join(self.local.open())

    def join(self, recovery: Recovery) -> Recovery:
        """The working copy is open (``recovery`` is what it held): make the stream and this
        node's consumer. The working copy's events belong to the stream (under this data
        dir's previous consumer, adopted by whichever node is alive): dropped here, so a
        restart runs nothing twice. So do its records for queues, files and HTTP endpoints:
        each is in ``RAPID_RECORDS`` already, or its event was never acknowledged (and runs
        again, making it again)."""
        try:
            self.link.call(self._open())
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"JetStream stream {STREAM}: {exc or type(exc).__name__}") from None
        db = self.local._db
        assert db is not None
        db.execute("DELETE FROM events")
        db.execute("DELETE FROM messages")
        db.execute("DELETE FROM deliveries")
        return Recovery([], [], recovery.configs, {})

    async def _open(self) -> None:
        from nats.js import api

        js = self.link.js
        config = api.StreamConfig(name=STREAM, subjects=["rapid.events.>"], retention=api.RetentionPolicy.LIMITS,
                                  storage=api.StorageType.FILE, duplicate_window=120.0,
                                  num_replicas=self.link.replicas)
        try:
            await js.add_stream(config)
        except Exception:  # noqa: BLE001 - it exists (made by another node): check it is there
            await js.stream_info(STREAM)
        try:  # never pulled from: its pending count is the cluster's async backlog (KEDA reads it)
            await js.add_consumer(STREAM, api.ConsumerConfig(
                durable_name=BACKLOG, ack_policy=api.AckPolicy.NONE, filter_subject="rapid.events.>"))
        except Exception:  # noqa: BLE001 - made by another node
            pass
        self.sub = await self.pull(self.node_id)
        await self.records.open()

    async def pull(self, node_id: str) -> Any:
        """A pull subscription on ``node_id``'s durable consumer (made if missing)."""
        return await self.link.pull_own(STREAM, subject(node_id), consumer(node_id), self.ack_wait)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.local.start(loop)
        self._loops.submit(self.link.fetching(self.sub, 512, self.hold))
        self._loops.submit(self.link.progressing(lambda: self.held, self.ack_wait))
        self.records.start(loop)

    def close(self) -> None:
        """From a worker thread (the dispatcher's close), in order: nothing more is fetched
        from the stream; the publishes and acknowledgements under way on the link's loop
        get ``CLOSE_GRACE`` seconds, then are cancelled and waited for (the records' too);
        the messages still held go back (Nak) for another node; only then are the working
        copy and its reader closed, so no thread is still using them."""
        self._loops.stop()
        self._work.stop(CLOSE_GRACE)
        self.records.close(CLOSE_GRACE)
        try:
            self.link.call(self._give_back(), timeout=5)
        except Exception:  # noqa: BLE001 - AckWait hands them over anyway
            pass
        with self._reader_lock:
            reader, self._reader = self._reader, None
            self._closed = True
            if reader is not None:
                reader.close()
        self.local.close()

    async def _give_back(self) -> None:
        held, self.held = self.held, {}
        await self.link.give_back(held)

    def _submit(self, coro: Any) -> Any:
        """Work on the link's loop, stopped in order by ``close``; None once closed (the
        event is then handed out again: its possible duplicate is counted)."""
        try:
            return self._work.submit(coro)
        except LinkError:
            return None

    # -- the link's loop: messages back from the stream -----------------------------------

    async def hold(self, msg: Any) -> None:
        rid = msg.headers.get("Nats-Msg-Id") if msg.headers else None
        if rid is None:
            await self._done_with(msg)
            return
        if rid in self._ack_when_fetched or rid in self._finished:
            # Finished before the stream delivered it (back): after a NATS restart, say.
            self._ack_when_fetched.discard(rid)
            await self._done_with(msg)
            return
        self.held[rid] = msg

    async def _publish(self, entry: Entry, payload: bytes) -> None:
        body = self._encode(Event(entry.request_id, entry.function, entry.qualifier, entry.trace_id,
                                  entry.enqueued_at, entry.attempts, entry.errors, payload))
        await self.link.js.publish(subject(self.node_id), body, headers={"Nats-Msg-Id": entry.request_id})
        self.published += 1

    async def _ack(self, rid: str) -> None:
        self._finished[rid] = None
        while len(self._finished) > 100_000:
            self._finished.popitem(last=False)
        msg = self.held.pop(rid, None)
        if msg is None:
            self._ack_when_fetched.add(rid)  # finished before the stream delivered it back
            return
        await self._done_with(msg)

    async def _done_with(self, msg: Any) -> None:
        """Acknowledge the message and delete it from the stream (limits retention: the
        stream holds exactly the unfinished events, which the backlog consumer counts)."""
        if await self.link.done_with(msg, STREAM):  # else redelivered and counted: a possible duplicate
            self.acked += 1

    # -- the EventStore interface (the daemon's loop) -------------------------------------

    def enqueue(self, entry: Entry, payload: bytes, running: bool, done: Done) -> None:
        fut = self._submit(self._publish(entry, payload))
        if fut is None:
            assert self._loop is not None
            self._loop.call_soon(done, None, StoreError("the node is stopping"))
            return

        def published(f: Any) -> None:
            error = StoreError("the node is stopping") if f.cancelled() else f.exception()
            if error is not None:
                done(None, error)
            else:
                self.local.enqueue(entry, payload, running, done)

        fut.add_done_callback(lambda f: self._on_loop(published, f))

    def _on_loop(self, fn: Callable[[Any], None], arg: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the daemon's loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(fn, arg)

    async def hold_adopted(self, event: Event, msg: Any, done: Callable[[Entry], None]) -> None:
        """On the link's loop: an event pulled from a dead node's consumer is held here now,
        then written to the working copy and handed to the lanes (``done``)."""
        self.held[event.request_id] = msg
        self._on_loop(lambda _: self._adopt(event, done), None)

    def _adopt(self, event: Event, done: Callable[[Entry], None]) -> None:
        now = time.time()
        entry = Entry(0, event.request_id, event.function, event.qualifier, event.trace_id, event.enqueued_at, now,
                      attempts=event.attempts, errors=event.errors)

        def stored(_: object, error: BaseException | None) -> None:
            if error is None:
                done(entry)

        self.local.enqueue(entry, event.payload, False, stored)

    def mark_started(self, entries: list[Entry], done: Done) -> None:
        self.local.mark_started(entries, done)

    def reschedule(self, entry: Entry, due_at: float, reason: str, response: Response | None, done: Done) -> None:
        self.local.reschedule(entry, due_at, reason, response, done)

    def finish(self, plan: Finish, done: Done) -> None:
        rid = plan.entry.request_id

        def finished(result: Finished | None, error: BaseException | None) -> None:
            if error is None:
                records = self._records_of(plan.entry.function, result) if result is not None else []
                if records:
                    assert result is not None
                    self._submit(self._publish_records(rid, records, [r[0] for r in result.records]))
                else:
                    self._submit(self._ack(rid))
                if result is not None and result.new_entries:
                    self._publish_new(result.new_entries)
            done(result, error)

        self.local.finish(plan, finished)

    def _records_of(self, function: str, result: Finished) -> list[Record]:
        out = [Record("sqs", message_id, function, queue, body, attributes, sent_at, 0.0)
               for _, queue, message_id, body, attributes, sent_at in result.records]
        for d in result.deliveries:
            key = self.delivery_keys[d.id] = f"{self.node_id}.{d.id}"
            out.append(Record("delivery", key, d.function, d.target, d.body, "", d.created_at, d.expires_at))
        return out

    async def _publish_records(self, rid: str, records: list[Record], rows: list[int]) -> None:
        """On the link's loop: the event's records into JetStream, then the event acknowledged;
        the queue records' rows in the working copy are then forgotten."""
        await self.records.publish(records)
        await self._ack(rid)
        if rows:
            self.local.forget_messages(rows, lambda _r, _e: None)

    def _publish_new(self, entries: list[Entry]) -> None:
        """Events for destination functions, made by the working copy: into the stream too."""
        with self._reader_lock:  # close() may run on a worker thread meanwhile
            if self._closed:
                return
            if self._reader is None:  # the writer thread owns the store's connection
                self._reader = connect(self.local.path, readonly=True)
            rows = [(entry, self._reader.execute("SELECT payload FROM events WHERE id = ?",
                                                 (entry.id,)).fetchone()) for entry in entries]
        for entry, row in rows:
            if row is not None:
                self._submit(self._publish(entry, bytes(row[0])))

    def release_running(self, cut: dict[str, int], done: Done) -> None:
        self.local.release_running(cut, done)

    def delivery_done(self, d: Delivery, done: Done) -> None:
        self.local.delivery_done(d, self._settled(d, done, lambda _: True))

    def delivery_failed(self, d: Delivery, drop: bool, done: Done) -> None:
        self.local.delivery_failed(d, drop, self._settled(d, done, lambda _: drop))

    def deliver_file(self, d: Delivery, done: Done) -> None:
        self.local.deliver_file(d, self._settled(d, done, lambda problem: problem is None))

    def _settled(self, d: Delivery, done: Done, over: Callable[[Any], bool]) -> Done:
        """``done``, after which the delivery's record leaves JetStream if ``over(result)``."""
        def settled(result: Any, error: BaseException | None) -> None:
            if error is None and over(result):
                key = self.delivery_keys.pop(d.id, None)
                if key is not None:
                    self.records.done(key)
            done(result, error)

        return settled

    def _adopt_delivery(self, rec: Record) -> None:
        """A dead node's file or HTTP delivery: a row in this node's outbox, due now."""
        now = time.time()
        d = Delivery(0, rec.function, rec.target, rec.body, rec.created_at, now, rec.expires_at)

        def stored(_: object, error: BaseException | None) -> None:
            if error is not None:
                say(f"cluster: could not take over a delivery to {rec.target}: {error}; handed back")
                self.records.give_back(rec.key)
                return
            self.delivery_keys[d.id] = rec.key
            if self.outbox_add is not None:
                self.outbox_add([d])

        self.local.add_delivery(d, stored)

    def put_config(self, function: str, qualifier: str, body: dict[str, Any] | None, done: Done) -> None:
        """Into the working copy, and to every node through the shared registry (kind
        ``event-config``): ``rapid.cluster.registry_sync`` puts it in force there."""
        if self.shared is not None:
            try:
                self.shared.put_blind("event-config", f"{function}/{qualifier}",
                                      None if body is None else msgspec.json.encode(body))
            except Exception as exc:  # noqa: BLE001 - NATS away: refused, as a failed write would be
                done(None, exc)
                return
        self.local.put_config(function, qualifier, body, done)

    def snapshot(self, done: Done) -> None:
        self.local.snapshot(done)

    @property
    def idle(self) -> bool:
        return self.local.idle

    def __repr__(self) -> str:
        return (f"<JetStreamEventStore {STREAM} node={self.node_id} held={len(self.held)} "
                f"published={self.published} acked={self.acked} {self.records!r}>")
