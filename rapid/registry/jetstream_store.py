"""The registry in a JetStream KV bucket (``rapid-registry``), shared by every node of a
cluster: the same four operations as ``SQLiteRegistryStore``, one KV key per record.

Theory of operation
-------------------
A record ``(kind, key)`` lives under the KV key ``kind.<base64url of key>`` (a registry key
holds ``$`` and ``/``, which KV keys may not). The store remembers the KV revision of every
record as this node last applied it. A ``put`` is a KV update expecting that revision (a
create for a record it has never seen): if another node wrote the record meanwhile,
JetStream refuses and ``StaleRecord`` is raised before anything changes here. So two nodes
holding the same RevisionId cannot both update: JetStream orders the writes, the second is
refused. Deletes are unconditional (a DeleteFunction wins over a concurrent update, as on
AWS).

Every node watches the whole bucket. A write arrives on the link's thread and is handed to
the daemon's loop (``listener(kind, key, body or None, revision)``); the registry applies it
and only then calls ``accept``, which records the revision. ``load`` answers from a snapshot
kept current by every write and every accepted change (a part that starts late reads what
is in force now). A node's own writes come back
through the watch too and are dropped there (their revision is already known). After a
reconnection the watch is started again: it delivers the latest value (or delete marker)
of every key, and what was applied already is dropped by revision.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterable
from typing import Any

from rapid.cluster.link import Link
from rapid.core.errors import ServiceError
from rapid.registry.store import RegistryStore, RegistryStoreError, StaleRecord

BUCKET = "rapid-registry"
WRITE_TIMEOUT = 5.0


def unreachable() -> ServiceError:
    return ServiceError(503, "ServiceException", "The cluster's registry (NATS JetStream) cannot be reached, "
                        "or did not answer in time; check the function, then try again.", kind="Service")
Listener = Callable[[str, str, "bytes | None", int], None]


def kv_key(kind: str, key: str) -> str:
    return f"{kind}.{base64.urlsafe_b64encode(key.encode()).decode().rstrip('=')}"


def record_key(kv: str) -> tuple[str, str]:
    kind, _, coded = kv.partition(".")
    return kind, base64.urlsafe_b64decode(coded + "=" * (-len(coded) % 4)).decode()


class JetStreamRegistryStore(RegistryStore):
    def __init__(self, link: Link, bucket: str = BUCKET) -> None:
        self.link = link
        self.bucket = bucket
        self.listener: Listener | None = None
        self._backlog: list[tuple[str, str, bytes | None, int]] = []
        self._revs: dict[str, int] = {}  # KV key -> revision applied here (the daemon's loop)
        self._live: set[str] = set()  # KV keys holding a value (not deleted)
        self._snapshot: dict[str, dict[str, bytes]] = {}
        self._kv: Any = None
        self._watcher: Any = None
        self._pump: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.applied = 0  # changes from other nodes applied here

    # -- opening and watching (the link's loop) ------------------------------------------

    def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            entries = self.link.call(self._open())
        except Exception as exc:  # noqa: BLE001
            raise RegistryStoreError(f"JetStream KV {self.bucket}: {exc or type(exc).__name__}") from None
        for key, body, rev in entries:
            self._revs[key] = rev
            if body is not None:
                self._live.add(key)
                kind, rkey = record_key(key)
                self._snapshot.setdefault(kind, {})[rkey] = body
        self.link.on_reconnect.append(self._rewatch)

    async def _open(self) -> list[tuple[str, bytes | None, int]]:
        js = self.link.js
        self._kv = await js.create_key_value(bucket=self.bucket, history=1, replicas=self.link.replicas)
        return await self._watch()

    async def _watch(self) -> list[tuple[str, bytes | None, int]]:
        """Start the watch; the current records, up to the initial marker."""
        if self._watcher is not None:
            try:
                await self._watcher.stop()
            except Exception:  # noqa: BLE001 - the old one died with the connection
                pass
        if self._pump is not None:
            self._pump.cancel()
        self._watcher = watcher = await self._kv.watchall()
        first: list[tuple[str, bytes | None, int]] = []
        while True:
            entry = await watcher.updates(timeout=self.link.timeout)
            if entry is None:
                break
            first.append((entry.key, None if entry.operation else entry.value, entry.revision))
        self._pump = asyncio.get_running_loop().create_task(self._follow(watcher))
        return first

    async def _follow(self, watcher: Any) -> None:
        async for entry in watcher:
            if entry is None:
                continue
            body = None if entry.operation else bytes(entry.value)
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._arrived, entry.key, body, entry.revision)

    async def _rewatch(self) -> None:
        for _ in range(40):
            try:
                entries = await self._watch()
            except Exception:  # noqa: BLE001 - JetStream may still be recovering its streams
                await asyncio.sleep(0.25)
                continue
            assert self._loop is not None
            for key, body, rev in entries:
                self._loop.call_soon_threadsafe(self._arrived, key, body, rev)
            return

    # -- changes from other nodes (the daemon's loop) -------------------------------------

    def _arrived(self, key: str, body: bytes | None, rev: int) -> None:
        if rev <= self._revs.get(key, 0):
            return  # this node's own write, or seen already
        kind, rkey = record_key(key)
        if self.listener is None:
            self._backlog.append((kind, rkey, body, rev))
        else:
            self.listener(kind, rkey, body, rev)

    def listen(self, listener: Listener) -> None:
        self.listener = listener
        backlog, self._backlog = self._backlog, []
        for change in backlog:
            listener(*change)

    def accept(self, kind: str, key: str, body: bytes | None, rev: int) -> bool:
        """Record a change as applied; False if it is older than what this node has."""
        k = kv_key(kind, key)
        if rev <= self._revs.get(k, 0):
            return False
        self._revs[k] = rev
        if body is None:
            self._live.discard(k)
            self._snapshot.get(kind, {}).pop(key, None)
        else:
            self._live.add(k)
            self._snapshot.setdefault(kind, {})[key] = body
        return True

    # -- the RegistryStore interface ------------------------------------------------------

    def load(self, kind: str) -> Iterable[tuple[str, bytes]]:
        return sorted(self._snapshot.get(kind, {}).items())

    def _call(self, coro: Any) -> Any:
        """Wait for JetStream, on the daemon's loop: refused at once while NATS is away (the
        loop must not stall for the invokes it serves), and after ``WRITE_TIMEOUT``."""
        if not self.link.connected:
            coro.close()
            raise unreachable()
        try:
            return self.link.call(coro, timeout=WRITE_TIMEOUT)
        except TimeoutError:
            raise unreachable() from None

    def put(self, kind: str, key: str, body: bytes) -> None:
        k = kv_key(kind, key)
        rev = self._call(self._update(k, body, self._revs.get(k, 0)))
        if rev is None:
            raise StaleRecord(f"{kind} {key} was changed by another node")
        self._revs[k] = rev
        self._live.add(k)
        self._snapshot.setdefault(kind, {})[key] = body

    def put_blind(self, kind: str, key: str, body: bytes | None) -> None:
        """Write (or with None delete) a record whatever its revision: last writer wins
        (event invoke configs, which AWS replaces whole without a RevisionId)."""
        k = kv_key(kind, key)
        if body is None:
            if k in self._live:
                self._revs[k] = self._call(self._delete(k))
                self._live.discard(k)
                self._snapshot.get(kind, {}).pop(key, None)
            return
        self._revs[k] = self._call(self._put(k, body))
        self._live.add(k)
        self._snapshot.setdefault(kind, {})[key] = body

    async def _put(self, key: str, body: bytes) -> int:
        return int(await self._kv.put(key, body))

    async def _update(self, key: str, body: bytes, last: int) -> int | None:
        from nats.js.errors import KeyWrongLastSequenceError

        try:
            return int(await self._kv.update(key, body, last=last))
        except KeyWrongLastSequenceError:
            return None

    def delete(self, kind: str, key: str) -> None:
        k = kv_key(kind, key)
        if k in self._live:
            self._revs[k] = self._call(self._delete(k))
            self._live.discard(k)
            self._snapshot.get(kind, {}).pop(key, None)

    async def _delete(self, key: str) -> int:
        ack = await self.link.js.publish(f"$KV.{self.bucket}.{key}", b"", headers={"KV-Operation": "DEL"})
        return int(ack.seq)

    def delete_prefix(self, kind: str, prefix: str) -> None:
        for k in sorted(self._live):
            k_kind, rkey = record_key(k)
            if k_kind == kind and rkey.startswith(prefix):
                self.delete(kind, rkey)

    def close(self) -> None:
        if self.link.loop.is_running():
            try:
                self.link.call(self._stop(), timeout=3)
            except Exception:  # noqa: BLE001 - closing
                pass

    async def _stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        if self._watcher is not None:
            try:
                await self._watcher.stop()
            except Exception:  # noqa: BLE001
                pass

    def __repr__(self) -> str:
        return f"<JetStreamRegistryStore {self.bucket} records={len(self._live)} applied={self.applied}>"
