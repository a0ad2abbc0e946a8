"""Calls between nodes by NATS request/reply: the one way every forwarded call travels (a
sync Invoke sent to a peer, a streamed one, a call to the queues' owner or to the control
owner); each part keeps only what its calls mean.

Theory of operation
-------------------
The callee: a ``Responder`` subscribes to a subject on the link's loop. Each request gets a
task of its own there (nats-py waits for a subscription's callback before it hands over
the next message, so one long call, a ReceiveMessage waiting 20 s, would hold every other
behind it). The answer is made on the daemon's loop by ``make(data) -> bytes`` (the part's
own: run the call through its App, its Invoke API...) and sent back; if ``make`` fails, the
caller is answered ``failed(exc)``, so a caller always hears something. Stopping is two
steps: ``stop`` unsubscribes (no new calls arrive here; a caller finds another node, or
no responder), ``drain`` lets the answers under way finish for a grace period, then
cancels them, each answering ``stopping()`` at once rather than leaving its caller to wait
for its timeout, and returns once all have ended (nothing of them still runs on the
link's loop).

The caller: ``request`` sends and waits; whatever went wrong is one exception,
``Unanswered``, which says whether the callee may have got the call (``delivered``: it
stopped answering within the timeout, so the call may have run) or surely did not (no
responder, or NATS away): that decides whether a caller may try it elsewhere.

``to_owner`` is a call to the one node that holds a right (``sole_lease``: the queues' or
the control owner). While no node answers (a takeover), or the one that answers replies
503 "... moving to another node ..." (it was losing the right), it asks again every
``RETRY`` seconds for up to ``wait`` seconds, then answers 503; if this node took the
right over meanwhile, it runs the call itself (``here``).

``Answer`` is the reply of every call answered by an HTTP response: status, headers, body
(the same msgpack array for each of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgspec
from msgspec import Struct

from rapid.cluster.link import Link
from rapid.http.message import Response

RETRY = 0.25  # seconds between two asks of a right's holder during a takeover
MOVING = "moving to another node"  # in a 503 of a node giving a right up: the caller asks again
DRAIN_GRACE = 1.0  # seconds the answers under way get once a right is given up
# Request headers that are the connection's own, not the call's.
HOP_BY_HOP = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive", "expect"})


class Answer(Struct, array_like=True):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


_encode = msgspec.msgpack.Encoder().encode
_decode_answer = msgspec.msgpack.Decoder(Answer).decode


def answer(response: Response) -> bytes:
    """A response, as the reply to a call."""
    return _encode(Answer(response.status, list(response.headers), bytes(response.body)))


def response(data: bytes) -> Response:
    """The reply to a call, as the response it carries."""
    got = _decode_answer(data)
    return Response(got.status, got.body, [(k, v) for k, v in got.headers])


def passed_on(headers: dict[str, str], hop_by_hop: frozenset[str]) -> list[tuple[str, str]]:
    """The request headers a call carries: all but the connection's own."""
    return [(k, v) for k, v in headers.items() if k not in hop_by_hop]


async def settled(result: Response | asyncio.Future[Response]) -> Response:
    """An App's or an API's result (a response, or the future of one), awaited."""
    return await result if isinstance(result, asyncio.Future) else result


