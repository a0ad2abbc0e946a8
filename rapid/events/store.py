"""The durable queue behind asynchronous invocation: the interface, and what the store holds.

Interface
---------
The dispatcher speaks to an ``EventStore`` in the terms of the domain (enqueue an event,
mark a batch started, reschedule one, finish one with its deliveries, ...). Each call is
asynchronous: it returns at once and calls ``done(result, error)`` on the event loop once
the change is durable. A distributed backend (NATS JetStream: ack-wait, max-deliver and
back-off map onto the same calls) can implement the same interface later.

The SQLite implementation: ``sqlite_store`` (the writer) and ``sqlite_db`` (the tables).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rapid.events.destinations import Response, Target

Done = Callable[[Any, BaseException | None], None]


class StoreError(Exception):
    """The queue cannot be opened (a start-up error: one line, exit status 2)."""


class StoreBusy(StoreError):
    """Another daemon holds the data dir."""


# -- what the store holds -----------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Entry:
    """A queued event as the dispatcher holds it in memory: everything but the payload."""

    id: int
    request_id: str
    function: str
    qualifier: str  # as invoked ("" for an unqualified name)
    trace_id: str
    enqueued_at: float  # epoch seconds: the event's age counts from here
    due_at: float
    attempts: int = 0  # approximateInvokeCount: every dispatch, throttled ones included
    errors: int = 0  # function errors so far
    throttles: int = 0  # consecutive throttles / system errors

    def __lt__(self, other: Entry) -> bool:  # heap order: due first, then accepted first
        return (self.due_at, self.id) < (other.due_at, other.id)


@dataclass(slots=True, eq=False)
class Delivery:
    """An outbox row: a record or dead letter on its way to a file or an HTTP endpoint."""

    id: int
    function: str
    target: str  # file:// or http(s):// as configured
    body: bytes
    created_at: float
    due_at: float
    expires_at: float
    tries: int = 0

    def __lt__(self, other: Delivery) -> bool:
        return (self.due_at, self.id) < (other.due_at, other.id)


@dataclass(slots=True)
class Finish:
    """Complete an event: build its record, deliver, delete it, in one transaction."""

    entry: Entry
    condition: str  # Success | RetriesExhausted | EventAgeExceeded
    response: Response | None  # None: the last answer stored with the event (if any)
    payload: bytes | None  # None: read it from the event's row
    function_arn: str  # qualified, for the record
    version: str
    destination: Target | None
    dead_letter: Target | None  # only on failure
    delivery_window: float  # seconds an HTTP/file delivery keeps being retried
    now: float


@dataclass(slots=True)
class Finished:
    new_entries: list[Entry] = field(default_factory=list)  # events for destination functions
    deliveries: list[Delivery] = field(default_factory=list)  # outbox rows to work on
    # built-in queue records written (row id, queue, message id, body, attributes JSON, sent at)
    records: list[tuple[int, str, str, bytes, str, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # deliveries that failed, for the log


@dataclass(slots=True)
class Recovery:
    entries: list[Entry]
    deliveries: list[Delivery]
    configs: dict[tuple[str, str], dict[str, Any]]
    redelivered: dict[str, int]  # per function: events that were running when the last daemon died


@dataclass(slots=True)
class Snapshot:
    now: float
    depth: dict[str, int]
    running: dict[str, int]
    oldest: dict[str, float]  # function -> enqueued_at of its oldest event
    counters: dict[tuple[str, str], int]
    deliveries: dict[str, int]
    queues: dict[str, int]


class EventStore(Protocol):
    def open(self) -> Recovery: ...
    def start(self, loop: asyncio.AbstractEventLoop) -> None: ...
    def enqueue(self, entry: Entry, payload: bytes, running: bool, done: Done) -> None: ...
    def mark_started(self, entries: list[Entry], done: Done) -> None: ...
    def reschedule(self, entry: Entry, due_at: float, reason: str, response: Response | None, done: Done) -> None: ...
    def finish(self, plan: Finish, done: Done) -> None: ...
    def release_running(self, cut: dict[str, int], done: Done) -> None: ...
    def delivery_done(self, d: Delivery, done: Done) -> None: ...
    def delivery_failed(self, d: Delivery, drop: bool, done: Done) -> None: ...
    def deliver_file(self, d: Delivery, done: Done) -> None: ...
    def put_config(self, function: str, qualifier: str, body: dict[str, Any] | None, done: Done) -> None: ...
    def snapshot(self, done: Done) -> None: ...
    def close(self) -> None: ...


def call(loop: asyncio.AbstractEventLoop, method: Callable[..., None], *args: Any) -> asyncio.Future[Any]:
    """A store operation as a future."""
    fut: asyncio.Future[Any] = loop.create_future()

    def done(result: Any, error: BaseException | None) -> None:
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)

    method(*args, done)
    return fut
