"""The node's one connection to NATS, on a thread with its own event loop.

The registry's store interface is synchronous (SQLite answers at once), so JetStream calls
are made on this thread's loop and waited for: ``call`` from any thread but the link's own
(the daemon's loop blocks for one loopback round trip, as it does for an SQLite commit),
``run`` from the daemon's loop without blocking it. nats-py reconnects by itself, forever;
``on_reconnect`` hooks run on the link's loop after each reconnection (a KV watch is
restarted there).

Closing is ordered: the connection is closed, every task still on the link's loop is
cancelled and waited for, the loop stops, its thread is joined (bounded) and the loop is
closed. From then on ``call``, ``submit`` and ``run`` refuse at once (``LinkError``),
closing the coroutine they were given, so nothing waits for a loop that will never run
it and no coroutine is left never awaited.

``pull_own``, ``fetching``, ``progressing``, ``give_back`` and ``done_with`` are the one way
a node works a durable pull consumer of its own (the events store and the records store
each have one): messages fetched and held, kept in progress while held, acknowledged and
deleted once done, handed back (Nak) when the node stops.

``LinkTasks`` is what one part (a store) runs on the link's loop, so that stopping it is
ordered: ``stop`` refuses new work, lets what is under way finish for a grace period,
cancels the rest and waits until it has ended, so what the tasks use (a database) may be
closed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future, InvalidStateError
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")
JOIN_TIMEOUT = 5.0  # seconds the closing thread waits for the link's thread to end
CANCEL_TIMEOUT = 1.0  # seconds a part waits for its cancelled tasks to end (they end in ms; bounded anyway)


def _settle(task: asyncio.Task[T], fut: Future[T]) -> None:
    """On the link's loop: ``task``'s outcome into ``fut``, retrieved even if nobody waits."""
    if task.cancelled():
        fut.cancel()
        return
    exc = task.exception()  # retrieved here, whoever still waits
    with contextlib.suppress(InvalidStateError):  # cancelled by its waiter meanwhile
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(task.result())


class LinkError(Exception):
    """NATS cannot be reached, or JetStream is not enabled on it."""


class Link:
    def __init__(self, url: str, name: str, timeout: float = 5.0, replicas: int = 1) -> None:
        self.url = url
        self.replicas = replicas  # of every bucket and stream rapid makes
        self.name = name
        self.timeout = timeout
        self.connected = False
        self.reconnects = 0
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []
        self.loop = uvloop.new_event_loop()  # as the daemon's own loop
        self._thread = threading.Thread(target=self.loop.run_forever, name="rapid-nats", daemon=True)
        self._thread.start()
        self.nc: Any = None
        self.js: Any = None
        self.closed = False

    def open(self) -> None:
        try:
            self.call(asyncio.wait_for(self._connect(), self.timeout), timeout=self.timeout + 5)
        except LinkError:
            self.close()
            raise
        except TimeoutError:
            self.close()
            raise LinkError(f"cannot join the cluster at {self.url}: no NATS server answered within "
                            f"{self.timeout:g} s") from None
        except Exception as exc:  # noqa: BLE001 - any failure to reach NATS is one clear line
            self.close()
            raise LinkError(f"cannot join the cluster at {self.url}: {exc or type(exc).__name__}") from None

    async def _connect(self) -> None:
        import nats  # the optional extra rapid[cluster]

        async def reconnected() -> None:
            self.connected = True
            self.reconnects += 1
            for hook in self.on_reconnect:
                asyncio.get_running_loop().create_task(hook())

        async def disconnected() -> None:
            self.connected = False

        async def error(exc: Exception) -> None:
            return None  # nats-py retries; the node keeps serving what it can

        self.nc = await nats.connect(
            self.url, name=self.name, connect_timeout=self.timeout, max_reconnect_attempts=-1,
            reconnect_time_wait=0.25, allow_reconnect=True, reconnected_cb=reconnected,
            disconnected_cb=disconnected, error_cb=error,
        )
        self.js = self.nc.jetstream(timeout=10.0)
        try:
            await self.js.account_info()
        except Exception as exc:  # noqa: BLE001
            await self.nc.close()
            raise LinkError(f"{self.url} has no JetStream (start nats-server with -js): {exc}") from None
        self.connected = True

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the link's loop and wait for it (not from the link's thread)."""
        return self.submit(coro).result(timeout if timeout is not None else self.timeout + 5)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the link's loop (from any thread); LinkError once it is closed.

        As ``asyncio.run_coroutine_threadsafe``, but a task whose waiter gave up on it (a
        ``wait_for`` that timed out, a caller cancelled while stopping) has its outcome
        retrieved all the same, so a failure nobody waits for any more (a lease another
        node holds) is not logged as "Task exception was never retrieved"; and a
        coroutine cancelled before it started is closed, not left never awaited."""
        if self.closed:
            coro.close()
            raise LinkError(f"the link to {self.url} is closed")
        fut: Future[T] = Future()

        def start() -> None:
            if fut.cancelled():
                coro.close()
                return
            task = self.loop.create_task(coro)
            task.add_done_callback(lambda t: _settle(t, fut))
            fut.add_done_callback(lambda f: self._cancel(task) if f.cancelled() else None)

        try:
            self.loop.call_soon_threadsafe(start)
        except RuntimeError:  # closed meanwhile
            coro.close()
            raise LinkError(f"the link to {self.url} is closed") from None
        return fut

    def _cancel(self, task: asyncio.Task[Any]) -> None:
        """From any thread: cancel a task on the link's loop (nothing once the loop is closed)."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(task.cancel)

    async def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the link's loop, awaited from another loop; with ``timeout``,
        TimeoutError after that many seconds (``coro`` is cancelled).

        Bounded with ``asyncio.timeout``, never ``asyncio.wait_for``: on Python 3.11 a
        ``wait_for`` cancelled after its result arrived (it arrives from the link's thread,
        at any moment) returns that result and drops the cancellation, so a loop around it
        went on as if never cancelled and its ``stop`` waited for it for ever (a node that
        held a reserved-concurrency lease did not exit on SIGTERM)."""
        if timeout is None:
            return await asyncio.wrap_future(self.submit(coro))
        async with asyncio.timeout(timeout):
            return await asyncio.wrap_future(self.submit(coro))

    async def pull_own(self, stream: str, subject: str, durable: str, ack_wait: float) -> Any:
        """On the link's loop: a pull subscription on a node's own durable consumer of
        ``stream`` (made if missing): explicit acks, redelivered after ``ack_wait``, never
        given up on (``max_deliver`` unlimited), only ``subject``."""
        from nats.js import api

        config = api.ConsumerConfig(durable_name=durable, ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ack_wait,
                                    max_deliver=-1, max_ack_pending=-1, filter_subject=subject)
        return await self.js.pull_subscribe(subject, durable=durable, stream=stream, config=config)

    @staticmethod
    async def fetching(sub: Any, batch: int, take: Callable[[Any], Awaitable[Any]]) -> None:
        """On the link's loop, until cancelled: what ``sub`` hands out, up to ``batch``
        messages a fetch, each to ``take`` in order (a fetch that finds nothing, or NATS
        away, is tried again)."""
        while True:
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - nothing yet (timeout), or NATS away
                await asyncio.sleep(0.05)
                continue
            for msg in msgs:
                await take(msg)

    @staticmethod
    async def progressing(held: Callable[[], dict[str, Any]], ack_wait: float) -> None:
        """On the link's loop, until cancelled: AckProgress for every message ``held()``
        every ``ack_wait / 3`` seconds, so JetStream hands none of them to another node."""
        while True:
            await asyncio.sleep(ack_wait / 3)
            for msg in list(held().values()):
                try:
                    await msg.in_progress()
                except Exception:  # noqa: BLE001 - NATS away: the next round
                    break

    @staticmethod
    async def give_back(held: dict[str, Any]) -> None:
        """On the link's loop: every message in ``held`` handed out again (Nak), for another node."""
        for msg in list(held.values()):
            try:
                await msg.nak()
            except Exception:  # noqa: BLE001 - AckWait hands it over anyway
                pass

    async def done_with(self, msg: Any, stream: str) -> bool:
        """On the link's loop: acknowledge ``msg`` and delete it from ``stream`` (limits
        retention: the stream holds exactly what is not done); False if NATS did not have it
        (it is handed out again later: skipped by its key, or a possible duplicate)."""
        try:
            await msg.ack()
            await self.js.delete_msg(stream, msg.metadata.sequence.stream)
        except Exception:  # noqa: BLE001
            return False
        return True

    def close(self) -> None:
        """Once (again: nothing): the connection closed, the loop's tasks ended, the thread
        joined, the loop closed."""
        if self.closed:
            return
        if self.nc is not None and self.loop.is_running():
            try:
                self.call(self._drain(), timeout=5)
            except Exception:  # noqa: BLE001 - closing: nothing left to tell
                pass
        if self._thread.is_alive():
            try:
                self.call(self._cancel_all(), timeout=5)
            except Exception:  # noqa: BLE001 - closing
                pass
        self.closed = True  # refused from now on
        if self._thread.is_alive():
            try:
                self.loop.call_soon_threadsafe(self.loop.stop)
            except RuntimeError:
                pass
            self._thread.join(JOIN_TIMEOUT)
        if not self._thread.is_alive() and not self.loop.is_closed():
            self.loop.close()  # here, not at the interpreter's exit
        self.nc = None

    async def _cancel_all(self) -> None:
        """Whatever still runs on the link's loop (a watch, a connection attempt) ends here."""
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self) -> None:
        try:
            await asyncio.wait_for(self.nc.close(), 3)
        except Exception:  # noqa: BLE001
            pass

    def tasks(self) -> LinkTasks:
        return LinkTasks(self)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<Link {self.url} {self.name} {state} reconnects={self.reconnects}>"


