"""Autoscaling's and gradual deployments' records written by other nodes, applied here.

Theory of operation
-------------------
The autoscaler's scalable targets, policies, scheduled actions and activities, and the
deployments, are records of the registry's store (``rapid.autoscaling.model``,
``rapid.deployments.model``); in a cluster that store is the KV bucket ``rapid-registry``
(``rapid.registry.jetstream_store``), so every write is already shared, conditioned on the
revision the writing node last saw (two nodes changing one target: the second is refused,
``ConcurrentUpdateException``). What was missing is the other direction: ``follow`` gives
``RegistrySync`` one handler per kind, which swaps the record into this node's
``AutoScaling`` or ``Deployments`` as it arrives (within the watch's delay, well under a
second) and tells the autoscaler the resource changed (its trackers and schedule times
start again). Then it reloads both from the store's snapshot, which ``RegistrySync`` kept
current meanwhile, so nothing written between this node's start and ``follow`` is missed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from rapid.autoscaling.model import Activity, Policy, ScalableTarget, ScheduledAction
from rapid.deployments.model import decode as decode_deployment

if TYPE_CHECKING:
    from rapid.autoscaling.service import AutoScaling
    from rapid.cluster.registry_sync import RegistrySync
    from rapid.deployments.service import Deployments

Handler = Callable[[str, "bytes | None"], None]


def handlers(scaling: AutoScaling, deployments: Deployments) -> dict[str, Handler]:
    """One function per kind of record: apply a foreign change (body None: deleted)."""
    dec = msgspec.json.Decoder

    def target(key: str, body: bytes | None) -> None:
        if body is None:
            scaling.targets.pop(key, None)
        else:
            scaling.targets[key] = dec(ScalableTarget).decode(body)
        scaling._tell(key)

    def policy(key: str, body: bytes | None) -> None:
        resource, _, name = key.rpartition("|")
        if body is None:
            scaling.policies.get(resource, {}).pop(name, None)
        else:
            scaling.policies.setdefault(resource, {})[name] = dec(Policy).decode(body)
        scaling._tell(resource)

    def action(key: str, body: bytes | None) -> None:
        resource, _, name = key.rpartition("|")
        if body is None:
            scaling.actions.get(resource, {}).pop(name, None)
        else:
            scaling.actions.setdefault(resource, {})[name] = dec(ScheduledAction).decode(body)
        scaling._tell(resource)

    def activity(key: str, body: bytes | None) -> None:
        parts = key.split("|")
        resource, activity_id = "|".join(parts[:-2]), parts[-1]
        kept = scaling.activities.setdefault(resource, [])
        kept[:] = [a for a in kept if a.id != activity_id]
        if body is not None:
            kept.append(dec(Activity).decode(body))
            kept.sort(key=lambda a: a.start)

    def deployment(key: str, body: bytes | None) -> None:
        if key in deployments._live:
            return  # this node runs it: its own record is the newest
        if body is None:
            deployments.records.pop(key, None)
        else:
            deployments.records[key] = decode_deployment(body)

    return {"scaling-target": target, "scaling-policy": policy, "scheduled-action": action,
            "scaling-activity": activity, "deployment": deployment}


def follow(sync: RegistrySync, scaling: AutoScaling, deployments: Deployments) -> None:
    sync.handlers.update(handlers(scaling, deployments))
    # What arrived before the handlers did is in the store's snapshot: start from it.
    scaling.targets.clear()
    scaling.policies.clear()
    scaling.actions.clear()
    scaling.activities.clear()
    scaling.load()
    for resource in list(scaling.targets):
        scaling._tell(resource)
    for _, body in deployments.store.load("deployment"):
        d = decode_deployment(body)
        if d.id not in deployments._live:
            deployments.records[d.id] = d
