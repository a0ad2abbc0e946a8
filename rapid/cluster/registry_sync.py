"""Changes other nodes wrote to the shared registry, applied to this node's ``Registry``.

Theory of operation
-------------------
The JetStream store hands every foreign change (``kind, key, body or None, revision``) to
``RegistrySync.arrived`` on the daemon's loop. They are applied one at a time, in order, by
one task: a version or layer whose code this node lacks waits for its package to be
fetched from the Object Store (on a worker thread) before it is applied, so the pool the
deployment builds for it finds its tree. Applying a change means: tell the store it is
applied (dropped if already older than what this node has), swap the record into the
registry's in-memory state, and tell the registry's listeners what the originating node
told its own: ``create``, ``update``, ``publish``, ``delete``, ``delete-version``,
``alias``, ``concurrency``, ``provisioned``. Which event a change is, is a pure function of
the old and the new record (``version_event``, ``settings_events``): a ``$LATEST`` whose
code and settings are unchanged (only its State moved on) installs nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from rapid.core.routing import LATEST
from rapid.registry.model import Alias, FunctionSettings, FunctionUrl, LayerVersion, VersionSpec

if TYPE_CHECKING:
    from rapid.cluster.code_objects import ClusterCodeStore
    from rapid.events.dispatcher import Dispatcher
    from rapid.registry.jetstream_store import JetStreamRegistryStore
    from rapid.registry.registry import Registry

Change = tuple[str, str, "bytes | None", int]


def version_event(old: VersionSpec | None, new: VersionSpec | None) -> str | None:
    """The registry event a change of a version record is (None: nothing to install)."""
    if new is None:
        if old is None:
            return None
        return "delete" if old.version == LATEST else "delete-version"
    if old is None:
        return "create" if new.version == LATEST else "publish"
    if new.version == LATEST and (old.code != new.code or old.settings != new.settings
                                  or old.layer_sizes != new.layer_sizes):
        return "update"
    return None


def settings_events(old: FunctionSettings | None, new: FunctionSettings | None) -> list[tuple[str, str | None]]:
    """The events a change of a function's own settings is: reserved, provisioned."""
    before = old or FunctionSettings()
    after = new or FunctionSettings()
    out: list[tuple[str, str | None]] = []
    if before.reserved != after.reserved:
        out.append(("concurrency", None))
    for qualifier in sorted(set(before.provisioned) | set(after.provisioned)):
        if before.provisioned.get(qualifier) != after.provisioned.get(qualifier):
            out.append(("provisioned", qualifier))
    return out


