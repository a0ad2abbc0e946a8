"""What a node says about itself every second, and how peers are ranked: plain values and
pure rules (no I/O), shared by the heartbeat, the forwarding and ``rapid cluster status``."""

from __future__ import annotations

from msgspec import Struct


class FunctionLoad(Struct, array_like=True, frozen=True):
    instances: int  # live instances of every pool of the function on the node
    idle: int  # of which waiting at /next (room for an invoke now)
    leases: int  # reserved-concurrency leases the node holds for it


class ProvisionedPart(Struct, array_like=True, frozen=True):
    """A node's part of one version's provisioned concurrency setting, as it stands."""

    part: int  # instances this node is to keep initialised (its share of the setting)
    ready: int  # of which initialised and alive
    capacity: int = 0  # concurrency the ready ones give (ready x per-instance concurrency)
    in_flight: int = 0  # invocations running on the ready ones
    failed: str | None = None  # the StatusReason when this part cannot start (init failures)


class NodeStatus(Struct, frozen=True, kw_only=True):
    id: str
    url: str  # the node's Invoke API, http://HOST:PORT
    started: float  # epoch seconds
    instances: int = 0
    unreserved_room: int = 0  # instances an unreserved function may still start here
    inflight: int = 0  # sync invocations running
    forwarded_out: int = 0
    forwarded_in: int = 0
    async_pending: int = 0  # async events waiting on this node's store
    functions: dict[str, FunctionLoad] = {}
    provisioned: dict[str, ProvisionedPart] = {}  # "name:version" -> this node's part of its setting


def candidates(peers: list[NodeStatus], name: str, reserved: bool) -> list[NodeStatus]:
    """Peers that may take an invoke of ``name`` now, best first: an idle instance first;
    then (reserved) a lease held with no instance on it, or (unreserved) the most room. A
    reserved function's lease holders are all asked, whatever their last status said (it
    may be a second old: an instance busy then may be idle now); a busy one refuses."""
    ranked = []
    for peer in peers:
        load = peer.functions.get(name, FunctionLoad(0, 0, 0))
        if reserved:
            spare = load.leases - load.instances
            if load.leases > 0:
                ranked.append(((load.idle, spare), peer))
        elif load.idle > 0 or peer.unreserved_room > 0:
            ranked.append(((load.idle, peer.unreserved_room), peer))
    ranked.sort(key=lambda item: item[0], reverse=True)
    return [peer for _, peer in ranked]
