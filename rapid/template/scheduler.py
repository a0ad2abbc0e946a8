"""``Schedule`` events: asynchronous invokes on time, with EventBridge's scheduled event.

Theory of operation
-------------------
Each ``Job`` (one ``Schedule`` or ``ScheduleV2`` event of a template function) has a task
that sleeps until the job's next firing (``rapid.core.schedules``: ``rate``, ``cron``,
``at``), then invokes the function asynchronously through the Invoke API (``Event``: the
event is stored durably and retried as any async event), and sleeps again. ``replace``
swaps the whole set when the template is applied again; a job whose expression, target and
input did not change keeps its task, so a re-apply does not restart its rate.

The event is what EventBridge sends: ``version`` "0", ``id``, ``detail-type`` "Scheduled
Event", ``source`` "aws.events", ``account``, ``time`` (the scheduled time, UTC, to the
second), ``region``, ``resources`` (the rule's ARN) and ``detail`` {}; or the event's
``Input`` (a JSON text) instead, as a rule with an input target sends. ``ScheduleV2``
(EventBridge Scheduler) sends ``Input`` or ``{}``.

``time_scale`` (the ``schedule_time_scale`` setting, for tests) runs the schedule's clock
faster: with 0.01, a minute of schedule passes in 0.6 s of real time.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rapid.core import schedules

UTC = timezone.utc


@dataclass(frozen=True)
class Job:
    rule: str
    function: str
    qualifier: str | None
    expression: str
    timezone: str = "UTC"
    input: Any = None
    scheduler: bool = False  # ScheduleV2 (EventBridge Scheduler)


def scheduled_event(job: Job, when: datetime, region: str, account: str) -> bytes:
    if job.input is not None:
        return (job.input if isinstance(job.input, str) else json.dumps(job.input)).encode()
    if job.scheduler:
        return b"{}"
    return json.dumps({
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": account, "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
        "resources": [f"arn:aws:events:{region}:{account}:rule/{job.rule}"], "detail": {},
    }).encode()


Invoke = Callable[[str, str | None, bytes], Awaitable[None]]


class Scheduler:
    def __init__(self, invoke: Invoke, say: Callable[[str], None], region: str, account: str,
                 time_scale: float = 1.0) -> None:
        self.invoke = invoke
        self.say = say
        self.region, self.account = region, account
        self.time_scale = time_scale
        self._epoch_real = time.time()
        self.fired = 0
        self._tasks: dict[Job, asyncio.Task[None]] = {}

    def now(self) -> datetime:
        """The schedules' clock: real time, run ``1 / time_scale`` times faster since start."""
        real = time.time()
        return datetime.fromtimestamp(self._epoch_real + (real - self._epoch_real) / self.time_scale, UTC)

    def replace(self, jobs: list[Job]) -> None:
        wanted = set(jobs)
        for job in list(self._tasks):
            if job not in wanted:
                self._tasks.pop(job).cancel()
        for job in jobs:
            if job not in self._tasks:
                self._tasks[job] = asyncio.get_running_loop().create_task(self._run(job))

    async def _run(self, job: Job) -> None:
        schedule = schedules.parse(job.expression, job.timezone)
        if isinstance(schedule, schedules.Rate):
            schedule = schedule.anchored(self.now())
        at = self.now()
        while True:
            nxt = schedule.next_after(at)
            if nxt is None:
                return
            delay = (nxt - self.now()).total_seconds() * self.time_scale
            if delay > 0:
                await asyncio.sleep(delay)
            at = nxt
            try:
                await self.invoke(job.function, job.qualifier, scheduled_event(job, nxt, self.region, self.account))
                self.fired += 1
            except Exception as exc:  # noqa: BLE001 - one failed firing must not end the schedule
                self.say(f"schedule {job.rule}: the invoke of {job.function} failed: {exc}")

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __repr__(self) -> str:
        return f"<Scheduler jobs={len(self._tasks)} fired={self.fired} scale={self.time_scale}>"
