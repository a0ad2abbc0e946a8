"""rapid.cluster.leases without a NATS server: ``stop`` ends the renewing round, whenever
the cancellation lands.

A renewal's answer comes back from the link's thread at any moment. When ``stop`` cancels
the round just after that answer arrived and before the round resumed, the round must
still end: through ``asyncio.wait_for`` (Python 3.11) it returned the answer instead, the
round went on for ever, ``stop`` waited for it, and a node holding a lease did not exit on
SIGTERM. The window is made here on purpose: the renewal (a KV update on the link's loop)
has the daemon's loop call ``stop`` only once its answer is on the way there.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from rapid.cluster.lease_rules import Lease
from rapid.cluster.leases import Leases
from rapid.cluster.link import Link


class _Host:
    """What Leases asks of the host: no pools, so no instance holds a lease."""

    retired: list[Any] = []

    def __init__(self) -> None:
        self.reserved: dict[str, int] = {}

    def pools_of(self, name: str) -> list[Any]:
        return []

    def set_reserved(self, name: str, held: int) -> None:
        self.reserved[name] = held


def test_stop_ends_the_round_even_when_cancelled_as_a_renewal_answers() -> None:
    link = Link("nats://127.0.0.1:1", "test")  # never connected: the link's loop alone
    try:
        asyncio.run(_stop_as_a_renewal_answers(link))
    finally:
        link.close()


async def _stop_as_a_renewal_answers(link: Link) -> None:
    daemon_loop = asyncio.get_running_loop()
    leases = Leases(link, "node-a", _Host(), lambda name: 1, lambda text: None)  # type: ignore[arg-type]
    leases.held = {"fn": {0: Lease(0, 7, time.monotonic())}}
    answered = threading.Event()
    stopping: list[asyncio.Task[None]] = []
    renewals: list[int] = []

    def stop_once_answered() -> None:  # on the daemon's loop, queued before the answer
        answered.wait(5)  # now the answer is queued on this loop too, right behind this
        stopping.append(daemon_loop.create_task(leases.stop()))

    class KV:
        async def update(self, key: str, value: bytes, last: int) -> int:  # on the link's loop
            renewals.append(last)
            if len(renewals) == 1:
                task = asyncio.current_task()
                assert task is not None
                task.add_done_callback(lambda _: answered.set())  # after the link hands the answer over
                daemon_loop.call_soon_threadsafe(stop_once_answered)
            return last + 1

    leases._kv = KV()
    leases._task = daemon_loop.create_task(leases._tending())
    deadline = time.monotonic() + 10
    while not stopping and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert stopping, "the lease was never renewed"
    done, _ = await asyncio.wait(stopping, timeout=5)
    assert done, "Leases.stop did not return: its renewing round went on after it was cancelled"
    assert leases._task is None and leases.held == {}
    await asyncio.sleep(1.5)  # more than a renewing period: no round runs any more
    assert renewals == [7]
