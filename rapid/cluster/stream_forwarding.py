"""Streamed answers between nodes: InvokeWithResponseStream and function URLs forwarded to
a node with room, their bytes flowing back as the function writes them.

Theory of operation
-------------------
``Placement.place`` decides where an invocation runs, as for a sync Invoke
(``rapid.cluster.forwarding``); for a streamed one it is handed ``StreamRelay.asker``,
which asks a peer this way (the frames and their rules are ``stream_frames``):

1. The origin subscribes to a fresh inbox, then sends a ``StreamCall`` (the invoker's
   method, path, headers and body; for a URL also the caller's address and port, which
   the event names) by NATS request/reply to ``rapid.node.<peer>.stream``.
2. The peer runs it through its own streaming path (``rapid.api.stream`` or the
   ``UrlServer``), marked ``x-rapid-forwarded`` (one hop). Its first answer is a ``Head``:
   a whole response (an error, a throttle, a buffered URL answer), or the status and
   headers of a stream. No responder: the next peer is asked; no answer within the
   function's timeout plus a grace: 502, as a sync forward.
3. A stream's bytes follow as ``Frame``\\ s on the inbox, in order, each exactly what the
   peer's own ``StreamingResponse`` was given (whole event-stream messages for
   InvokeWithResponseStream, the body's pieces for a URL), then an ``END``; the origin
   writes each to its invoker's connection as it arrives. The origin acknowledges what it
   delivered (not while its invoker's socket is full); the peer holds the runtime's stream
   while a ``WINDOW`` of bytes is unacknowledged. The peer beats once a second.
4. A missing frame or ``BROKEN_AFTER`` seconds of silence (the peer died) ends the stream
   on the origin as a broken stream ends on AWS: InvokeWithResponseStream gets a last
   ``InvokeComplete`` with ``ErrorCode: ServiceException``; a URL's connection is closed
   without the body's last chunk, so the client sees the body cut short. An invoker that
   goes away is told to the peer, which stops sending.

The call and its head travel as every call between nodes does (``request_reply``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import msgspec

from rapid.api.errors import render
from rapid.cluster.link import Link
from rapid.cluster.request_reply import HOP_BY_HOP, Responder, Unanswered, passed_on, request, settled
from rapid.cluster.stream_frames import (
    BEAT, BROKEN_AFTER, Ack, Broken, Frame, Head, Kind, Receiver, StreamCall, Window,
)
from rapid.core.errors import ServiceError
from rapid.core.eventstream import invoke_complete
from rapid.http.message import Request, Response, StreamingResponse

if TYPE_CHECKING:
    from rapid.api.invoke import InvokeAPI
    from rapid.api.url import UrlServer

FORWARDED = "x-rapid-forwarded"
FORWARD_GRACE = 10.0
_HOP_BY_HOP = HOP_BY_HOP | {"host"}  # an invocation's Host is this node's, not the peer's
# A URL's request goes whole: its Host may name the URL, its headers are the event's and may
# be signed (AWS_IAM); the peer reads no HTTP from them.
_URL_HOP_BY_HOP: frozenset[str] = frozenset()
BROKEN_DETAILS = "The node running the invocation stopped answering mid-stream; the response is incomplete."
Ask = Callable[[str, Request, str, float], Awaitable["Response | None"]]


def subject(node_id: str) -> str:
    return f"rapid.node.{node_id}.stream"


def _stopped(rid: str) -> Response:
    return render(ServiceError(502, "ServiceException", "The node running the invocation stopped answering; "
                               "it may have run.", kind="Service"), rid)


class StreamRelay:
    def __init__(self, link: Link, node_id: str) -> None:
        self.link = link
        self.node_id = node_id
        self.invoke_api: InvokeAPI | None = None
        self.urls: UrlServer | None = None
        self.out = 0  # streams answered by a peer
        self.into = 0  # streams run here for a peer
        self.broken = 0  # streams given up as broken
        self.responder = Responder(link, subject(node_id), self._run, self._failed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._encode = msgspec.msgpack.Encoder().encode
        self._frame = msgspec.msgpack.Decoder(Frame).decode
        self._head = msgspec.msgpack.Decoder(Head).decode
        self._call = msgspec.msgpack.Decoder(StreamCall).decode
        self._ack = msgspec.msgpack.Decoder(Ack).decode
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, invoke_api: InvokeAPI, urls: UrlServer | None) -> None:
        self.invoke_api, self.urls = invoke_api, urls
        self._loop = asyncio.get_running_loop()
        await self.responder.start()

    async def stop(self) -> None:
        """No more streams from peers (the heads under way end in ``drain``); the streams
        relayed from peers end here (broken)."""
        await self.responder.stop()
        for task in list(self._tasks):
            task.cancel()

    async def drain(self) -> None:
        """Once the host has shut down: the heads still being made for peers end."""
        await self.responder.drain()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the origin: ask a peer, relay its stream -----------------------------------------

    def asker(self, mode: str, peer_ip: str = "", port: int = 0) -> Ask:
        async def ask(peer: str, req: Request, rid: str, timeout: float) -> Response | None:
            return await self._ask(mode, peer, req, rid, timeout, peer_ip, port)

        return ask

    async def _ask(self, mode: str, peer: str, req: Request, rid: str, timeout: float,
                   peer_ip: str, port: int) -> Response | None:
        nc = self.link.nc
        try:
            inbox = nc.new_inbox()
            sub = await self.link.run(nc.subscribe(inbox))  # frames wait here until read
        except Exception:  # noqa: BLE001 - NATS away: not sent
            return None
        hop = _URL_HOP_BY_HOP if mode == "url" else _HOP_BY_HOP
        call = StreamCall(mode, req.method, req.target, passed_on(req.headers, hop), bytes(req.body), rid,
                          self.node_id, inbox, peer_ip, port)
        try:
            reply = await request(self.link, subject(peer), self._encode(call), timeout + FORWARD_GRACE)
        except Unanswered as exc:
            await self._drop(sub)
            return _stopped(rid) if exc.delivered else None  # not delivered: the next peer is asked
        head = self._head(reply)
        if not head.streaming:
            await self._drop(sub)
            return Response(head.status, head.body, [(k, v) for k, v in head.headers])
        resp = StreamingResponse(head.status, [(k, v) for k, v in head.headers])
        self._spawn(self._relay(mode, sub, head.acks, resp))
        self.out += 1
        return resp

    async def _drop(self, sub: Any) -> None:
        with contextlib.suppress(Exception):
            await self.link.run(sub.unsubscribe())

    async def _relay(self, mode: str, sub: Any, acks: str, resp: StreamingResponse) -> None:
        """Write the peer's frames to the invoker as they come, until the end or a break."""
        recv = Receiver()
        paused = False

        def ack(closed: bool = False) -> None:
            data = self._encode(Ack(recv.acking(), closed))
            self.link.submit(self._publish(acks, data))

        def pause() -> None:
            nonlocal paused
            paused = True

        def resume() -> None:
            nonlocal paused
            paused = False
            ack()

        resp.on_pause, resp.on_resume = pause, resume
        try:
            while True:
                if resp.closed:  # the invoker went away
                    ack(closed=True)
                    return
                try:
                    msg = await self.link.run(sub.next_msg(timeout=BROKEN_AFTER))
                except Exception:  # noqa: BLE001 - silent for too long, or NATS gone
                    raise Broken(f"no word from the node for {BROKEN_AFTER:g} s") from None
                data = recv.take(self._frame(msg.data))
                if data is None:
                    resp.end()
                    return
                if data:
                    resp.write(data)
                    if recv.ack_due(paused):
                        ack()
        except Broken:
            self.broken += 1
            ack(closed=True)  # if the peer is still there, it stops sending
            self._break(mode, resp)
        except asyncio.CancelledError:
            self._break(mode, resp)
            raise
        finally:
            await self._drop(sub)

    def _break(self, mode: str, resp: StreamingResponse) -> None:
        if resp.ended:
            return
        if mode == "invoke":
            resp.write(invoke_complete("ServiceException", BROKEN_DETAILS))
            resp.end()
            return
        conn = getattr(resp, "_conn", None)
        transport = getattr(conn, "transport", None)
        if transport is not None:
            transport.abort()  # no last chunk: the client sees the body cut short
        else:  # nothing went out yet: end what there is
            resp.end()

    async def _publish(self, subject_: str, data: bytes) -> None:
        with contextlib.suppress(Exception):
            await self.link.nc.publish(subject_, data)

    # -- the peer: run it here, send the stream back --------------------------------------

    def _failed(self, exc: Exception) -> bytes:
        return self._encode(Head(500, [("x-amzn-ErrorType", "ServiceException")],
                                 msgspec.json.encode({"Type": "Service", "message": str(exc)})))

    async def _run(self, data: bytes) -> bytes:
        """On the daemon's loop: the head is the first answer; the frames follow."""
        call = self._call(data)
        req = Request(call.method, call.target)
        req.headers = dict(call.headers)
        req.headers[FORWARDED] = call.origin
        req.body = call.body
        self.into += 1
        try:
            if call.mode == "url":
                assert self.urls is not None
                result: Any = self.urls.answer(req, call.rid, call.peer_ip, call.port)
            else:
                from rapid.api import stream

                assert self.invoke_api is not None
                name = unquote(call.target.partition("?")[0].split("/")[3])
                result = stream.invoke(self.invoke_api, name, req, call.rid)
            response = await settled(result)
        except ServiceError as exc:
            response = render(exc, call.rid)
        if not isinstance(response, StreamingResponse):
            return self._encode(Head(response.status, list(response.headers), bytes(response.body)))
        sender = await self.link.run(_Sender.open(self.link, call.inbox, self._ack, self._loop))
        sender.attach(response)
        return self._encode(Head(response.status, list(response.headers), streaming=True, acks=sender.acks))

    def __repr__(self) -> str:
        return f"<StreamRelay out={self.out} in={self.into} broken={self.broken}>"


