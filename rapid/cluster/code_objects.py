"""Deployment packages shared through the JetStream Object Store ``rapid-code``.

A ``ClusterCodeStore`` is the node's own content-addressed ``CodeStore`` (the ZIP and its
unpacked tree under the data dir) with the Object Store behind it: ``put`` (a ZIP uploaded
to this node) stores it locally and then under its SHA-256 in the Object Store, before the
API answers, so every other node can find it by the digest its registry record names.
``fetch`` is the other direction: a node that learns of a version whose code it does not
have downloads the ZIP once and unpacks it once (by digest, so a function, its versions and
its layers that share a package share the download). Both block: they run on a worker
thread (``put`` from the API, ``fetch`` from ``registry_sync``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from rapid.cluster.link import Link
from rapid.registry.code_store import CodeStore
from rapid.registry.model import CodeRef

BUCKET = "rapid-code"


class CodeMissing(Exception):
    """The Object Store has no package of that digest (or it does not match its digest)."""


class ClusterCodeStore(CodeStore):
    def __init__(self, data_dir: str, link: Link, bucket: str = BUCKET) -> None:
        super().__init__(data_dir)
        self.link = link
        self.bucket = bucket
        self._obs: Any = None
        self.uploads = 0
        self.downloads = 0

    def open(self) -> None:
        self._obs = self.link.call(self.link.js.create_object_store(self.bucket, replicas=self.link.replicas))

    def put(self, data: bytes, max_unzipped: int | None = None) -> CodeRef:
        ref = super().put(data) if max_unzipped is None else super().put(data, max_unzipped)
        self.link.call(self._upload(ref.sha256, data), timeout=120)
        return ref

    async def _upload(self, digest: str, data: bytes) -> None:
        try:
            info = await self._obs.get_info(digest)
            if info is not None and not info.deleted:
                return  # another node (or an earlier upload) stored it already
        except Exception:  # noqa: BLE001 - not there: store it
            pass
        await self._obs.put(digest, data)
        self.uploads += 1

    def fetch(self, ref: CodeRef) -> None:
        """Make ``ref``'s tree local, downloading the ZIP if this node lacks it."""
        if self.has(ref):
            return
        data = self.link.call(self._download(ref.sha256), timeout=120)
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise CodeMissing(f"the Object Store's {ref.sha256} does not match its digest")
        CodeStore.put(self, data)
        self.downloads += 1

    async def _download(self, digest: str) -> bytes:
        try:
            result = await self._obs.get(digest)
        except Exception as exc:  # noqa: BLE001
            raise CodeMissing(f"package {digest} is not in the Object Store {self.bucket}: {exc}") from None
        return bytes(result.data)

    def __repr__(self) -> str:
        return f"<ClusterCodeStore {self.root} {self.bucket} up={self.uploads} down={self.downloads}>"
