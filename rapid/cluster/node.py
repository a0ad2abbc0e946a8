"""One rapid node of a cluster: its link to NATS and the shared pieces, put together.

``Node.join`` (before the registry exists) connects, opens the registry's KV bucket and
the code's Object Store; ``attach`` (once the daemon has its registry, deployment, host
and Invoke API) fetches the packages this node lacks, then starts following the registry,
the membership heartbeat, the leases and the forwarding subscription; ``close`` gives it
all back (a stopping node deletes its heartbeat and its leases at once, so the others
need not wait for them to expire).

Shutdown is ordered so that no thread uses what another has closed: the daemon stops the
producers first (``stop``: the subscriptions, the leases' and membership's rounds, the
adoption), the host, then ``release`` (the answers to peers under way, the leases); the
events store stops its own tasks on the link's loop and waits for them before it closes
its SQLite databases; ``close`` last ends the registry's watch and the link, whose thread
is joined (bounded) before its loop is closed, while the daemon's loop is still open.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rapid.cluster.adoption import Adoption
from rapid.cluster.code_objects import ClusterCodeStore
from rapid.cluster.forwarding import Placement
from rapid.cluster.leases import Leases
from rapid.cluster.link import Link, LinkError
from rapid.cluster.membership import Membership
from rapid.cluster.provisioned import Spread
from rapid.cluster.registry_sync import RegistrySync
from rapid.cluster.status import FunctionLoad, NodeStatus
from rapid.cluster.stream_forwarding import StreamRelay
from rapid.events.jetstream_store import JetStreamEventStore
from rapid.events.store import Recovery, StoreError
from rapid.registry.jetstream_store import JetStreamRegistryStore

if TYPE_CHECKING:
    from rapid.api.invoke import InvokeAPI
    from rapid.autoscaling.runner import Autoscaler
    from rapid.autoscaling.service import AutoScaling
    from rapid.cluster.control_owner import ControlOwner
    from rapid.deployments.service import Deployments
    from rapid.api.url import UrlServer
    from rapid.events.dispatcher import Dispatcher
    from rapid.events.sqlite_store import SQLiteStore
    from rapid.host.deployment import Deployment
    from rapid.host.host import Host
    from rapid.registry.registry import Registry


def node_id() -> str:
    """Unique per daemon: host name, pid and a random tail (KV key characters only)."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "node"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Node:
    def __init__(self, url: str, data_dir: str, say: Callable[[str], None], replicas: int = 1) -> None:
        self.url = url
        self.id = node_id()
        self.say = say
        self.link = Link(url, f"rapid {self.id}", replicas=replicas)
        self.store = JetStreamRegistryStore(self.link)
        self.code = ClusterCodeStore(data_dir, self.link)
        self.sync: RegistrySync | None = None
        self.parts: list[Any] = []  # started pieces with a .stop() coroutine, stopped in reverse
        self.leases: Leases | None = None
        self.membership: Membership | None = None
        self.placement: Placement | None = None
        self.event_store: JetStreamEventStore | None = None
        self.adoption: Adoption | None = None
        self.spread: Spread | None = None
        self.streams: StreamRelay | None = None
        self.control_owner: ControlOwner | None = None

    @classmethod
    def join(cls, url: str, data_dir: str, say: Callable[[str], None], replicas: int = 1) -> Node:
        node = cls(url, data_dir, say, replicas)
        node.link.open()  # LinkError: one clear line
        try:
            node.store.open()
            node.code.open()
        except Exception as exc:
            node.link.close()
            raise LinkError(f"cluster {url}: {exc}") from None
        return node

    def prefetch(self, registry: Registry) -> None:
        """Every package the registry names, local before the deployment installs pools."""
        refs = [s.code for s in registry.latest.values()]
        refs += [s.code for v in registry.versions.values() for s in v.values()]
        refs += [layer.code for v in registry.layers.values() for layer in v.values()]
        for ref in {r.sha256: r for r in refs}.values():
            try:
                self.code.fetch(ref)
            except Exception as exc:  # noqa: BLE001 - the version then fails to set up, said once
                self.say(f"warning: cluster: package {ref.sha256}: {exc}")

    def follow(self, registry: Registry) -> None:
        self.sync = RegistrySync(registry, self.store, self.code, self.say)
        self.sync.start()

    async def attach(self, host: Host, deployment: Deployment, invoke_api: InvokeAPI, address: str,
                     urls: UrlServer | None = None) -> None:
        """Once the daemon listens: membership, leases and forwarding start."""
        registry = deployment.registry
        self.host, self.registry, self.deployment = host, registry, deployment
        self.address = address
        self.started = time.time()

        def reserved_of(name: str) -> int | None:
            if not deployment.knows(name):
                return None
            fs = registry.settings.get(name)
            return fs.reserved if fs is not None else None

        self.leases = Leases(self.link, self.id, host, reserved_of, self.say)
        await self.leases.start()  # given back by release(), once the host's instances are gone
        for name in list(registry.latest):
            self.leases.limit(name)
        deployment.on_change(self._changed)
        self.membership = membership = Membership(self.link, self.id, self.describe)
        await membership.start()
        self.parts.append(membership)
        self.placement = Placement(self.link, self.id, self.membership, self.leases, deployment.knows, reserved_of)
        await self.placement.start(invoke_api)
        invoke_api.placement = self.placement
        self.parts.append(self.placement)
        self.streams = StreamRelay(self.link, self.id)  # InvokeWithResponseStream and URLs, forwarded
        await self.streams.start(invoke_api, urls)
        self.placement.streams = self.streams
        self.parts.append(self.streams)
        self.spread = Spread(deployment, self.id, lambda: [p.id for p in membership.alive()], self.say,
                             membership.alive)
        await self.spread.start()
        self.parts.append(self.spread)

    def events(self, local: SQLiteStore, recovery: Recovery) -> tuple[JetStreamEventStore, Recovery]:
        """The async queue: the node's SQLite store as the working copy of a JetStream stream."""
        self.event_store = JetStreamEventStore(local, self.link, self.id)
        self.event_store.shared = self.store
        try:
            return self.event_store, self.event_store.join(recovery)
        except StoreError as exc:
            from rapid.config import ConfigError

            raise ConfigError(str(exc)) from None

    async def adopt(self, events: Dispatcher) -> None:
        """Once membership runs: take over the events of nodes that die; event invoke
        configs of other nodes are put in force in ``events``."""
        if self.sync is not None:
            self.sync.events = events
            for key, body in self.store.load("event-config"):  # what other nodes set before this one started
                self.sync._event_config(key, body)
        if self.event_store is None or self.membership is None:
            return
        self.event_store.outbox_add = events.outbox.add  # deliveries of dead nodes go there
        self.adoption = Adoption(self.event_store, self.membership, events.offer, self.say)
        await self.adoption.start()
        self.parts.append(self.adoption)

    async def control(self, app: Any, scaling: AutoScaling, autoscaler: Autoscaler, deployments: Deployments) -> None:
        """Once membership runs: autoscaling's and deployments' records followed from the
        other nodes, and one node at a time running them (``control_owner``)."""
        from rapid.cluster.control_owner import ControlOwner
        from rapid.cluster.control_sync import follow

        if self.sync is not None:
            follow(self.sync, scaling, deployments)
        if self.spread is not None:
            autoscaler.figures = self.spread.figures
        self.control_owner = ControlOwner(self.link, self.id, autoscaler, deployments, self.say)
        await self.control_owner.start(app)
        self.parts.append(self.control_owner)

    def _changed(self, event: str, name: str, _version: str | None) -> None:
        """After the deployment set a pool up: its reserved limit is the leases held here."""
        if event in ("create", "update", "concurrency", "publish") and self.leases is not None:
            self.leases.limit(name)

    def describe(self) -> NodeStatus:
        host, registry = self.host, self.registry
        functions = {}
        for name in registry.latest:
            pools = host.pools_of(name)
            instances = sum(len(p.instances) for p in pools)
            leases = self.leases.count(name) if self.leases is not None else 0
            if instances or leases:
                functions[name] = FunctionLoad(instances, sum(len(p.idle) for p in pools), leases)
        pools = host.all_pools()
        placement = self.placement
        return NodeStatus(
            id=self.id, url=self.address, started=self.started,
            instances=sum(len(p.instances) for p in pools), unreserved_room=host.unreserved_room(),
            inflight=sum(p.running for p in pools),
            forwarded_out=placement.out if placement else 0, forwarded_in=(placement.into if placement else 0) + (self.streams.into if self.streams else 0),
            functions=functions,
            provisioned=self.spread.parts() if self.spread is not None else {},
        )

    def metrics(self) -> str:
        from rapid.cluster.metrics import render

        return render(self)

    async def stop(self) -> None:
        for part in reversed(self.parts):
            try:
                await part.stop()
            except Exception as exc:  # noqa: BLE001 - stopping: say it, go on
                self.say(f"warning: cluster: stopping {part!r}: {exc}")
        self.parts.clear()

    async def release(self) -> None:
        """After the host shut its instances down: the answers to peers still under way end
        (their invocations did, with the host), and the leases the instances held go back
        at once."""
        for responder in (self.placement, self.streams):
            if responder is not None:
                await responder.drain()
        if self.leases is not None:
            await self.leases.stop()

    def close(self) -> None:
        """Last, once every part has stopped its own work on the link's loop (the events
        store before it closed its databases): the registry's watch ends, then the link
        (its thread joined, bounded)."""
        self.store.close()
        self.link.close()

    def __repr__(self) -> str:
        return f"<Node {self.id} {self.link!r} {self.sync!r}>"
