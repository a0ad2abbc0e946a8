"""One rapid node of a cluster: its link to NATS and the shared pieces, put together.

``Node.join`` (before the registry exists) connects, opens the registry's KV bucket and
the code's Object Store; ``attach`` (once the daemon has its registry, deployment, host
and Invoke API) fetches the packages this node lacks, then starts following the registry,
the membership heartbeat, the leases and the forwarding subscription; ``close`` gives it
all back (a stopping node deletes its heartbeat and its leases at once, so the others
need not wait for them to expire).
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rapid.cluster.code_objects import ClusterCodeStore
from rapid.cluster.link import Link, LinkError
from rapid.cluster.registry_sync import RegistrySync
from rapid.registry.jetstream_store import JetStreamRegistryStore

if TYPE_CHECKING:
    from rapid.registry.registry import Registry


def node_id() -> str:
    """Unique per daemon: host name, pid and a random tail (KV key characters only)."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "node"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Node:
    def __init__(self, url: str, data_dir: str, say: Callable[[str], None]) -> None:
        self.url = url
        self.id = node_id()
        self.say = say
        self.link = Link(url, f"rapid {self.id}")
        self.store = JetStreamRegistryStore(self.link)
        self.code = ClusterCodeStore(data_dir, self.link)
        self.sync: RegistrySync | None = None
        self.parts: list[Any] = []  # started pieces with a .stop() coroutine, stopped in reverse

    @classmethod
    def join(cls, url: str, data_dir: str, say: Callable[[str], None]) -> Node:
        node = cls(url, data_dir, say)
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

    async def stop(self) -> None:
        for part in reversed(self.parts):
            try:
                await part.stop()
            except Exception as exc:  # noqa: BLE001 - stopping: say it, go on
                self.say(f"warning: cluster: stopping {part!r}: {exc}")
        self.parts.clear()

    def close(self) -> None:
        self.store.close()
        self.link.close()

    def __repr__(self) -> str:
        return f"<Node {self.id} {self.link!r} {self.sync!r}>"