class Unanswered(Exception):
    """No answer came. ``delivered``: the callee got the call and did not answer in time (it
    may have run); otherwise it surely did not run (``nobody``: no node listens now, or
    NATS was away)."""

    def __init__(self, why: str, *, delivered: bool = False, nobody: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.delivered = delivered
        self.nobody = nobody


async def request(link: Link, subject: str, data: bytes, timeout: float) -> bytes:
    """From the daemon's loop: ``data`` to whoever listens on ``subject``; its reply."""
    from nats.errors import NoRespondersError, TimeoutError as NatsTimeout

    try:
        msg = await link.run(link.nc.request(subject, data, timeout=timeout))
    except NoRespondersError:
        raise Unanswered("no responder", nobody=True) from None
    except NatsTimeout:
        raise Unanswered(f"no answer within {timeout:g} s", delivered=True) from None
    except Exception as exc:  # noqa: BLE001 - NATS away (or the link closed): not sent
        raise Unanswered(f"NATS: {exc or type(exc).__name__}") from None
    return bytes(msg.data)


async def to_owner(link: Link, subject: str, data: bytes, *, timeout: float, wait: float,
                   here: Callable[[], Awaitable[Response] | None], unavailable: Callable[[str], Response],
                   nobody: str, silent: str) -> tuple[Response, bool]:
    """A call to the holder of a right: its response, and whether another node answered it
    (False: this node holds the right now and ran it, ``here()``; or it is 503). ``here()``
    is None while this node does not hold the right; ``unavailable(why)`` is the 503 (its
    text says ``MOVING``); ``nobody`` and ``silent`` are the whys when no node holds it and
    when its holder did not answer."""
    give_up = time.monotonic() + wait
    while True:
        local = here()
        if local is not None:
            return await local, False
        try:
            reply = await request(link, subject, data, timeout)
        except Unanswered as exc:
            if exc.delivered:
                return unavailable(silent), False
            if time.monotonic() >= give_up:
                return unavailable(nobody if exc.nobody else exc.why), False
            await asyncio.sleep(RETRY)
            continue
        got = response(reply)
        if got.status == 503 and time.monotonic() < give_up and MOVING.encode() in bytes(got.body):
            await asyncio.sleep(RETRY)  # it was giving the right up: ask the next holder
            continue
        return got, True


class Responder:
    """Answers the calls on one subject (see the module's docstring)."""

    def __init__(self, link: Link, subject: str, make: Callable[[bytes], Coroutine[Any, Any, bytes]],
                 failed: Callable[[Exception], bytes], stopping: Callable[[], bytes] | None = None) -> None:
        self.link = link
        self.subject = subject
        self.make = make  # the answer, made on the daemon's loop
        self.failed = failed
        self.stopping = stopping or (lambda: failed(RuntimeError("the node is stopping")))
        self._sub: Any = None
        self._serving = link.tasks()  # answers being made (on the link's loop)
        self._loop: asyncio.AbstractEventLoop | None = None  # the daemon's

    async def start(self) -> None:
        """From the daemon's loop: listen on the subject."""
        self._loop = asyncio.get_running_loop()
        self._sub = await self.link.run(self.link.nc.subscribe(self.subject, cb=self._serve))

    async def stop(self) -> None:
        """From the daemon's loop: no new calls arrive here (the ones under way go on)."""
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await self.link.run(sub.unsubscribe())

    async def drain(self, grace: float = DRAIN_GRACE) -> None:
        """From the daemon's loop, after ``stop``: the answers under way get ``grace``
        seconds; the rest answer ``stopping()`` at once; returns once all have ended."""
        with contextlib.suppress(Exception):
            await self.link.run(self._serving.end(grace))

    async def _serve(self, msg: Any) -> None:
        """On the link's loop: each call on a task of its own."""
        self._serving.spawn(self._respond(msg))

    async def _respond(self, msg: Any) -> None:
        """On the link's loop: the answer is made on the daemon's loop, then sent."""
        assert self._loop is not None
        try:
            data = await asyncio.wrap_future(self._on_daemon_loop(msg.data))
        except asyncio.CancelledError:  # drained: the caller hears it now, not at its timeout
            with contextlib.suppress(Exception):
                await msg.respond(self.stopping())
            raise
        except Exception as exc:  # noqa: BLE001 - the caller must get an answer
            data = self.failed(exc)
        with contextlib.suppress(Exception):
            await msg.respond(data)

    def _on_daemon_loop(self, data: bytes) -> Any:
        assert self._loop is not None
        coro = self.make(data)
        try:
            return asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # the daemon's loop is closed
            coro.close()
            raise

    @property
    def serving(self) -> int:
        """Calls being answered now."""
        return len(self._serving.running)
