"""One node at a time owns the built-in SQS queues, Kinesis streams and event source
mappings of a cluster; the others forward their API calls to it.

Theory of operation
-------------------
Ownership is the KV key ``queues`` in the bucket ``rapid-owner``, a lease that one node at
a time holds (``sole_lease``: the same rules and argument as the reserved-concurrency
leases, ``lease_rules``).

Taking it, a node rebuilds (``become``): its ``ClusterJournal`` replays the stream
``RAPID_QUEUES`` into a fresh local copy, the live queues and streams load from it, the
mappings and their checkpoints are read from the KV bucket ``rapid-mappings``, and the
pollers start: so every mapping is polled by exactly one node, the owner, invoking
through this node's normal invoke path (which forwards to other nodes when it has no
room). Only then does it answer on the subject ``rapid.queues.owner``.

Every node routes ``X-Amz-Target: AmazonSQS.*`` / ``Kinesis_20131202.*``, the SQS query
protocol and the event-source-mapping API through ``handle``: the owner serves them
itself; any other node sends the request (method, path, headers, body) over NATS
request/reply to the owner, which runs it through its own App, and returns the answer
unchanged. While no node owns the queues (a takeover: up to ``TTL`` after an owner dies,
plus the replay) a forwarded call waits up to ``WAIT_FOR_OWNER`` seconds, then gets 503.

Records that asynchronous invocations leave for a built-in queue (``arn:aws:sqs:...``
destinations) reach the owner through ``take_records``, from whichever node made them
(``rapid.events.jetstream_records``): the owner imports them itself, any other node
sends them on ``rapid.queues.records`` and hears ``ok`` only once the owner's journal
has them; anything else, and the sender tries again.

Both travel as every call between nodes does (``request_reply``).

Losing ownership (the lease lapsed, or the journal refused a change): the node stops its
pollers and its queues at once and forwards again. Messages received but not deleted
on a node that died come back after their visibility timeout (at least once); a Kinesis
batch in flight is read again from its checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import Struct

from rapid.api.errors import render
from rapid.cluster.link import Link
from rapid.cluster.request_reply import HOP_BY_HOP, MOVING, Responder, answer, passed_on, request, settled, to_owner
from rapid.cluster.sole_lease import BUCKET as BUCKET, SoleLease  # (BUCKET: for readers of the key)
from rapid.core.errors import ServiceError
from rapid.http.message import Request, Response

KEY = "queues"
SUBJECT = "rapid.queues.owner"
RECORDS = "rapid.queues.records"  # async destination records for the built-in queues, to the owner
RECORDS_TIMEOUT = 10.0  # an import is one journal commit: a silent owner is likely dead, ask again
FORWARDED = "x-rapid-queues-forwarded"
WAIT_FOR_OWNER = 20.0  # seconds a forwarded call waits for an owner during a takeover
CALL_TIMEOUT = 45.0  # a forwarded call's answer (a ReceiveMessage may wait 20 s)


class Call(Struct, array_like=True):
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


def unavailable(why: str) -> ServiceError:
    return ServiceError(503, "ServiceUnavailable", f"The built-in queues are {MOVING}: {why}; try again.",
                        kind="Service")


def _failed(exc: Exception) -> bytes:
    return answer(Response.json(500, {"__type": "ServiceException", "message": str(exc)},
                                [("x-amzn-ErrorType", "ServiceException")]))


def _stopping() -> bytes:
    return answer(render(unavailable("the owning node is stopping"), ""))


class QueueOwner(SoleLease):
    """``build(valid, on_lost)`` makes what the owner runs (an object with ``start()``,
    async ``stop()`` and the handlers), on the daemon's loop, after ``replay``."""

    key, label, what, right = KEY, "cluster queues", "the queues' lease", "the built-in queues"

    def __init__(self, link: Link, node_id: str, build: Callable[..., Any], say: Callable[[str], None]) -> None:
        super().__init__(link, node_id, say)
        self.build = build
        self.app: Any = None  # the daemon's App: forwarded calls run through it
        self.owned: Any = None  # set while this node owns and serves the queues
        self.forwarded = 0
        self.served = 0
        self.calls = Responder(link, SUBJECT, self._run, _failed, _stopping)  # while this node owns them
        self.records = Responder(link, RECORDS, self._take_sent, lambda exc: f"not taken: {exc or type(exc).__name__}".encode())
        self.records_taken = 0  # records imported here, for any node
        self._becoming: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        role = "owner" if self.owned is not None else ("taking" if self.revision is not None else "forwarding")
        return f"<QueueOwner {role} takeovers={self.takeovers} forwarded={self.forwarded} served={self.served}>"

    # -- the lease (rapid.cluster.sole_lease) ---------------------------------------------

    async def start(self, app: Any) -> None:
        self.app = app
        await self._open()

    async def _gained(self) -> None:
        # The replay can take seconds: on a task of its own, so the lease keeps being renewed.
        self._becoming = asyncio.get_running_loop().create_task(self._become())

    async def _become(self) -> None:
        try:
            owned = await self.build(self.valid, self._lost_soon)
        except Exception as exc:  # noqa: BLE001 - give it back: another node may do better
            self.say(f"warning: cluster: could not take over the built-in queues: {exc}")
            await self._give_back()
            return
        if not self.valid() or self._stopped:
            await owned.stop()
            await self._give_back()
            return
        self.owned = owned
        owned.start()
        await self.calls.start()
        await self.records.start()
        self.takeovers += 1
        self.say(f"cluster: this node owns the built-in queues, streams and mappings ({owned.describe()})")

    def _lost_soon(self, why: str) -> None:
        assert self._loop is not None
        self._loop.create_task(self.lose(why))

    def _running(self) -> bool:
        return self.owned is not None

    async def _wind_down(self) -> None:
        if self._becoming is not None and self._becoming is not asyncio.current_task():
            self._becoming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._becoming
        self._becoming = None
        for responder in (self.calls, self.records):  # no more calls; those under way end before the queues stop
            await responder.stop()
        for responder in (self.calls, self.records):
            await responder.drain()
        owned, self.owned = self.owned, None
        if owned is not None:
            await owned.stop()

    # -- serving and forwarding ----------------------------------------------------------

    def handle(self, req: Request, rid: str,
               here: Callable[[Any], Response | asyncio.Future[Response]]) -> Response | asyncio.Future[Response]:
        owned = self.owned
        if owned is not None:
            return here(owned)
        if FORWARDED in req.headers:
            return render(unavailable("this node no longer owns them"), rid)
        return asyncio.ensure_future(self._forward(req, rid))

    async def _forward(self, req: Request, rid: str) -> Response:
        headers = passed_on(req.headers, HOP_BY_HOP)
        headers.append((FORWARDED, self.node_id))
        data = msgspec.msgpack.encode(Call(req.method, req.target, headers, bytes(req.body)))

        def here() -> Any:
            if self.owned is None:
                return None
            req.headers[FORWARDED] = self.node_id  # this node took over meanwhile
            return settled(self.app(req, None))

        got, forwarded = await to_owner(self.link, SUBJECT, data, timeout=CALL_TIMEOUT, wait=WAIT_FOR_OWNER, here=here,
                                        unavailable=lambda why: render(unavailable(why), rid),
                                        nobody="no node owns them now", silent="the owning node did not answer")
        self.forwarded += forwarded
        return got

    async def _run(self, data: bytes) -> bytes:
        """On the daemon's loop: another node's call, through this node's App."""
        call = msgspec.msgpack.decode(data, type=Call)
        req = Request(call.method, call.target)
        req.headers = dict(call.headers)
        req.body = call.body
        self.served += 1
        return answer(await settled(self.app(req, None)))

    # -- records of the async destinations ------------------------------------------------

    async def take_records(self, rows: list[tuple[str, str, bytes, str, float]]) -> None:
        """(queue, message id, body, attributes JSON, sent at) rows into the queues, on the
        owner, wherever they come from; returns once the owner's journal has them, raises
        when they were not taken (the caller sends them again)."""
        owned = self.owned
        if owned is not None:
            taken = await owned.take(rows)  # (not `+= await`: that reads the count before the wait)
            self.records_taken += taken
            return
        reply = await request(self.link, RECORDS, msgspec.msgpack.encode(rows), RECORDS_TIMEOUT)
        if reply != b"ok":
            raise RuntimeError(reply.decode("utf-8", "replace"))

    async def _take_sent(self, data: bytes) -> bytes:
        """On the daemon's loop: records another node sent, imported here; ``ok`` once the
        journal has them (anything else, and the sender sends them again)."""
        rows = msgspec.msgpack.decode(data, type=list[tuple[str, str, bytes, str, float]])
        owned = self.owned
        if owned is None:
            raise RuntimeError("this node no longer owns the built-in queues")
        taken = await owned.take(rows)
        self.records_taken += taken
        return b"ok"
