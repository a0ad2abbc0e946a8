"""Sync invocations between nodes: NATS request/reply on ``rapid.node.<id>.invoke``.

Theory of operation
-------------------
``Placement.place`` is asked by the Invoke API before a sync invocation is queued on this
node (``InvokeAPI.placement``). It answers None (run it here, as a single node would)
when this node has an idle instance or room to start one; otherwise a future of the
answer, found by:

- a function with reserved concurrency: taking one more cluster-wide lease
  (``leases``) and running it here; failing that, asking the peers that have an idle
  instance (or a lease with no instance on it), best first; failing that, 429
  ``ReservedFunctionConcurrentInvocationLimitExceeded``, on whichever node it arrived;
- any other function: asking the peers with an idle instance or room, best first; if all
  refuse, running it here (where the pool throttles it as a single node does).

A forwarded invocation carries the invoker's path, headers and body, and the request id;
the peer runs it through its own Invoke API, marked ``x-rapid-forwarded`` so it is never
forwarded again (one hop), and sends back the status, headers and body unchanged (the log
tail, ``X-Amz-Function-Error`` and ``X-Amz-Executed-Version`` included). A peer that answers
429 (no room after all: its status was up to a second old) is skipped for the next one.
Payloads larger than what NATS accepts (``max_payload``) are not forwarded. The call
travels as every call between nodes does (``request_reply``).

InvokeWithResponseStream and function URLs are placed by the same rules; they reach the
peer through ``StreamRelay`` (``stream_forwarding``), whose answer streams back as it is
written (``place(..., ask=relay.asker(mode))``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec
from msgspec import Struct

from rapid.api.errors import render
from rapid.cluster import status as status_rules
from rapid.cluster.link import Link
from rapid.cluster.request_reply import HOP_BY_HOP, Responder, Unanswered, answer, passed_on, request, response, settled
from rapid.core.errors import ServiceError, throttled
from rapid.host.function import FINISHING_GRACE
from rapid.http.message import Request, Response

if TYPE_CHECKING:
    from rapid.api.invoke import InvokeAPI
    from rapid.cluster.leases import Leases
    from rapid.cluster.membership import Membership
    from rapid.cluster.stream_forwarding import StreamRelay
    from rapid.host.function import Function

FORWARDED = "x-rapid-forwarded"
FORWARD_GRACE = 10.0  # seconds past the function's timeout a forwarded invoke waits for its answer
Ask = Callable[[str, Request, str, float], Awaitable["Response | None"]]  # (peer, request, rid, timeout)
Refuse = Callable[[ServiceError, str], Response]
_HOP_BY_HOP = HOP_BY_HOP | {"host"}  # an invocation's Host is this node's, not the peer's


class Forwarded(Struct, array_like=True):
    target: str  # path and query
    headers: list[tuple[str, str]]
    body: bytes
    rid: str
    origin: str


def _failed(exc: Exception) -> bytes:
    return answer(Response.json(500, {"Type": "Service", "message": str(exc)},
                                [("x-amzn-ErrorType", "ServiceException")]))


def subject(node_id: str) -> str:
    return f"rapid.node.{node_id}.invoke"


def has_room(fn: Function) -> bool:
    """Whether ``fn``'s pool here can take an invocation now without throttling it: an idle
    instance, room to start one, or an instance that has just answered and is on its way
    back to ``/next`` (the pool waits ``FINISHING_GRACE`` for it rather than throttle)."""
    if fn.idle or len(fn.instances) < fn.limit:
        return True
    now = time.monotonic()
    return any(not inst.running and inst.bound is None and not inst.retiring
               and now - inst.answered_at < FINISHING_GRACE for inst in fn.instances.values())


async def _here(run_here: Callable[[], asyncio.Future[Response]], rid: str, refuse: Refuse = render) -> Response:
    try:
        return await run_here()
    except ServiceError as exc:  # the function went away meanwhile
        return refuse(exc, rid)


class Placement:
    def __init__(self, link: Link, node_id: str, membership: Membership, leases: Leases,
                 shared: Callable[[str], bool], reserved_of: Callable[[str], int | None]) -> None:
        self.link = link
        self.node_id = node_id
        self.membership = membership
        self.leases = leases
        self.shared = shared  # a function of the shared registry (declared ones stay local)
        self.reserved_of = reserved_of
        self.invoke_api: InvokeAPI | None = None
        self.streams: StreamRelay | None = None  # streamed invocations' way to a peer (stream_forwarding)
        self.out = 0  # forwarded to a peer and answered by it
        self.into = 0  # run here for a peer
        self.refused = 0  # throttled cluster-wide
        self.responder = Responder(link, subject(node_id), self._run, _failed)
        self._encode = msgspec.msgpack.Encoder().encode
        self._forwarded = msgspec.msgpack.Decoder(Forwarded).decode

    async def start(self, invoke_api: InvokeAPI) -> None:
        self.invoke_api = invoke_api
        await self.responder.start()

    # -- the Invoke API's question --------------------------------------------------------

    def place(self, fn: Function, req: Request, rid: str, run_here: Callable[[], asyncio.Future[Response]],
              ask: Ask | None = None, refuse: Refuse = render) -> asyncio.Future[Response] | None:
        """None: run it here; else the future of its answer. ``ask`` sends it to a peer (a
        sync Invoke by default; ``StreamRelay.asker`` for a streamed one); ``refuse``
        renders a throttle or a vanished function in the invoker's error shape."""
        ask = ask or self._ask
        if fn.retired or not self.shared(fn.name):
            return None
        forwarded = FORWARDED in req.headers
        reserved = self.reserved_of(fn.name)
        if has_room(fn):
            return None
        if reserved is None:
            if forwarded:
                return None  # one hop: the pool here throttles it if it must
            peers = status_rules.candidates(self.membership.alive(), fn.name, reserved=False)
            if not peers or not self._fits(req):
                return None
            return asyncio.ensure_future(self._elsewhere(fn, peers, req, rid, run_here, ask, refuse))
        return asyncio.ensure_future(self._reserved(fn, req, rid, run_here, forwarded, ask, refuse))

    def _fits(self, req: Request) -> bool:
        nc = self.link.nc
        return nc is not None and len(req.body) + 16384 < nc.max_payload

    async def _reserved(self, fn: Function, req: Request, rid: str,
                        run_here: Callable[[], asyncio.Future[Response]], forwarded: bool, ask: Ask,
                        refuse: Refuse) -> Response:
        try:
            got = await self.leases.acquire(fn.name)
        except Exception:  # noqa: BLE001 - NATS away: no new lease can be proven free
            got = False
        if got:
            return await _here(run_here, rid, refuse)
        if not forwarded and self._fits(req):
            # The peers whose last status shows a lease, then every other holder the lease
            # keys name (a status is up to a second old; the keys are not).
            asked: set[str] = set()
            for peer in status_rules.candidates(self.membership.alive(), fn.name, reserved=True):
                asked.add(peer.id)
                answer = await ask(peer.id, req, rid, fn.timeout)
                if answer is not None and answer.status != 429:
                    self.out += 1
                    return answer
            try:
                holders = await self.leases.holders(fn.name)
            except Exception:  # noqa: BLE001 - NATS away
                holders = []
            for peer_id in holders:
                if peer_id in asked:
                    continue
                answer = await ask(peer_id, req, rid, fn.timeout)
                if answer is not None and answer.status != 429:
                    self.out += 1
                    return answer
        self.refused += 1
        return refuse(throttled("ReservedFunctionConcurrentInvocationLimitExceeded"), rid)

    async def _elsewhere(self, fn: Function, peers: list[status_rules.NodeStatus], req: Request, rid: str,
                         run_here: Callable[[], asyncio.Future[Response]], ask: Ask, refuse: Refuse) -> Response:
        for peer in peers:
            answer = await ask(peer.id, req, rid, fn.timeout)
            if answer is not None and answer.status != 429:
                self.out += 1
                return answer
        return await _here(run_here, rid, refuse)

    async def _ask(self, peer: str, req: Request, rid: str, timeout: float) -> Response | None:
        """The peer's answer; None if it never got the invocation (gone, or NATS away: the
        next peer may run it). A peer that took it and then stopped answering within the
        function's timeout is not retried elsewhere (it may have run): 502."""
        data = self._encode(Forwarded(req.target, passed_on(req.headers, _HOP_BY_HOP), bytes(req.body), rid,
                                      self.node_id))
        try:
            return response(await request(self.link, subject(peer), data, timeout + FORWARD_GRACE))
        except Unanswered as exc:
            if not exc.delivered:
                return None  # no responder, or NATS away: not sent
            return render(ServiceError(502, "ServiceException", "The node running the invocation stopped "
                                       "answering; it may have run.", kind="Service"), rid)

    # -- a peer's invocation, run here ----------------------------------------------------

    async def _run(self, data: bytes) -> bytes:
        """On the daemon's loop: a peer's invocation through this node's Invoke API."""
        fwd = self._forwarded(data)
        req = Request("POST", fwd.target)
        req.headers = dict(fwd.headers)
        req.headers[FORWARDED] = fwd.origin
        req.body = fwd.body
        assert self.invoke_api is not None
        self.into += 1
        name = fwd.target.partition("?")[0].split("/")[3]
        from urllib.parse import unquote

        try:
            got = await settled(self.invoke_api.invoke(unquote(name), req, fwd.rid, None))
        except ServiceError as exc:  # rendered as the edge would
            got = render(exc, fwd.rid)
        return answer(got)

    async def stop(self) -> None:
        """No more invocations from peers (those under way end in ``drain``)."""
        await self.responder.stop()

    async def drain(self) -> None:
        """Once the host has shut down: the answers to peers still under way end."""
        await self.responder.drain()

    def __repr__(self) -> str:
        return f"<Placement out={self.out} in={self.into} refused={self.refused}>"
