"""Reserved concurrency held cluster-wide: KV leases (``lease_rules`` says why they cannot
over-admit) taken, renewed and given back by this node, in the bucket ``rapid-leases``.

The local pool of a reserved function is limited to the leases this node holds
(``Host.set_reserved(name, held)``), so the pool itself refuses to start an instance no
lease covers. ``acquire`` takes one more lease before an invoke that would start an
instance; once a second, ``_tend`` renews every lease, gives back the ones no instance uses
(an instance stopped for idleness frees its lease within a second) and, if a lease lapsed,
stops the instances it covered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rapid.cluster import lease_rules
from rapid.cluster.lease_rules import Lease
from rapid.cluster.link import Link

if TYPE_CHECKING:
    from rapid.host.host import Host

BUCKET = "rapid-leases"


class Leases:
    def __init__(self, link: Link, node_id: str, host: Host, reserved_of: Callable[[str], int | None],
                 say: Callable[[str], None]) -> None:
        self.link = link
        self.node_id = node_id
        self.host = host
        self.reserved_of = reserved_of  # the function's cluster-wide reserved concurrency (registry)
        self.say = say
        self.held: dict[str, dict[int, Lease]] = {}
        self.acquiring: dict[str, int] = {}
        self.taken = 0
        self.lost = 0
        self._kv: Any = None
        self._task: asyncio.Task[None] | None = None
        self.stopped = False

    async def start(self) -> None:
        self._kv = await self.link.run(self.link.js.create_key_value(
            bucket=BUCKET, history=1, ttl=lease_rules.TTL, replicas=self.link.replicas))
        self._task = asyncio.get_running_loop().create_task(self._tending())

    def count(self, name: str) -> int:
        return len(self.held.get(name, {}))

    def limit(self, name: str) -> None:
        """The local pools of ``name`` may run as many instances as leases held."""
        if self.reserved_of(name) is not None:
            self.host.set_reserved(name, self.count(name))

    async def acquire(self, name: str) -> bool:
        """Take one more lease for ``name``; False if all N are held (here or elsewhere)."""
        reserved = self.reserved_of(name)
        if reserved is None:
            return True
        if self.stopped:
            return False  # stopping: the leases are being given back
        self.acquiring[name] = self.acquiring.get(name, 0) + 1
        try:
            held = self.held.setdefault(name, {})
            for slot in lease_rules.free_slots(reserved, set(held)):
                sent = time.monotonic()
                revision = await self.link.run(self._create(f"{name}.{slot}"))
                if revision is not None and self.stopped:  # taken while stop() gave them back
                    await self.link.run(self._release(f"{name}.{slot}", revision))
                    return False
                if revision is not None and slot not in held:
                    held[slot] = Lease(slot, revision, sent)
                    self.taken += 1
                    self.limit(name)
                    return True
            return False
        finally:
            self.acquiring[name] -= 1

    async def holders(self, name: str) -> list[str]:
        """The nodes holding ``name``'s leases now, as the KV says (most leases first)."""
        reserved = self.reserved_of(name) or 0
        keys = [f"{name}.{slot}" for slot in range(min(reserved, 256))]
        values = await self.link.run(self._read(keys))
        counts: dict[str, int] = {}
        for value in values:
            if value and value != self.node_id:
                counts[value] = counts.get(value, 0) + 1
        return sorted(counts, key=lambda node: -counts[node])

    async def _read(self, keys: list[str]) -> list[str | None]:
        async def one(key: str) -> str | None:
            try:
                entry = await self._kv.get(key)
            except Exception:  # noqa: BLE001 - no such key, or deleted: not held
                return None
            return bytes(entry.value).decode() if entry.value else None

        return list(await asyncio.gather(*(one(k) for k in keys)))

    async def _create(self, key: str) -> int | None:
        from nats.js.errors import KeyWrongLastSequenceError

        try:
            return int(await self._kv.create(key, self.node_id.encode()))
        except KeyWrongLastSequenceError:
            return None

    async def _renew(self, key: str, revision: int) -> int | None:
        from nats.js.errors import KeyWrongLastSequenceError

        try:
            return int(await self._kv.update(key, self.node_id.encode(), last=revision))
        except KeyWrongLastSequenceError:
            return None

    async def _release(self, key: str, revision: int) -> None:
        headers = {"KV-Operation": "DEL", "Nats-Expected-Last-Subject-Sequence": str(revision)}
        try:
            await self.link.js.publish(f"$KV.{BUCKET}.{key}", b"", headers=headers)
        except Exception:  # noqa: BLE001 - it expires anyway
            pass

    # -- once a second --------------------------------------------------------------------

    async def _tending(self) -> None:
        while not self.stopped:  # (as well as cancelled by stop: a round never outlives it)
            await asyncio.sleep(lease_rules.RENEW)
            try:
                await self._tend()
            except Exception as exc:  # noqa: BLE001 - next round
                self.say(f"warning: cluster leases: {exc}")

    async def _tend(self) -> None:
        for name in list(self.held):
            held = self.held[name]
            for lease in list(held.values()):
                sent = time.monotonic()
                try:
                    revision = await self.link.run(self._renew(f"{name}.{lease.slot}", lease.revision),
                                                   lease_rules.RENEW)
                except Exception:  # noqa: BLE001 - NATS away: the deadline decides
                    continue
                if revision is None:  # expired and taken: lost
                    held.pop(lease.slot, None)
                    self.lost += 1
                else:
                    lease.revision, lease.sent = revision, sent
            for lease in lease_rules.lapsed(list(held.values()), time.monotonic()):
                held.pop(lease.slot, None)
                self.lost += 1
            instances = self._instances(name)
            give_back = lease_rules.spare(len(held), instances, self.acquiring.get(name, 0), self.reserved_of(name))
            for lease in sorted(held.values(), key=lambda lease: -lease.slot)[:give_back]:
                held.pop(lease.slot)
                await self.link.run(self._release(f"{name}.{lease.slot}", lease.revision))
            self.limit(name)
            self._enforce(name)
            if not held:
                del self.held[name]

    def _instances(self, name: str) -> int:
        pools = self.host.pools_of(name) + [p for p in self.host.retired if p.name == name]
        return sum(len(p.instances) for p in pools)

    def _enforce(self, name: str) -> None:
        """Stop instances no lease covers any more (idle ones first, then busy ones)."""
        extra = lease_rules.excess(self._instances(name), self.count(name))
        if not extra:
            return
        pools = self.host.pools_of(name) + [p for p in self.host.retired if p.name == name]
        instances = sorted((i for p in pools for i in p.instances.values()), key=lambda i: bool(i.running))
        for inst in instances[:extra]:
            if inst.running or inst.bound is not None:
                inst.kill()  # its invoker gets Runtime.ExitError: better than two over the reservation
            else:
                inst.stop()
        self.say(f"cluster: {name}: {extra} instance(s) stopped, their reserved-concurrency lease lapsed")

    async def stop(self) -> None:
        """Every lease held goes back at once. The renewing round is cancelled and waited
        for first, and no lease is taken from now on (``acquire`` says False), so what is
        given back cannot change while it is (each give-back awaits NATS)."""
        self.stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        held, self.held = self.held, {}
        for name, leases in held.items():
            for lease in list(leases.values()):
                try:
                    await self.link.run(self._release(f"{name}.{lease.slot}", lease.revision), 2)
                except Exception:  # noqa: BLE001 - it expires anyway
                    pass

    def __repr__(self) -> str:
        held = {name: len(h) for name, h in self.held.items()}
        return f"<Leases held={held} taken={self.taken} lost={self.lost}>"
