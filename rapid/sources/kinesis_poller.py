"""A Kinesis event source mapping's poller: one task per shard, one batch at a time, in order.

Theory of operation
-------------------
A shard's task reads after its checkpoint (``KinesisAPI.read``, in-process), waits for a
write to the stream when there is nothing (``KinesisAPI.on_commit``, and once a second at
the latest, as Lambda polls a shard), gathers up to BatchSize records (waiting out the
batching window for more when it has fewer), and runs the batch through
``stream_retry``: records past MaximumRecordAgeInSeconds are given up; after each invoke
the plan says where the checkpoint moves, what to retry next (the same records, the halves
of a bisected batch, the records from the lowest reported failure) and what to give up.
Nothing further is read until the batch is settled, so a failing batch blocks only its
shard. A retry waits 0.1 s doubling to 5 s. A batch that cannot be invoked (its function
deleted: the mapping outlives it, as on AWS) is tried again once a second without counting
as an attempt, so nothing is lost; only MaximumRecordAgeInSeconds gives its records up
(to OnFailure), as Lambda gives up records whose function could not be invoked. The
mapping's LastProcessingResult says ``PROBLEM: Function not found.`` meanwhile.

The checkpoint (the last sequence number done) is written to the registry's store each time
it moves, before the next read, so a restart resumes after it: at least once. Before a read
is sent to the function its last sequence number is written beside the checkpoint too: after
a restart the records up to it that run again are counted (``redelivered``), the possible
duplicates of at-least-once delivery. A batch
given up goes to the OnFailure destination as AWS's ``KinesisBatchInfo`` record (a
built-in SQS queue, or a function invoked asynchronously), or is only counted without one.

FilterCriteria match the record with its data decoded (``filters.kinesis_view``); records
they drop are not sent and the checkpoint moves past them.

TumblingWindowInSeconds (``tumbling.Window``): batches stop at window boundaries, carry the
window and the state the function returned, and a final invocation closes each window. An
answer without a ``state`` object fails the batch (AWS's rule); a state over 1 MB ends the
window early (a final invocation with ``isWindowTerminatedEarly``, then the same window
goes on with a fresh state). The open window and its state are written with the shard's
checkpoint, in the same record, so a restart resumes the window where the checkpoint is.

ParallelizationFactor N (``_lanes``): what one read gives is split by partition key into N
lanes run at once, each one batch at a time in order (so order per key holds); the next
read waits for every lane, and the checkpoint moves only then. Tumbling windows run one
lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import deque
from typing import Any

import msgspec

from rapid.core.naming import Target, function_arn
from rapid.queues.sqs_live import LiveQueues
from rapid.registry.mappings import Mapping, MappingStore
from rapid.sources import records as shapes
from rapid.sources import filters, responses, stream_retry
from rapid.sources.invoker import FUNCTION_GONE, Invoker, Result
from rapid.sources.stats import Stats
from rapid.sources.tumbling import Window
from rapid.streams.kinesis import KinesisError, Record, Stream, hash_key
from rapid.streams.kinesis_api import KinesisAPI
from rapid.wake import wait_set

POLL = 1.0
_encode = msgspec.json.Encoder().encode


class StreamPoller:
    def __init__(self, mapping: Mapping, streams: KinesisAPI, queues: LiveQueues, invoker: Invoker, stats: Stats,
                 store: MappingStore, events: Any) -> None:
        self.mapping = mapping
        self.streams = streams
        self.queues = queues
        self.invoker = invoker
        self.stats = stats
        self.store = store
        self.events = events
        self.stream = mapping.source_arn.rsplit("/", 1)[-1]
        self.policy = stream_retry.Policy(mapping.bisect, mapping.max_retries, mapping.max_age)
        self.report = "ReportBatchItemFailures" in mapping.response_types
        self.patterns = [filters.parse_pattern(p) for p in mapping.filters]
        self.windows: dict[str, Window] = {}  # TumblingWindowInSeconds: the open window per shard
        self.tasks: list[asyncio.Task[None]] = []
        self.positions: dict[str, int] = {}
        self.inflight: dict[str, int | None] = {}  # per shard: the last sequence number of the read being run
        self.suspect: dict[str, int] = {}  # per shard: records up to this ran before a restart
        self._wakeups: list[asyncio.Event] = []
        self._region = streams.service.region
        self._account = streams.service.account

    def __repr__(self) -> str:
        return f"<StreamPoller {self.mapping.uuid} {self.stream} shards={len(self.tasks)}>"

    def start(self) -> None:
        """The shards' positions are taken here, before the mapping is shown Enabled: with
        LATEST, a record put after that is read."""
        self.streams.on_commit.append(self._wake)
        s = self.streams.service.streams.get(self.stream)
        if s is not None:
            self._shards(s)
        else:
            self.tasks.append(asyncio.get_running_loop().create_task(self._run()))

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.streams.on_commit.remove(self._wake)
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def _wake(self) -> None:
        for event in self._wakeups:
            event.set()

    async def _run(self) -> None:
        """The stream does not exist (yet, or again): wait for it."""
        s = self.streams.service.streams.get(self.stream)
        while s is None:
            await asyncio.sleep(POLL)
            s = self.streams.service.streams.get(self.stream)
        self._shards(s)

    def _shards(self, s: Stream) -> None:
        done = self.store.positions(self.mapping.uuid)
        for shard in s.shards:
            after, window, inflight = done.get(shard.id, (None, None, None))
            if inflight is not None and after is not None and inflight > after:
                self.suspect[shard.id] = inflight
            if window and self.mapping.tumbling_window:
                self.windows.setdefault(shard.id, Window(self.mapping.tumbling_window)).restore(window)
            if after is None:
                after = self._start_at(s, shard.index)
                self.store.checkpoint(self.mapping.uuid, shard.id, after)  # LATEST means now, also after a restart
            self.tasks.append(asyncio.get_running_loop().create_task(self._shard(shard.id, after)))

    def _start_at(self, s: Stream, index: int) -> int:
        shard = s.shards[index]
        m = self.mapping
        if m.starting_position == "LATEST":
            return shard.seqs[-1] if shard.seqs else shard.base
        if m.starting_position == "AT_TIMESTAMP" and m.starting_timestamp is not None:
            before = [r.seq for r in shard.records if r.arrival < m.starting_timestamp]
            return before[-1] if before else shard.base
        return shard.base

    async def _shard(self, shard_id: str, after: int) -> None:
        m = self.mapping
        wakeup = asyncio.Event()
        self._wakeups.append(wakeup)
        self.positions[shard_id] = after
        loop = asyncio.get_running_loop()
        while True:
            wakeup.clear()
            try:
                got, behind = self.streams.read(self.stream, shard_id, after, m.batch_size)
            except KinesisError as exc:  # the stream was deleted: wait for it to come back
                self.stats.last_result = f"PROBLEM: {exc.message}"
                await asyncio.sleep(POLL)
                continue
            self.stats.iterator_age_ms = behind
            if got and len(got) < m.batch_size and m.window:
                opened = loop.time()
                while len(got) < m.batch_size and loop.time() < opened + m.window:
                    await wait_set(wakeup, opened + m.window - loop.time())
                    wakeup.clear()
                    with contextlib.suppress(KinesisError):
                        got, behind = self.streams.read(self.stream, shard_id, after, m.batch_size)
            tw = self.windows.setdefault(shard_id, Window(m.tumbling_window)) if m.tumbling_window else None
            if tw is not None and (tw.ended_by(got) or (not got and tw.due(time.time()))):
                await self._final(shard_id, tw)
            if not got:
                await wait_set(wakeup, POLL)
                continue
            if tw is not None:
                got = tw.take(got)  # a batch never spans two windows
            keep = [r for r in got if self._passes(shard_id, r)] if self.patterns else got
            self.stats.filtered += len(got) - len(keep)
            self._in_flight(shard_id, keep)
            if keep and m.parallelization > 1 and tw is None:
                await self._lanes(shard_id, keep)
            elif keep:  # what the filters drop counts as done: the checkpoint moves past it
                await self._batch(shard_id, keep, tw)
            after = max(self.positions[shard_id], got[-1].seq)
            self.inflight[shard_id] = None
            self._checkpoint(shard_id, after)

    def _record(self, shard_id: str, r: Record) -> dict[str, Any]:
        return shapes.kinesis_record(r, shard_id=shard_id, stream_arn=self.mapping.source_arn, region=self._region,
                                     identity_arn=f"arn:aws:iam::{self._account}:role/rapid-mapping")

    def _passes(self, shard_id: str, r: Record) -> bool:
        return filters.matches_any(self.patterns, filters.kinesis_view(self._record(shard_id, r)))

    def _in_flight(self, shard_id: str, records: list[Record]) -> None:
        """Before ``records`` go to the function: their end is written beside the checkpoint;
        those a daemon before a restart had sent already are counted as redelivered."""
        if not records:
            return
        suspect = self.suspect.pop(shard_id, None)
        if suspect is not None:
            self.stats.redelivered += sum(1 for r in records if r.seq <= suspect)
        self.inflight[shard_id] = records[-1].seq
        self._checkpoint(shard_id, None, window_changed=True)

    def _checkpoint(self, shard_id: str, seq: int | None, *, window_changed: bool = False) -> None:
        """Move the shard's checkpoint (with its open window, in the same record)."""
        if seq is not None and seq > self.positions[shard_id] or window_changed:
            if seq is not None and seq > self.positions[shard_id]:
                self.positions[shard_id] = seq
            tw = self.windows.get(shard_id)
            self.store.checkpoint(self.mapping.uuid, shard_id, self.positions[shard_id],
                                  tw.saved() if tw is not None else None, self.inflight.get(shard_id))

    async def _lanes(self, shard_id: str, got: list[Record]) -> None:
        """ParallelizationFactor N: the records split by partition key into N lanes (a key
        always in the same lane, in order), run at once; the checkpoint moves only when every
        lane is done, so a restart never skips a lane's unfinished records."""
        n = self.mapping.parallelization
        lanes: list[list[Record]] = [[] for _ in range(n)]
        for r in got:
            lanes[hash_key(r.partition_key) % n].append(r)
        await asyncio.gather(*(self._batch(shard_id, lane, None, checkpoints=False) for lane in lanes if lane))

    async def _final(self, shard_id: str, tw: Window, *, early: bool = False) -> None:
        """The window's last invocation: no records, its state; retried until it succeeds
        (the shard waits meanwhile, as on AWS). ``early``: its state outgrew the cap; the same
        window then goes on with ``{}``."""
        m = self.mapping
        payload = _encode({"Records": [], **tw.fields(shard_id, m.source_arn, final=True, early=early)})
        tries = 0
        while True:
            result = await self.invoker(m.function, m.qualifier, payload)
            if result.service_error is not None:  # never ran (the function is gone): not an attempt
                self.stats.last_result = FUNCTION_GONE if result.service_error.status == 404 else \
                    f"PROBLEM: {result.service_error.message}"
                await asyncio.sleep(POLL)
                continue
            self.stats.batches += 1
            if result.function_error is None:
                break
            # AWS: "If the invocation fails, your Lambda function suspends further processing
            # until a successful invocation" (MaximumRetryAttempts does not end it).
            self.stats.errors += 1
            self.stats.last_result = "PROBLEM: Function call failed"
            tries += 1
            await asyncio.sleep(min(5.0, 0.1 * 2 ** min(tries - 1, 6)))
        if early:
            tw.terminate_early()
        else:
            tw.close()
        self._checkpoint(shard_id, None, window_changed=True)

    async def _batch(self, shard_id: str, got: list[Record], tw: Window | None = None, *,
                     checkpoints: bool = True) -> None:
        m, stats = self.mapping, self.stats
        attempts = deque([stream_retry.Attempt(got)])
        last: Result | None = None
        while attempts:
            attempt: stream_retry.Attempt | None = attempts.popleft()
            assert attempt is not None
            attempt, plan = stream_retry.expire(self.policy, attempt, time.time())
            await self._carry(shard_id, plan, last, attempt.retries if attempt else 0, checkpoints)
            if attempt is None:
                continue
            if attempt.retries:
                await asyncio.sleep(min(5.0, 0.1 * 2 ** min(attempt.retries - 1, 6)))
            event = [self._record(shard_id, r) for r in attempt.records]
            extra = tw.fields(shard_id, m.source_arn, final=False) if tw is not None else {}
            last = await self.invoker(m.function, m.qualifier, _encode({"Records": event, **extra}))
            stats.throttles += last.throttles
            if last.service_error is not None:
                stats.last_result = FUNCTION_GONE if last.service_error.status == 404 else \
                    f"PROBLEM: {last.service_error.message}"
                attempts.appendleft(attempt)  # never ran: the same attempt again, not counted
                await asyncio.sleep(POLL)
                continue
            stats.batches += 1
            stats.records += len(attempt.records)
            outcome = responses.interpret(last.body, function_error=last.function_error is not None,
                                          report_failures=self.report, ids=[str(r.seq) for r in attempt.records])
            verdict = tw.read(last.body) if tw is not None and outcome.kind != "failure" else "ok"
            if verdict == "missing":  # with a tumbling window, an answer must carry its state
                outcome = responses.Outcome("failure", reason="the response has no state")
            stats.last_result = "OK" if outcome.kind == "success" else "PROBLEM: Function call failed"
            if outcome.kind != "success":
                stats.errors += 1
            if verdict == "early" and tw is not None:
                await self._final(shard_id, tw, early=True)
            plan = stream_retry.settle(self.policy, attempt, outcome)
            await self._carry(shard_id, plan, last, attempt.retries + 1, checkpoints)
            attempts.extendleft(reversed(plan.next))

    async def _carry(self, shard_id: str, plan: stream_retry.Plan, last: Result | None, invokes: int,
                     checkpoints: bool = True) -> None:
        for given_up, condition in plan.given_up:
            self.stats.given_up += len(given_up)
            await self._on_failure(shard_id, given_up, condition, last, invokes)
        if checkpoints:
            self._checkpoint(shard_id, plan.checkpoint)

    async def _on_failure(self, shard_id: str, given_up: list[Record], condition: str, last: Result | None,
                          invokes: int) -> None:
        m = self.mapping
        target = m.on_failure
        if not target:
            return
        record = shapes.kinesis_failure(
            request_id=last.request_id if last else str(uuid.uuid4()),
            function_arn=function_arn(self._region, self._account, m.function, m.qualifier), condition=condition,
            invoke_count=invokes, status=last.status if last else 200,
            function_error=last.function_error if last else None, version=last.version if last else "$LATEST",
            shard_id=shard_id, stream_arn=m.source_arn, records=given_up, now=time.time())
        body = json.dumps(record)
        try:
            if target.startswith("arn:aws:sqs:"):
                service = self.queues.service
                q = service.get(target.rsplit(":", 1)[-1])
                service.send(q, {"MessageBody": body}, time.time())
                await self.queues.resolve(self.queues.create_future(), None)
            elif self.events is not None:
                parts = target.split(":")
                name, qualifier = parts[6], (parts[7] if len(parts) > 7 else None)
                fn = self.invoker.host.resolve(Target(name, qualifier))
                await self.events.accept(fn, qualifier, str(uuid.uuid4()), body.encode(), None)
        except Exception as exc:  # noqa: BLE001 - a missing destination loses the record, as on AWS
            self.stats.last_result = f"PROBLEM: OnFailure destination {target}: {exc}"