class LinkTasks:
    """Tasks one part runs on the link's loop (see the module's docstring)."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.running: set[asyncio.Task[Any]] = set()  # the link's loop alone touches it
        self.stopped = False

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """From any thread: run ``coro`` on the link's loop; LinkError once stopped."""
        if self.stopped:
            coro.close()
            raise LinkError("stopped")
        wrapped = self._tracked(coro)
        try:
            return self.link.submit(wrapped)
        except LinkError:
            coro.close()
            raise

    async def _tracked(self, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.current_task()
        assert task is not None
        self.running.add(task)
        try:
            return await coro
        finally:
            self.running.discard(task)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """On the link's loop: run ``coro`` as one more task of these (even once stopped:
        ``end`` waits for it too)."""
        asyncio.get_running_loop().create_task(self._tracked(coro))

    def stop(self, grace: float = 0.0) -> None:
        """From any thread but the link's: no new work; what runs gets ``grace`` seconds to
        end, then is cancelled; returns once all of it has ended (or ``CANCEL_TIMEOUT`` more
        seconds passed)."""
        self.stopped = True
        if self.link.closed:
            return
        try:
            self.link.call(self.end(grace), timeout=grace + CANCEL_TIMEOUT + 1)
        except Exception:  # noqa: BLE001 - closing: the link's loop stops anyway
            pass

    async def end(self, grace: float) -> None:
        """On the link's loop: what runs gets ``grace`` seconds, then is cancelled and waited for."""
        if grace > 0 and self.running:
            await asyncio.wait(set(self.running), timeout=grace)
        running = set(self.running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=CANCEL_TIMEOUT)