class RegistrySync:
    def __init__(self, registry: Registry, store: JetStreamRegistryStore, code: ClusterCodeStore,
                 say: Callable[[str], None]) -> None:
        self.registry = registry
        self.store = store
        self.code = code
        self.say = say
        self.events: Dispatcher | None = None  # event invoke configs are put in force there
        self._queue: asyncio.Queue[Change] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.applied = 0
        # Kinds other parts keep (autoscaling, deployments: rapid.cluster.control_sync).
        self.handlers: dict[str, Callable[[str, bytes | None], None]] = {}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.store.listen(self.arrived)

    def arrived(self, kind: str, key: str, body: bytes | None, rev: int) -> None:
        self._queue.put_nowait((kind, key, body, rev))

    async def _run(self) -> None:
        while True:
            kind, key, body, rev = await self._queue.get()
            try:
                await self._fetch_code(kind, body)
                self.apply(kind, key, body, rev)
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the others
                self.say(f"warning: cluster: could not apply {kind} {key}: {exc}")

    async def _fetch_code(self, kind: str, body: bytes | None) -> None:
        if body is None or kind not in ("version", "layer"):
            return
        ref = msgspec.json.decode(body, type=VersionSpec if kind == "version" else LayerVersion).code
        if not self.code.has(ref):
            await asyncio.to_thread(self.code.fetch, ref)

    def apply(self, kind: str, key: str, body: bytes | None, rev: int) -> None:
        if not self.store.accept(kind, key, body, rev):
            return
        self.applied += 1
        self.store.applied = self.applied
        handler = self.handlers.get(kind) or getattr(self, "_" + kind.replace("-", "_"), None)
        if handler is not None:
            handler(key, body)

    # -- one method per kind of record ----------------------------------------------------

    def _version(self, key: str, body: bytes | None) -> None:
        reg = self.registry
        name, _, number = key.partition("/")
        new = msgspec.json.decode(body, type=VersionSpec) if body is not None else None
        if number == LATEST:
            old = reg.latest.get(name)
        else:
            old = reg.versions.get(name, {}).get(number)
        event = version_event(old, new)
        if new is None:
            if number == LATEST:
                if old is not None:
                    self._forget(name)
            else:
                reg.versions.get(name, {}).pop(number, None)
        elif number == LATEST:
            reg.latest[name] = new
            reg.settings.setdefault(name, FunctionSettings())
            reg._reroute(name)
        else:
            reg.versions.setdefault(name, {})[number] = new
        if name in reg.declared:
            return  # this node serves its own declared function of that name (said at start)
        if event is not None and not (event == "delete-version" and name not in reg.latest):
            reg._tell(event, name, None if event == "delete" else number)

    def _forget(self, name: str) -> None:
        reg = self.registry
        reg.latest.pop(name, None)
        reg.versions.pop(name, None)
        reg.aliases.pop(name, None)
        reg._routes.pop(name, None)
        reg.settings.pop(name, None)

    def _alias(self, key: str, body: bytes | None) -> None:
        reg = self.registry
        name, _, alias = key.partition("/")
        if body is None:
            if reg.aliases.get(name, {}).pop(alias, None) is None:
                return
        else:
            record = msgspec.json.decode(body, type=Alias)
            reg.aliases.setdefault(name, {})[alias] = record
        reg._reroute(name)
        if name in reg.latest:
            reg._tell("alias", name, alias)

    def _function(self, key: str, body: bytes | None) -> None:
        reg = self.registry
        old = reg.settings.get(key)
        new = msgspec.json.decode(body, type=FunctionSettings) if body is not None else None
        if new is None:
            reg.settings.pop(key, None)
            return
        reg.settings[key] = new
        if key in reg.latest:
            for event, qualifier in settings_events(old, new):
                reg._tell(event, key, qualifier)

    def _layer(self, key: str, body: bytes | None) -> None:
        layers = self.registry.layer_versions
        name, _, number = key.partition("/")
        if body is None:
            versions = layers.versions.get(name, {})
            versions.pop(int(number), None)
            if not versions:
                layers.versions.pop(name, None)
            return
        layer = msgspec.json.decode(body, type=LayerVersion)
        layers.versions.setdefault(layer.name, {})[layer.version] = layer

    def _layer_next(self, key: str, body: bytes | None) -> None:
        if body is not None:
            self.registry.layer_versions.next[key] = int(body)

    def _url(self, key: str, body: bytes | None) -> None:
        urls = self.registry.urls
        name, _, qualifier = key.partition("/")
        target = (name, qualifier or None)
        old = urls.by_target.pop(target, None)
        if old is not None:
            urls.by_id.pop(old.url_id, None)
        if body is not None:
            urls._index(msgspec.json.decode(body, type=FunctionUrl))

    def _event_config(self, key: str, body: bytes | None) -> None:
        if self.events is None:
            return
        function, _, qualifier = key.partition("/")
        settings = self.events.settings
        if body is None:
            settings.configs.pop((function, qualifier), None)
        else:
            settings.configs[(function, qualifier)] = msgspec.json.decode(body)
        # The working copy keeps it too, as a config set on this node would be.
        settings.store.local.put_config(function, qualifier, settings.configs.get((function, qualifier)),  # type: ignore[attr-defined]
                                        lambda _r, _e: None)

    def __repr__(self) -> str:
        return f"<RegistrySync applied={self.applied} waiting={self._queue.qsize()}>"
