"""An SQS event source mapping's poller: batches from a built-in queue to a function.

Theory of operation
-------------------
A ``SqsPoller`` runs a few worker tasks, each gathering one batch at a time and invoking the
function with it. A worker long-polls the queue in-process (``LiveQueues.receive``, 20 s, no
task per wait and no busy loop); the messages it gets are invisible for the queue's
visibility timeout while the function runs. With a batching window it keeps receiving until
the batch is full (BatchSize, or the 6 MB event cap of ``batching.Batcher``) or the window
that opened with its first message has passed.

Messages the FilterCriteria drop are deleted, as Lambda deletes them. After the invoke
(``responses.interpret``): success deletes the batch; an error leaves it to come back after
the visibility timeout (and, through the queue's RedrivePolicy, to its dead-letter queue
after maxReceiveCount); ``ReportBatchItemFailures`` deletes all but the failed ones. On a
FIFO queue a message group is held while one of its messages is in flight (the queue does
that), so groups run one batch at a time, in order; after a partial failure every later
message of the failed group stays too, so the group is never reordered.

Scaling: 5 workers to start; a worker that gathers a full batch, and so saw a backlog, adds
one more (at most one every 0.2 s: Lambda adds up to 300 a minute) up to the cap: ScalingConfig.MaximumConcurrency, the
function's reserved concurrency, and the host's capacity; past the cap (the reservation
went down) a worker leaves after its batch. A worker that waits a whole long
poll for nothing leaves, down to 5. A batch the admission rule holds back waits and is sent
when there is room (``Invoker``); it never fails for it.

The function gone (deleted; a mapping outlives its function, as on AWS, and DeleteFunction
leaves it Enabled): the workers stop taking messages and look again once a second, so the
messages wait in the queue with their receive counts untouched and nothing reaches the
dead-letter queue for it; a function created again under the name is polled for at once.
A batch that was taken and then could not be invoked (the function went meanwhile, the
daemon stops) is handed back the same way: visible at once, its receive counts taken back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import msgspec

from rapid.queues.sqs_live import LiveQueues
from rapid.queues.sqs_model import Message
from rapid.registry.mappings import Mapping
from rapid.sources import batching, filters, records, responses
from rapid.sources.invoker import FUNCTION_GONE, Invoker
from rapid.sources.stats import Stats

START_WORKERS = 5
LONG_POLL = 20.0
SCALE_EVERY = 0.2  # seconds between two added workers: 300 a minute, Lambda's SQS scaling rate
FUNCTION_POLL = 1.0  # while the function is gone, how often a worker looks for it again
_encode = msgspec.json.Encoder().encode


class SqsPoller:
    def __init__(self, mapping: Mapping, queues: LiveQueues, invoker: Invoker, stats: Stats,
                 reserved: Callable[[], int | None], capacity: int) -> None:
        self.mapping = mapping
        self.queues = queues
        self.invoker = invoker
        self.stats = stats
        self.reserved = reserved  # the function's reserved concurrency, now
        self.capacity = capacity
        self.queue = mapping.source_arn.rsplit(":", 1)[-1]
        self.patterns = [filters.parse_pattern(p) for p in mapping.filters]
        self.report = "ReportBatchItemFailures" in mapping.response_types
        self.workers: set[asyncio.Task[None]] = set()
        self._last_scale = 0.0
        self._region = queues.service.region
        self._account = queues.service.account

    def __repr__(self) -> str:
        return f"<SqsPoller {self.mapping.uuid} {self.queue} workers={len(self.workers)}/{self.cap}>"

    @property
    def cap(self) -> int:
        cap = min(self.mapping.max_concurrency or 1000, self.capacity)
        reserved = self.reserved()
        return cap if reserved is None else min(cap, reserved)

    def start(self) -> None:
        for _ in range(max(1, min(START_WORKERS, self.cap))):
            self._spawn()

    async def stop(self) -> None:
        tasks = list(self.workers)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def _spawn(self) -> None:
        task = asyncio.get_running_loop().create_task(self._work())
        self.workers.add(task)
        task.add_done_callback(self.workers.discard)

    # -- one worker -----------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            if self.cap <= 0:  # reserved concurrency 0: the mapping does not poll
                await asyncio.sleep(1.0)
                continue
            if len(self.workers) > self.cap:  # the reserved concurrency went down
                return
            if self.invoker.unavailable(self.mapping.function, self.mapping.qualifier) is not None:
                self.stats.last_result = FUNCTION_GONE  # the messages stay where they are
                await asyncio.sleep(FUNCTION_POLL)
                continue
            try:
                batch = await self._gather()
            except Exception:  # noqa: BLE001 - the queue was deleted: wait for it to come back
                await asyncio.sleep(1.0)
                continue
            if not batch:
                if len(self.workers) > START_WORKERS:
                    return
                continue
            if len(batch) >= self.mapping.batch_size and len(self.workers) < self.cap:
                now = time.monotonic()
                if now - self._last_scale >= SCALE_EVERY:
                    self._last_scale = now
                    self._spawn()
            await self._run(batch)

    def _record(self, m: Message) -> dict[str, Any]:
        q = self.queues.service.queues.get(self.queue)
        return records.sqs_record(m, queue_arn=self.mapping.source_arn, region=self._region,
                                  sender=self._account, fifo=bool(q and q.fifo))

    async def _gather(self) -> list[tuple[Message, dict[str, Any]]]:
        m = self.mapping
        batcher: batching.Batcher[tuple[Message, dict[str, Any]]] = batching.Batcher(
            batching.Policy(m.batch_size, float(m.window)))
        wait = LONG_POLL
        full: list[batching.Batch[tuple[Message, dict[str, Any]]]] = []
        loop = asyncio.get_running_loop()
        while True:
            got = await self.queues.receive(self.queue, m.batch_size - len(batcher.batch.items), None, wait)
            dropped = []
            for msg in got:
                rec = self._record(msg)
                if self.patterns and not filters.matches_any(self.patterns, filters.sqs_view(rec, self.patterns)):
                    dropped.append(msg.receipt or "")
                    continue
                full.extend(batcher.add((msg, rec), len(_encode(rec)), loop.time()))
            if dropped:
                self.stats.filtered += len(dropped)
                await self.queues.delete(self.queue, dropped)
            if full:
                for extra in full[1:] + ([batcher.batch] if batcher.batch.items else []):
                    await self._release([msg for msg, _ in extra.items])
                return full[0].items
            deadline = batcher.deadline()
            if deadline is None:
                if got:  # everything was filtered out: poll again at once
                    continue
                return []
            wait = deadline - loop.time()
            if wait <= 0:
                done = batcher.due(float("inf"))
                return done.items if done else []

    async def _release(self, messages: list[Message]) -> None:
        """Messages that never reached the function (over a batch's payload cap; a batch that
        could not be invoked): back in the queue at once, their receive counts as before."""
        with contextlib.suppress(Exception):
            await self.queues.unreceive(self.queue, [msg.receipt or "" for msg in messages])

    async def _run(self, batch: list[tuple[Message, dict[str, Any]]]) -> None:
        m, stats = self.mapping, self.stats
        now = time.time()
        stats.oldest_age_ms = max(0, int((now - min(msg.sent for msg, _ in batch)) * 1000))
        payload = b'{"Records":[' + b",".join(_encode(rec) for _, rec in batch) + b"]}"
        result = await self.invoker(m.function, m.qualifier, payload)
        stats.throttles += result.throttles
        if result.service_error is not None:  # it never ran: the function went, or the daemon stops
            stats.last_result = FUNCTION_GONE if result.service_error.status == 404 else \
                f"PROBLEM: {result.service_error.message}"
            await self._release([msg for msg, _ in batch])
            await asyncio.sleep(FUNCTION_POLL)
            return
        stats.batches += 1
        stats.records += len(batch)
        stats.redelivered += sum(1 for msg, _ in batch if msg.receive_count > 1)
        ids = [msg.id for msg, _ in batch]
        outcome = responses.interpret(result.body, function_error=result.function_error is not None,
                                      report_failures=self.report, ids=ids)
        delete, keep = responses.sqs_settle(outcome, ids)
        if keep and self._fifo:
            delete = _fifo_order(batch, set(keep), delete)
        if outcome.kind != "success":
            stats.errors += 1
            stats.failed_records += len(ids) - len(delete)
        stats.last_result = "OK" if outcome.kind == "success" else "PROBLEM: Function call failed"
        if delete:
            by_id = {msg.id: msg.receipt or "" for msg, _ in batch}
            with contextlib.suppress(Exception):
                await self.queues.delete(self.queue, [by_id[i] for i in delete])

    @property
    def _fifo(self) -> bool:
        q = self.queues.service.queues.get(self.queue)
        return bool(q and q.fifo)


def _fifo_order(batch: list[tuple[Message, dict[str, Any]]], failed: set[str], delete: list[str]) -> list[str]:
    """Of a FIFO batch's successes, only those before their group's first failure."""
    blocked: set[str | None] = set()
    keep_out: set[str] = set()
    for msg, _ in batch:
        if msg.id in failed:
            blocked.add(msg.group)
        elif msg.group in blocked:
            keep_out.add(msg.id)
    return [i for i in delete if i not in keep_out]
