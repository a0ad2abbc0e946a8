"""Every event source mapping's poller, started, changed and stopped as the mappings change.

Theory of operation
-------------------
The API writes a mapping in a transitional state (``Creating``, ``Updating``, ``Deleting``)
and calls ``settle_soon``; one task per mapping (``_settle``) then stops the mapping's old
poller, if any (its in-flight batches are cancelled: their messages come back after the
visibility timeout, their records are read again from the checkpoint, at least once), and
starts the new one if the mapping is enabled, then writes ``Enabled`` or ``Disabled``; a
``Deleting`` mapping is removed with its checkpoints. Changes to one mapping are carried out
in order. At start-up (``start``) every stored mapping settles the same way, so a restart
resumes each one as it was, and a delete or an update cut short by a kill is finished.

An SQS mapping is a ``SqsPoller``; a Kinesis mapping is a ``StreamPoller`` (one task per
shard).

Each mapping's counters (``Stats``) are loaded from the store at start and written back
once a second while they change, and when the pollers stop: ``rapid queue --data-dir``
reads them there, and they count across restarts (a ``kill -9`` can lose the last second's).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import msgspec

from rapid.host.host import Host
from rapid.queues.sqs_live import LiveQueues
from rapid.registry.mappings import Mapping, MappingStore
from rapid.registry.registry import Registry
from rapid.sources.invoker import Invoker
from rapid.sources.kinesis_poller import StreamPoller
from rapid.sources.sqs_poller import SqsPoller
from rapid.sources import stats as stats_records
from rapid.sources.stats import Stats
from rapid.streams.kinesis_api import KinesisAPI

Poller = SqsPoller | StreamPoller
FLUSH_SECONDS = 1.0  # how often changed counters are written to the store


class Pollers:
    def __init__(self, store: MappingStore, host: Host, registry: Registry, queues: LiveQueues,
                 streams: KinesisAPI, say: Callable[[str], None], events: Any = None) -> None:
        self.store = store
        self.host = host
        self.registry = registry
        self.queues = queues
        self.streams = streams
        self.say = say
        self.events = events  # the async dispatcher: OnFailure to a function
        self.invoker = Invoker(host)
        self.running: dict[str, Poller] = {}
        self._written = {uuid: body for uuid, body in store.stats().items() if uuid in store.mappings}
        self.stats: dict[str, Stats] = {uuid: stats_records.decode(body) for uuid, body in self._written.items()}
        self._flusher: asyncio.Task[None] | None = None
        self._settling: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._stopped = False

    def __repr__(self) -> str:
        return f"<Pollers {len(self.running)} running of {len(self.store.mappings)}>"

    def start(self) -> None:
        for uuid in sorted(self.store.mappings):
            self.settle_soon(uuid)
        self._flusher = asyncio.get_running_loop().create_task(self._flush_every(FLUSH_SECONDS))

    async def _flush_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - figures must not stop the pollers
                self.say(f"event source mappings: could not write their figures: {exc}")

    def flush(self) -> None:
        """Write every mapping's counters that changed since they were last written."""
        for uuid, st in list(self.stats.items()):
            body = stats_records.encode(st)
            if self._written.get(uuid) != body and uuid in self.store.mappings:
                self.store.put_stats(uuid, body)
                self._written[uuid] = body

    def settle_soon(self, uuid: str) -> None:
        if self._stopped:
            return
        if uuid in self._settling:
            self._again.add(uuid)
            return
        task = asyncio.get_running_loop().create_task(self._settle(uuid))
        self._settling[uuid] = task

    async def _settle(self, uuid: str) -> None:
        try:
            while True:
                self._again.discard(uuid)
                await self._carry_out(uuid)
                if uuid not in self._again:
                    return
        except Exception as exc:  # noqa: BLE001 - one mapping's trouble must not stop the others
            self.say(f"event source mapping {uuid}: {exc!r}")
        finally:
            self._settling.pop(uuid, None)

    async def _carry_out(self, uuid: str) -> None:
        old = self.running.pop(uuid, None)
        if old is not None:
            await old.stop()
        m = self.store.mappings.get(uuid)
        if m is None:
            return
        if m.state == "Deleting":
            self.store.delete(uuid)
            self.stats.pop(uuid, None)
            self._written.pop(uuid, None)
            return
        if m.enabled:
            poller = self._poller(m)
            self.running[uuid] = poller
            poller.start()
        state = "Enabled" if m.enabled else "Disabled"
        current = self.store.mappings.get(uuid)
        if current is not None and current.state not in ("Deleting",) and current.state != state:
            self.store.put(msgspec.structs.replace(current, state=state))

    def _poller(self, m: Mapping) -> Poller:
        stats = self.stats.setdefault(m.uuid, Stats())
        if m.kind == "sqs":
            return SqsPoller(m, self.queues, self.invoker, stats, lambda: self._reserved(m.function),
                             self.host.max_concurrency)
        return StreamPoller(m, self.streams, self.queues, self.invoker, stats, self.store, self.events)

    def _reserved(self, name: str) -> int | None:
        fs = self.registry.settings.get(name)
        if fs is not None:
            return fs.reserved
        fn = self.host.functions.get(name)
        return fn.reserved if fn is not None else None

    async def stop(self) -> None:
        """Before the host stops: no new batches; the running ones are cancelled."""
        self._stopped = True
        if self._flusher is not None:
            self._flusher.cancel()
        for task in list(self._settling.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for poller in list(self.running.values()):
            await poller.stop()
        self.running.clear()
        self.flush()
