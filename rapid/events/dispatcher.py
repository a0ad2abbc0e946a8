"""The dispatcher: runs durably queued events on their functions, as Lambda's poller does.

Life of an event
----------------
1. ``accept`` (the Invoke API's ``Event`` branch) hands the event to the store and resolves
   its future once the store says it is durable (the Invoke API then answers 202). If the function has room and nothing older is
   waiting, the event is stored *running* (its first attempt counted in the same commit) and
   submitted as soon as the commit returns: one commit on the fast path.
2. Otherwise it waits in its function's *lane*, a heap ordered by due time. ``_pump`` takes
   due events while the function has room, marks them running in the store (each attempt is
   counted durably *before* it runs, so a crash can never hide an attempt) and submits them.
3. When the invocation settles, ``policy.decide`` says what next: finish (record to the
   destination, dead letter, delete, all in one commit), retry later (rescheduled in the
   store, then back in the lane), or, while the daemon stops, nothing: the event stays on
   disk for the next start.

Sharing a function with synchronous invokes and event source mappings
---------------------------------------------------------------------
How many attempts may start is the host's one admission rule (``rapid.core.admission``,
asked through ``Host.gate``), the same that admits synchronous invokes and the pollers'
batches: async attempts take units of the function's concurrency (its reservation, or the
account's unreserved pool), at most ``async_concurrency`` at once (server setting, default
16) and never the last unit of a limit above 1, so a function with reserved concurrency 2
always keeps room for one synchronous caller. ``_pump`` takes a ticket for each attempt it
starts (before the store marks it running, so nothing can take that room meanwhile) and the
ticket is given back when the attempt settles. A lane with due events and no room does not
poll: it asks the gate to call it back when a unit of its function's limit comes free. A
waiting event stays queued, durable, until it runs or passes its maximum event age
(``EventAgeExceeded``), as a throttled event does on AWS. A throttle can still happen below
the rule (the pool has an instance that is still dying in its place): the host answers the
attempt 429, the whole function's async work backs off (1 s, 2 s, ... 5 min, time-scaled),
the event is retried after its own backoff until its maximum age, and the throttled attempt
counts in ``approximateInvokeCount``, as AWS counts it.

Reserved concurrency 0: the rule throttles every attempt, and the policy sends the event
to the dead-letter / on-failure target at once, as AWS does.

After a crash
-------------
The store queues again every event that was running when the daemon died and counts them
(``rapid_async_redelivered_total``, and a line on stderr at start): these are the possible
duplicates of at-least-once delivery. Nothing else can be duplicated, except a file record
whose fsync completed just before the crash and whose event's deletion did not; that event
was running, so it is counted too. On SIGTERM, an attempt that the shutdown cuts short (its
runtime is stopped after ``shutdown_timeout``) goes back to the queue uncounted as an
attempt and counted as a redelivery, with a line on stderr.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from rapid.core.admission import Ticket, Work
from rapid.core.errors import ServiceError, throttled
from rapid.core.invocation import Invocation, InvocationEvent, Outcome
from rapid.core.naming import Target, function_arn, trace_id
from rapid.events import policy
from rapid.events.destinations import Response
from rapid.events.lanes import Lane, Wakeup
from rapid.events.outbox import Outbox
from rapid.events.say import say
from rapid.events.settings import Settings
from rapid.events.store import Entry, EventStore, Finished, Recovery, Snapshot, call

if TYPE_CHECKING:
    from rapid.host.function import Function
    from rapid.host.host import Host

BLOCKED_POLL = 1.0  # at the latest, a lane with no room looks again (the gate calls it back sooner)
_encode = msgspec.json.Encoder().encode


class Dispatcher:
    def __init__(self, host: Host, store: EventStore, recovery: Recovery, *, data_dir: str, scratch: bool) -> None:
        self.host = host
        self.store = store
        self.data_dir = data_dir
        self.scratch = scratch
        cfg = host.config
        self.scale = float(cfg.async_time_scale)
        self.region, self.account = host.region, cfg.account_id
        self.lanes: dict[str, Lane] = {}
        self.stopping = False
        self._recovery: Recovery | None = recovery
        self._loop = asyncio.get_running_loop()
        self.settings = Settings(host, store, dict(recovery.configs), self._loop)
        self.outbox = Outbox(store, self._loop, self.scale)
        self.wakeup = Wakeup(self._loop, self._pump)
        self._cut: dict[str, int] = {}  # attempts cut short by the shutdown, per function
        self.deleted: set[str] = set()  # functions deleted through the API while this daemon runs

    # -- life -----------------------------------------------------------------------------

    def start(self) -> None:
        recovery, self._recovery = self._recovery, None
        assert recovery is not None
        self.store.start(self._loop)
        self.settings.load()
        unknown: dict[str, int] = {}
        for entry in recovery.entries:
            if entry.function not in self.host.functions:
                unknown[entry.function] = unknown.get(entry.function, 0) + 1
            self._lane(entry.function).heap.append(entry)
        for lane in self.lanes.values():
            heapq.heapify(lane.heap)
        for name, n in sorted(unknown.items()):
            say(f"{n} queued event(s) for function {name!r}, which is not configured, stay on disk")
        redelivered = sum(recovery.redelivered.values())
        if redelivered:
            say(f"{redelivered} event(s) were running when the previous daemon stopped; they run again "
                "(possible duplicates, counted in rapid_async_redelivered_total)")
        queued = len(recovery.entries)
        if queued:
            say(f"{queued} queued event(s) recovered from {self.data_dir}")
        self.outbox.start(recovery.deliveries)
        self.wakeup.soon()

    def stop_dispatching(self) -> None:
        """Start nothing new (the daemon is stopping); what runs may still finish."""
        self.stopping = True
        self.wakeup.stop()

    async def close(self) -> None:
        """After the host has shut down: put every attempt that did not finish back in the
        queue, stop deliveries, commit everything, release the data dir."""
        self.stop_dispatching()
        cut = dict(self._cut)
        await call(self._loop, self.store.release_running, cut)
        if cut:
            say(f"{sum(cut.values())} running attempt(s) were cut short by the shutdown; they run again at the "
                "next start (possible duplicates, counted in rapid_async_redelivered_total)")
        await self.outbox.close()
        snap: Snapshot = await call(self._loop, self.store.snapshot)
        await asyncio.to_thread(self.store.close)
        queued = sum(snap.depth.values())
        if queued and self.scratch:
            say(f"{queued} queued event(s) are lost with the temporary data dir; use --data-dir to keep them")
        elif queued:
            say(f"{queued} queued event(s) stay on disk in {self.data_dir}")

    # -- accepting ------------------------------------------------------------------------

    def accept(
        self, fn: Function, qualifier: str | None, rid: str, payload: bytes, trace: str | None
    ) -> asyncio.Future[str]:
        """Store the event; the future gives the version it will run once it is durable, or
        fails with a ``ServiceError`` (500) when it could not be stored. The Invoke API
        renders that (``rapid.api.event_answer``: 202, or the error)."""
        now = time.time()
        entry = Entry(0, rid, fn.name, qualifier or "", trace or trace_id(now), now, now)
        lane = self._lane(fn.name)
        fast = (
            not self.stopping and not lane.heap and lane.paused_until <= now and fn.reserved != 0
            and self._room(fn, lane) > 0
        )
        ticket: Ticket | None = None
        if fast:
            lane.inflight += 1
            entry.attempts = 1
            ticket = self.host.gate.take(fn, Work.ASYNC)
        fut: asyncio.Future[str] = self._loop.create_future()
        version = fn.version

        def done(_: object, error: BaseException | None) -> None:
            if error is not None:
                if fast:
                    lane.inflight -= 1
                if ticket is not None:
                    self.host.gate.give_back(ticket)
                if not fut.done():
                    fut.set_exception(ServiceError(
                        500, "ServiceException", f"The event could not be stored: {error}", kind="Service"))
                return
            if not fut.done():
                fut.set_result(version)
            if ticket is not None:
                if not self.stopping:
                    self._run(fn, lane, entry, payload, ticket)
                else:
                    self.host.gate.give_back(ticket)
            else:
                heapq.heappush(lane.heap, entry)
                self.wakeup.soon()

        self.store.enqueue(entry, payload, fast, done)
        return fut

    # -- dispatching ----------------------------------------------------------------------

    def _lane(self, name: str) -> Lane:
        lane = self.lanes.get(name)
        if lane is None:
            lane = self.lanes[name] = Lane(name)
        return lane

    def _room(self, fn: Function, lane: Lane) -> int:
        """How many more async attempts ``fn`` may take now: the host's admission rule."""
        if fn.reserved == 0:
            return len(lane.heap) + 1  # the rule throttles every attempt: each goes to its failure target
        return self.host.gate.room(fn, Work.ASYNC)

    def _watch(self, fn: Function, lane: Lane) -> None:
        if not lane.watching:
            lane.watching = True
            self.host.gate.watch(fn, lambda: self._watched(lane))

    def _watched(self, lane: Lane) -> None:
        lane.watching = False
        self.wakeup.soon()

    def _pump(self) -> None:
        if self.stopping or self.host.stopping:
            return
        now = time.time()
        wake = float("inf")
        for lane in self.lanes.values():
            heap = lane.heap
            if not heap:
                continue
            fn = self.host.functions.get(lane.name)
            if fn is None:
                if lane.name in self.deleted:  # retried attempts of a function deleted meanwhile
                    self.function_deleted(lane.name)
                continue
            if lane.paused_until > now:
                wake = min(wake, lane.paused_until)
                continue
            room = self._room(fn, lane)
            batch: list[Entry] = []
            while heap and heap[0].due_at <= now:
                if policy.expired(heap[0].enqueued_at, self.settings.limits(heap[0]), now):
                    self._finish(heapq.heappop(heap), policy.EVENT_AGE_EXCEEDED, None, None)
                    continue
                if len(batch) >= room:
                    break
                batch.append(heapq.heappop(heap))
            if heap:
                if heap[0].due_at > now:
                    wake = min(wake, heap[0].due_at)
                else:
                    # No room: other work holds the function's concurrency. The gate calls
                    # back when a unit comes free (and the expiry of waiting events is
                    # looked at once in a while).
                    self._watch(fn, lane)
                    wake = min(wake, now + BLOCKED_POLL)
            if batch:
                lane.inflight += len(batch)
                tickets = [self.host.gate.take(fn, Work.ASYNC) for _ in batch]
                self.store.mark_started(batch, self._started_cb(fn, lane, batch, tickets))
        if wake < float("inf"):
            self.wakeup.at(wake)

    def _started_cb(self, fn: Function, lane: Lane, batch: list[Entry],
                    tickets: list[Ticket]) -> Callable[[Any, BaseException | None], None]:
        gate = self.host.gate

        def done(payloads: list[bytes | None] | None, error: BaseException | None) -> None:
            if error is not None or payloads is None:
                say(f"could not start events of {fn.name}: {error}")
                lane.inflight -= len(batch)
                for ticket in tickets:
                    gate.give_back(ticket)
                retry_at = time.time() + 1.0
                for entry in batch:
                    entry.due_at = retry_at
                    heapq.heappush(lane.heap, entry)
                self.wakeup.at(retry_at)
                return
            for entry, payload, ticket in zip(batch, payloads, tickets):
                if payload is None:  # gone from the store (cannot happen with one daemon)
                    lane.inflight -= 1
                    gate.give_back(ticket)
                    continue
                entry.attempts += 1
                if self.stopping:
                    gate.give_back(ticket)
                    continue  # released by close()
                self._run(fn, lane, entry, payload, ticket)

        return done

    def _run(self, fn: Function, lane: Lane, entry: Entry, payload: bytes, ticket: Ticket) -> None:
        gate = self.host.gate
        try:  # each attempt picks its version: an alias's weights apply per attempt
            fn = self.host.resolve(Target(fn.name, entry.qualifier or None))
        except ServiceError as exc:
            gate.give_back(ticket)
            self._settled(fn, lane, entry, payload, _refused(entry, exc))
            return
        if fn.reserved == 0:  # the admission rule throttles it
            gate.give_back(ticket)
            self._settled(fn, lane, entry, payload, _refused(entry, throttled(
                "ReservedFunctionConcurrentInvocationLimitExceeded")))
            return
        inv = Invocation(
            request_id=entry.request_id,
            payload=payload,
            function_arn=function_arn(self.region, self.account, fn.name, entry.qualifier or None),
            timeout=fn.timeout,
            trace_id=entry.trace_id,
        )
        inv.on_settled = lambda inv: self._settled(fn, lane, entry, payload, inv)
        gate.bind(ticket, inv)
        try:
            fn.submit(inv)
        except Exception as exc:  # noqa: BLE001 - a bug below must not lose the event
            import traceback

            traceback.print_exc()
            if not inv.settled:
                error = ServiceError(500, "ServiceException", f"rapid could not run the event: {exc}", kind="Service")
                inv.settle(InvocationEvent.FAIL, Outcome(b"", status="error", service_error=error))

    def _settled(self, fn: Function, lane: Lane, entry: Entry, payload: bytes, inv: Invocation) -> None:
        lane.inflight -= 1
        outcome = inv.outcome
        assert outcome is not None
        svc = outcome.service_error
        stopping = self.stopping or self.host.stopping
        result = policy.classify(svc.status if svc is not None else None, outcome.function_error, stopping)
        if svc is not None:
            response = Response(svc.status, _encode(svc.body()))
        else:
            response = Response(200, outcome.body, "Unhandled" if outcome.function_error else None)
        now = time.time()
        limits = self.settings.limits(entry)
        decision = policy.decide(
            result, now=now, enqueued_at=entry.enqueued_at, errors=entry.errors, throttles=entry.throttles,
            limits=limits, reserved_zero=fn.reserved == 0,
        )
        if result in ("throttled", "system_error") and fn.reserved != 0:
            lane.streak += 1
            lane.paused_until = now + policy.backoff(lane.streak) * self.scale
        elif result != "interrupted":
            lane.streak = 0
        if isinstance(decision, policy.Succeed):
            self._finish(entry, policy.SUCCESS, response, payload)
        elif isinstance(decision, policy.GiveUp):
            self._finish(entry, decision.condition, response, payload)
        elif isinstance(decision, policy.Retry):
            entry.errors, entry.throttles, entry.due_at = decision.errors, decision.throttles, decision.at

            def requeued(_: object, error: BaseException | None) -> None:
                if error is not None:
                    say(f"could not reschedule {entry.request_id}: {error}")
                heapq.heappush(lane.heap, entry)
                self.wakeup.soon()

            self.store.reschedule(entry, decision.at, decision.reason, response, requeued)
        elif svc is None:  # Release of an attempt that ran and was cut short by the shutdown
            self._cut[entry.function] = self._cut.get(entry.function, 0) + 1
        # Release: close() puts the event back in the queue on disk.
        self.wakeup.soon()

    def function_deleted(self, name: str) -> None:
        """A function deleted through the API: its queued events go to its on-failure
        destination if it has one, else they are dropped; either way counted as failed
        (``RetriesExhausted``). Its event-invoke-configs go with it."""
        self.deleted.add(name)
        lane = self.lanes.get(name)
        if lane is not None:
            entries, lane.heap = lane.heap, []
            for entry in entries:
                self._finish(entry, policy.RETRIES_EXHAUSTED, None, None)
        for function, qualifier in [key for key in self.configs if key[0] == name]:
            self.put_config(function, qualifier, None)

    def function_created(self, name: str) -> None:
        self.deleted.discard(name)

    def offer(self, entries: list[Entry]) -> None:
        """Events this node takes over, already in its store (in a cluster, a dead node's:
        ``rapid.cluster.adoption``): queued in their lanes like recovered ones."""
        for entry in entries:
            heapq.heappush(self._lane(entry.function).heap, entry)
        self.wakeup.soon()

    # -- finishing ------------------------------------------------------------------------

    def _finish(self, entry: Entry, condition: str, response: Response | None, payload: bytes | None) -> None:
        plan = self.settings.plan(entry, condition, response, payload)

        def done(result: Finished | None, error: BaseException | None) -> None:
            if error is not None or result is None:
                say(f"could not complete {entry.request_id}: {error}; it is retried")
                entry.due_at = time.time() + 1.0
                heapq.heappush(self._lane(entry.function).heap, entry)
                self.wakeup.at(entry.due_at)
                return
            for problem in result.problems:
                say(f"destination failed: {problem}")
            for new in result.new_entries:
                heapq.heappush(self._lane(new.function).heap, new)
            if result.new_entries:
                self.wakeup.soon()
            if result.deliveries:
                self.outbox.add(result.deliveries)

        self.store.finish(plan, done)

    # -- configuration --------------------------------------------------------------------

    @property
    def configs(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The event-invoke-configs in force, by (function, qualifier)."""
        return self.settings.configs

    def put_config(self, function: str, qualifier: str, body: dict[str, Any] | None) -> asyncio.Future[None]:
        """Set (or with None delete) an event-invoke-config; the future resolves once durable."""
        return self.settings.put_config(function, qualifier, body)

    def snapshot(self) -> asyncio.Future[Snapshot]:
        return call(self._loop, self.store.snapshot)


def _refused(entry: Entry, exc: ServiceError) -> Invocation:
    """A settled invocation for an attempt that never ran: its target is gone (its alias or
    version deleted), or the admission rule throttles it (reserved concurrency 0)."""
    inv = Invocation(request_id=entry.request_id, payload=b"", function_arn="", timeout=1.0, trace_id=entry.trace_id)
    inv.settle(InvocationEvent.FAIL, Outcome(b"", status="error", service_error=exc))
    return inv

