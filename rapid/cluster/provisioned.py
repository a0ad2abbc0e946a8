"""Provisioned concurrency spread over the nodes: the sum across nodes equals the setting.

``share`` is the pure rule: the living nodes in the order of their ids, the setting
divided among them, the first ``count % n`` one more. Every node computes the same split
from the same membership, so no coordination is needed beyond it; ``Spread`` applies this
node's part to its pools when the setting changes (the deployment asks ``share``) and again
once a second (a node joined or left, or a pool lost its part), so the total comes back to
the setting after a node dies, within the membership's ``STALE`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rapid.core.naming import Target

if TYPE_CHECKING:
    from rapid.host.deployment import Deployment


def share(count: int, nodes: Sequence[str], me: str) -> int:
    """This node's part of ``count`` among ``nodes`` (``me`` among them)."""
    ordered = sorted(set(nodes) | {me})
    n, i = len(ordered), ordered.index(me)
    return count // n + (1 if i < count % n else 0)


class Spread:
    def __init__(self, deployment: Deployment, me: str, alive: Callable[[], list[str]],
                 say: Callable[[str], None]) -> None:
        self.deployment = deployment
        self.me = me
        self.alive = alive  # the other living nodes' ids
        self.say = say
        self._members: tuple[str, ...] = ()
        self._task: asyncio.Task[None] | None = None

    def part(self, _name: str, _qualifier: str, count: int) -> int:
        return share(count, self.alive(), self.me) if count else 0

    async def start(self) -> None:
        self._members = tuple(sorted(self.alive()))
        self.deployment.share = self.part
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
