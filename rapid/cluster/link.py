"""The node's one connection to NATS, on a thread with its own event loop.

The registry's store interface is synchronous (SQLite answers at once), so JetStream calls
are made on this thread's loop and waited for: ``call`` from any thread but the link's own
(the daemon's loop blocks for one loopback round trip, as it does for an SQLite commit),
``run`` from the daemon's loop without blocking it. nats-py reconnects by itself, forever;
``on_reconnect`` hooks run on the link's loop after each reconnection (a KV watch is
restarted there).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


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
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout if timeout is not None else self.timeout + 5)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the link's loop, awaited from another loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def pull_own(self, stream: str, subject: str, durable: str, ack_wait: float) -> Any:
        """On the link's loop: a pull subscription on a node's own durable consumer of
        ``stream`` (made if missing): explicit acks, redelivered after ``ack_wait``, never
        given up on (``max_deliver`` unlimited), only ``subject``."""
        from nats.js import api

        config = api.ConsumerConfig(durable_name=durable, ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ack_wait,
                                    max_deliver=-1, max_ack_pending=-1, filter_subject=subject)
        return await self.js.pull_subscribe(subject, durable=durable, stream=stream, config=config)

    def close(self) -> None:
        if self.nc is not None and self.loop.is_running():
            try:
                self.call(self._drain(), timeout=5)
            except Exception:  # noqa: BLE001 - closing: nothing left to tell
                pass
        if self.loop.is_running():
            try:
                self.call(self._cancel_all(), timeout=5)
            except Exception:  # noqa: BLE001 - closing
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
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

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<Link {self.url} {self.name} {state} reconnects={self.reconnects}>"
