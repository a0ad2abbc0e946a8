"""Provisioned concurrency spread over the nodes: the sum across nodes equals the setting.

``share`` is the pure rule: the living nodes in the order of their ids, the setting
divided among them, the first ``count % n`` one more. Every node computes the same split
from the same membership, so no coordination is needed beyond it; ``Spread`` applies this
node's part to its pools when the setting changes (the deployment asks ``share``) and again
once a second (a node joined or left, or a pool lost its part), so the total comes back to
the setting after a node dies, within the membership's ``STALE`` seconds.

Every node also publishes, in its membership status, the state of each part it holds
(``parts``: its share, how many of those instances are initialised, what runs on them, and
the reason when its part cannot start). ``combined`` is the pure rule that turns the parts
of all living nodes into what GetProvisionedConcurrencyConfig answers on any node, as AWS
reports the whole function: Allocated and Available are the initialised instances across
the cluster; READY only when the parts add up to the setting and every one is ready;
FAILED (with its StatusReason) when one part cannot start; IN_PROGRESS otherwise (a part
still starting, or the nodes' shares not yet agreeing after one joined or left).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rapid.cluster.status import NodeStatus, ProvisionedPart
from rapid.core.naming import Target

if TYPE_CHECKING:
    from rapid.host.deployment import Deployment
    from rapid.host.function import Function


def share(count: int, nodes: Sequence[str], me: str) -> int:
    """This node's part of ``count`` among ``nodes`` (``me`` among them)."""
    ordered = sorted(set(nodes) | {me})
    n, i = len(ordered), ordered.index(me)
    return count // n + (1 if i < count % n else 0)


def part_of(pool: Function) -> ProvisionedPart:
    """The state of this node's part of ``pool``'s provisioned concurrency."""
    from rapid.host.function import PROVISIONED_TRIES

    ready = in_flight = 0
    for inst in pool.instances.values():
        if inst.provisioned and inst.initialized and not inst.dead:
            ready += 1
            in_flight += len(inst.running) + (inst.bound is not None)
    failed = None
    if ready < pool.provisioned and pool.provisioned_failures >= PROVISIONED_TRIES:
        failed = f"FUNCTION_ERROR_INIT_FAILURE: {pool.provisioned_error}"
    return ProvisionedPart(pool.provisioned, ready, ready * pool.per_instance, in_flight, failed)


def combined(requested: int, parts: Sequence[ProvisionedPart]) -> tuple[int, str, str | None]:
    """(Allocated, Status, StatusReason) of a setting of ``requested`` from every living
    node's part (a node without a part of it counts as an empty part)."""
    allocated = min(requested, sum(min(p.ready, p.part) for p in parts))
    failed = next((p.failed for p in parts if p.failed and p.ready < p.part), None)
    if failed is not None:
        return allocated, "FAILED", failed
    if sum(p.part for p in parts) == requested and all(p.ready >= p.part for p in parts):
        return requested, "READY", None
    return allocated, "IN_PROGRESS", None


def key_of(name: str, version: str) -> str:
    return f"{name}:{version}"


class Spread:
    def __init__(self, deployment: Deployment, me: str, alive: Callable[[], list[str]],
                 say: Callable[[str], None], peers: Callable[[], list[NodeStatus]] | None = None) -> None:
        self.deployment = deployment
        self.me = me
        self.alive = alive  # the other living nodes' ids
        self.peers = peers or (lambda: [])  # their last statuses
        self.say = say
        self._members: tuple[str, ...] = ()
        self._task: asyncio.Task[None] | None = None

    def part(self, _name: str, _qualifier: str, count: int) -> int:
        return share(count, self.alive(), self.me) if count else 0

    def parts(self) -> dict[str, ProvisionedPart]:
        """This node's parts, as its membership status publishes them."""
        out = {}
        for pool in list(self.deployment.host.pools.values()):
            if pool.provisioned:
                out[key_of(pool.name, pool.version)] = part_of(pool)
        return out

    def view(self, name: str, version: str, requested: int) -> tuple[int, int, str, str | None]:
        """(Allocated, Available, Status, StatusReason) of ``name``'s version across the
        cluster: this node's part as it is now, the others' as they last said."""
        k = key_of(name, version)
        pool = self.deployment.host.pools.get((name, version))
        parts = [part_of(pool) if pool is not None else ProvisionedPart(0, 0)]
        parts += [peer.provisioned.get(k, ProvisionedPart(0, 0)) for peer in self.peers()]
        allocated, status, reason = combined(requested, parts)
        return allocated, allocated, status, reason

    def figures(self, name: str, version: str) -> tuple[int, int]:
        """(in-flight, ready capacity) of a version's provisioned instances across the
        cluster: what the autoscaler's utilization metric is made of."""
        k = key_of(name, version)
        pool = self.deployment.host.pools.get((name, version))
        parts = [part_of(pool)] if pool is not None else []
        parts += [peer.provisioned[k] for peer in self.peers() if k in peer.provisioned]
        return sum(p.in_flight for p in parts), sum(p.capacity for p in parts)

    async def start(self) -> None:
        self._members = tuple(sorted(self.alive()))
        self.deployment.share = self.part
        self.deployment.provisioned_view = self.view
        self.rebalance()
        self._task = asyncio.get_running_loop().create_task(self._watching())

    async def _watching(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                members = tuple(sorted(self.alive()))
                if members != self._members:
                    self._members = members
                    self.say(f"cluster: {len(members) + 1} node(s); provisioned concurrency spread again")
                self.rebalance()  # cheap: only a pool whose part differs is touched
            except Exception as exc:  # noqa: BLE001 - the next second tries again
                self.say(f"warning: cluster: provisioned concurrency: {exc}")

    def rebalance(self) -> None:
        reg = self.deployment.registry
        for name, fs in sorted(reg.settings.items()):
            if not self.deployment.knows(name):
                continue
            for qualifier, count in sorted(fs.provisioned.items()):
                try:
                    number = reg.version(name, qualifier).version
                    pool = self.deployment.pool(Target(name, number))
                    part = self.part(name, qualifier, count)
                    if pool.provisioned != part:
                        pool.set_provisioned(part)
                except Exception as exc:  # noqa: BLE001 - a stale setting must not stop the others
                    self.say(f"warning: cluster: provisioned concurrency of {name}:{qualifier}: {exc}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def __repr__(self) -> str:
        return f"<Spread {self.me} among {len(self._members) + 1}>"
