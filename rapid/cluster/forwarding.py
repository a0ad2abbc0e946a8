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
Payloads larger than what NATS accepts (``max_payload``) are not forwarded.

InvokeWithResponseStream and function URLs are placed by the same rules; they reach the
peer through ``StreamRelay`` (``stream_forwarding``), whose answer streams back as it is
written (``place(..., ask=relay.asker(mode))``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import Struct

from rapid.api.errors import render
from rapid.cluster import status as status_rules
from rapid.cluster.link import Link
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
_HOP_BY_HOP = frozenset({"content-length", "connection", "host", "transfer-encoding", "keep-alive", "expect"})


class Forwarded(Struct, array_like=True):
    target: str  # path and query
    headers: list[tuple[str, str]]
    body: bytes
    rid: str
    origin: str


class Answer(Struct, array_like=True):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


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
        self._sub: Any = None
        self._serving: set[asyncio.Task[None]] = set()  # answers being made (the link's loop)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._encode = msgspec.msgpack.Encoder().encode
        self._forwarded = msgspec.msgpack.Decoder(Forwarded).decode
        self._answer = msgspec.msgpack.Decoder(Answer).decode

    async def start(self, invoke_api: InvokeAPI) -> None:
        self.invoke_api = invoke_api
        self._loop = asyncio.get_running_loop()
        self._sub = await self.link.run(self.link.nc.subscribe(subject(self.node_id), cb=self._serve))

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
        from nats.errors import NoRespondersError, TimeoutError as NatsTimeout

        headers = [(k, v) for k, v in req.headers.items() if k not in _HOP_BY_HOP]
        data = self._encode(Forwarded(req.target, headers, bytes(req.body), rid, self.node_id))
        try:
            msg = await self.link.run(self.link.nc.request(subject(peer), data, timeout=timeout + FORWARD_GRACE))
        except NoRespondersError:
            return None
        except NatsTimeout:
            return render(ServiceError(502, "ServiceException", "The node running the invocation stopped "
                                       "answering; it may have run.", kind="Service"), rid)
        except Exception:  # noqa: BLE001 - NATS away: not sent
            return None
        answer = self._answer(msg.data)
        return Response(answer.status, answer.body, [(k, v) for k, v in answer.headers])

    # -- a peer's invocation, run here ----------------------------------------------------

    async def _serve(self, msg: Any) -> None:
        """On the link's loop: each invocation on a task of its own (nats-py waits for a
        subscription's callback before it hands over the next message)."""
        task = asyncio.get_running_loop().create_task(self._respond(msg))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _respond(self, msg: Any) -> None:
        """On the link's loop: run the invocation on the daemon's loop, answer with it."""
        assert self._loop is not None
        try:
            answer = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._run(msg.data), self._loop))
        except Exception as exc:  # noqa: BLE001 - the invoker must get an answer
            answer = self._encode(Answer(500, [("x-amzn-ErrorType", "ServiceException")],
                                         msgspec.json.encode({"Type": "Service", "message": str(exc)})))
        await msg.respond(answer)

    async def _run(self, data: bytes) -> bytes:
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
            result = self.invoke_api.invoke(unquote(name), req, fwd.rid, None)
            response = await result if isinstance(result, asyncio.Future) else result
        except ServiceError as exc:  # rendered as the edge would
            response = render(exc, fwd.rid)
        return self._encode(Answer(response.status, list(response.headers), bytes(response.body)))

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self.link.run(self._sub.unsubscribe())
            except Exception:  # noqa: BLE001
                pass

    def __repr__(self) -> str:
        return f"<Placement out={self.out} in={self.into} refused={self.refused}>"
