"""The daemon's live queues: the core, its journal, and the receives waiting on them.

``LiveQueues`` owns the ``sqs.Service`` (the state, in memory), writes every change through
``store.Journal`` and lets callers act only after the commit (``commit``). It serves two
kinds of caller: the protocol edge (``sqs_api``) and, in the daemon, the event source
mapping pollers (``receive``, ``delete``, ``change_visibility``: futures, no HTTP).

A receive that finds nothing and may wait parks a *waiter* (its future, a deadline timer
and what to do with the messages) on its queue. A committed change that puts a message
(a send, a visibility change, a redrive, an import) wakes the queue's waiters, oldest
first; one timer per queue with waiters fires when its next message comes into view; the
deadline answers with nothing. No task per waiter.

It also imports the records the async destinations deliver to ``arn:aws:sqs:...`` (the
journal's inbox, see ``store``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from rapid.queues import sqs_rows
from rapid.queues.sqs import Service
from rapid.queues.sqs_errors import SqsError
from rapid.queues.sqs_model import Message, Queue
from rapid.queues.store import Journal

_decode = msgspec.json.Decoder().decode
Done = Callable[[BaseException | None], None]


class Waiter:
    """A receive waiting for messages: ``deliver`` answers it with what it got."""

    __slots__ = ("deliver", "future", "limit", "queue", "timer", "visibility")

    def __init__(self, future: asyncio.Future[Any], queue: str, limit: int, visibility: int | None,
                 deliver: Callable[[list[Message]], Any]) -> None:
        self.future, self.queue, self.limit, self.visibility, self.deliver = future, queue, limit, visibility, deliver
        self.timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<Waiter {self.queue} up to {self.limit}>"


class LiveQueues:
    def __init__(self, journal: Journal, region: str, account: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.journal = journal
        self.clock = clock
        self.service = Service(region, account, lambda: str(uuid.uuid4()))
        self._imported = sqs_rows.load(journal, self.service, clock())
        self._loop = asyncio.get_running_loop()
        self._waiters: dict[str, list[Waiter]] = {}
        self._wakers: dict[str, asyncio.TimerHandle] = {}
        journal.on_inbox = self._import

    def __repr__(self) -> str:
        return f"<LiveQueues {len(self.service.queues)} queues, {self.waiting} waiting>"

    @property
    def waiting(self) -> int:
        return sum(map(len, self._waiters.values()))

    def create_future(self) -> asyncio.Future[Any]:
        return self._loop.create_future()

    # -- committing -----------------------------------------------------------------------

    def commit(self, done: Done) -> bool:
        """Write the core's pending changes; ``done(None)`` (or the store's error) once they
        are on disk, after the waiters of every queue that may now give out more are served. False,
        and ``done`` not called, when there was nothing to write."""
        changes, self.service.changes = self.service.changes, []
        if not changes:
            return False
        # A message put (sent, back in view, redriven) serves waiters; on a FIFO queue so does a
        # delete, which may open the message group it held.
        touched = {c[1].name for c in changes if c[0] == "put"}
        touched.update(c[2].name for c in changes if c[0] == "delete" and c[2].fifo)

        def committed(exc: BaseException | None) -> None:
            if exc is None:
                for name in touched:
                    self.wake(name)
            done(exc)

        self.journal.submit(sqs_rows.statements(changes), committed)
        return True

    def flush(self) -> None:
        """Write changes no caller waits for (messages past their retention)."""
        self.commit(lambda exc: None)

    def discard(self) -> None:
        """Forget the pending changes of an operation that failed before changing anything."""
        self.service.changes.clear()

    def resolve(self, fut: asyncio.Future[Any], value: Any) -> asyncio.Future[Any]:
        """Resolve ``fut`` with ``value`` once the pending changes are committed."""

        def done(exc: BaseException | None) -> None:
            if not fut.done():
                fut.set_exception(exc) if exc is not None else fut.set_result(value)

        if not self.commit(done) and not fut.done():
            fut.set_result(value)
        return fut

    # -- waiting --------------------------------------------------------------------------

    def park(self, w: Waiter, wait: float) -> None:
        w.timer = self._loop.call_at(self._loop.time() + wait, self.settle, w, [])
        self._waiters.setdefault(w.queue, []).append(w)
        self._arm(self.service.queues[w.queue])
        self.flush()  # what expiry dropped

    def settle(self, w: Waiter, messages: list[Message]) -> None:
        if w.timer is not None:
            w.timer.cancel()
        waiting = self._waiters.get(w.queue)
        if waiting and w in waiting:
            waiting.remove(w)
        if not w.future.done():
            w.deliver(messages)

    def drop_queue(self, name: str) -> None:
        """A deleted queue's waiters get nothing."""
        for w in self._waiters.pop(name, []):
            self.settle(w, [])

    def wake(self, name: str) -> None:
        """Serve the queue's waiters, oldest first, with what is visible now."""
        waiting = self._waiters.get(name)
        q = self.service.queues.get(name)
        if not waiting or q is None:
            return
        now = self.clock()
        for w in list(waiting):
            if w.future.done():  # the caller went away
                self.settle(w, [])
                continue
            messages = self.service.receive(q, w.limit, w.visibility, now)
            if not messages:
                self.flush()
                break
            self.settle(w, messages)
        if not waiting:
            self._waiters.pop(name, None)
        self._arm(q)

    def _arm(self, q: Queue) -> None:
        """One timer per queue with waiters: when its next message comes into view."""
        old = self._wakers.pop(q.name, None)
        if old is not None:
            old.cancel()
        if not self._waiters.get(q.name):
            return
        now = self.clock()
        when = q.next_change(now)
        if when is not None:
            self._wakers[q.name] = self._loop.call_later(max(0.0, when - now) + 0.001, self.wake, q.name)

    def close(self) -> None:
        for waiting in list(self._waiters.values()):
            for w in list(waiting):
                self.settle(w, [])
        for timer in self._wakers.values():
            timer.cancel()

    # -- in-process, for the event source mapping pollers -------------------------------

    def receive(self, name: str, limit: int = 10, visibility: int | None = None,
                wait: float = 0.0) -> asyncio.Future[list[Message]]:
        """What ReceiveMessage does, for a poller in the daemon: up to ``limit`` messages
        (any number: a poller gathering a batch of 10,000 asks for them), in flight for
        ``visibility`` seconds (the queue's timeout if None); waits up to ``wait`` seconds
        for the first. Resolves once the receive is committed; ``SqsError`` if the queue
        does not exist; ``[]`` if it is deleted meanwhile."""
        fut: asyncio.Future[list[Message]] = self._loop.create_future()
        try:
            q = self.service.get(name)
        except SqsError as exc:
            fut.set_exception(exc)
            return fut
        messages = self.service.receive(q, limit, visibility, self.clock())
        if messages or wait <= 0:
            return self.resolve(fut, messages)
        self.park(Waiter(fut, name, limit, visibility, lambda ms: self.resolve(fut, ms)), wait)
        return fut

    def delete(self, name: str, handles: list[str]) -> asyncio.Future[None]:
        """Delete received messages by receipt handle (a batch's successes)."""
        fut: asyncio.Future[None] = self._loop.create_future()
        try:
            q = self.service.get(name)
            for handle in handles:
                self.service.delete(q, handle)
        except SqsError as exc:
            self.discard()
            fut.set_exception(exc)
            return fut
        return self.resolve(fut, None)

    def unreceive(self, name: str, handles: list[str]) -> asyncio.Future[None]:
        """Hand received messages back untouched (``SqsService.unreceive``), durably."""
        fut: asyncio.Future[None] = self._loop.create_future()
        try:
            q = self.service.get(name)
            for handle in handles:
                self.service.unreceive(q, handle, self.clock())
        except SqsError as exc:
            self.discard()
            fut.set_exception(exc)
            return fut
        return self.resolve(fut, None)  # the commit serves the queue's waiters

    def change_visibility(self, name: str, handle: str, timeout: int) -> asyncio.Future[None]:
        """Make a received message visible again after ``timeout`` seconds (0: at once)."""
        fut: asyncio.Future[None] = self._loop.create_future()
        try:
            self.service.change_visibility(self.service.get(name), handle, timeout, self.clock())
        except SqsError as exc:
            self.discard()
            fut.set_exception(exc)
            return fut
        return self.resolve(fut, None)

    # -- the inbox of the async destinations ----------------------------------------------

    def _import(self, rows: list[tuple[Any, ...]]) -> None:
        now = self.clock()
        fresh = [r for r in rows if r[2] not in self._imported]
        for _, queue, message_id, body, attributes, sent_at in fresh:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            self.service.deliver(queue, message_id, text, _decode(attributes) if attributes else {}, sent_at, now)
            self.service.changes.append(("imported", message_id))
            self._imported.add(message_id)
        row_ids = [r[0] for r in rows]
        ids = [r[2] for r in rows]

        def done(exc: BaseException | None) -> None:
            if exc is None:
                self.journal.forget_inbox(row_ids, ids)
                self._imported.difference_update(ids)

        if not self.commit(done):
            done(None)  # every row was imported before a restart: only forget them