class _Sender:
    """The peer's end of one stream: what its ``StreamingResponse`` is given goes out as
    frames, in order (one task on the link's loop publishes them); acknowledgements come
    back on ``acks``. It stands in for the HTTP connection a local stream would be bound
    to (``stream_write``, ``stream_end``)."""

    def __init__(self, link: Link, inbox: str, decode_ack: Callable[[bytes], Ack],
                 loop: asyncio.AbstractEventLoop | None) -> None:
        self.link = link
        self.inbox = inbox
        self.decode_ack = decode_ack
        self.loop = loop  # the daemon's
        self.window = Window()
        self.resp: StreamingResponse | None = None
        self.acks = ""
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._sub: Any = None
        self._beat: asyncio.TimerHandle | None = None
        self._encode = msgspec.msgpack.Encoder().encode
        self._max = max(4096, int(link.nc.max_payload) - 1024)

    @classmethod
    async def open(cls, link: Link, inbox: str, decode_ack: Callable[[bytes], Ack],
                   loop: asyncio.AbstractEventLoop | None) -> _Sender:
        """On the link's loop: the acknowledgements' inbox and the publishing task."""
        sender = cls(link, inbox, decode_ack, loop)
        sender.acks = link.nc.new_inbox()
        sender._sub = await link.nc.subscribe(sender.acks, cb=sender._acked)
        asyncio.get_running_loop().create_task(sender._pump())
        return sender

    async def _pump(self) -> None:
        nc = self.link.nc
        try:
            while True:
                data = await self._queue.get()
                if data is None:
                    break
                with contextlib.suppress(Exception):
                    await nc.publish(self.inbox, data)
        finally:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    def _send(self, data: bytes | None) -> None:
        """From the daemon's loop: queue a frame for the publishing task."""
        self.link.loop.call_soon_threadsafe(self._queue.put_nowait, data)

    # -- the daemon's loop ----------------------------------------------------------------

    def attach(self, resp: StreamingResponse) -> None:
        self.resp = resp
        assert self.loop is not None
        self._beat = self.loop.call_later(BEAT, self._beating)
        resp.bind(self)

    def _beating(self) -> None:
        if self.resp is None:
            return
        self._send(self._encode(Frame(Kind.BEAT, 0)))
        assert self.loop is not None
        self._beat = self.loop.call_later(BEAT, self._beating)

    def stream_write(self, data: bytes) -> None:
        if self.resp is None:
            return
        view = memoryview(data)
        for i in range(0, len(data), self._max):
            piece = bytes(view[i:i + self._max])
            seq, hold = self.window.send(len(piece))
            self._send(self._encode(Frame(Kind.DATA, seq, piece)))
            if hold and callable(self.resp.on_pause):
                self.resp.on_pause()

    def stream_end(self) -> None:
        if self.resp is None:
            return
        self._send(self._encode(Frame(Kind.END, self.window.end())))
        self._finish()

    def _finish(self) -> None:
        resp, self.resp = self.resp, None
        if self.window.held:  # never leave the runtime's connection unread (its next /next is on it)
            self.window.held = False
            if resp is not None and callable(resp.on_resume):
                resp.on_resume()
        if self._beat is not None:
            self._beat.cancel()
        self._send(None)

    async def _acked(self, msg: Any) -> None:
        """On the link's loop: hand the acknowledgement to the daemon's loop."""
        assert self.loop is not None
        with contextlib.suppress(RuntimeError):  # the daemon's loop is closing
            self.loop.call_soon_threadsafe(self._take_ack, self.decode_ack(msg.data))

    def _take_ack(self, ack: Ack) -> None:
        resp = self.resp
        if resp is None:
            return
        if ack.closed:  # the invoker went away: what the function still writes is dropped
            resp.closed = True
            self._finish()
            return
        if self.window.ack(ack.delivered) and callable(resp.on_resume):
            resp.on_resume()

    def __repr__(self) -> str:
        return f"<_Sender {self.inbox} {self.window!r}>"
