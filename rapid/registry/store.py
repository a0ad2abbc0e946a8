"""The registry's store interface: records by kind and key, written through.

The registry keeps everything in memory and writes each change through the store before it
answers, so a store needs only four operations. ``SQLiteStore`` is the embedded default; a
distributed store (a JetStream KV bucket per kind) fits the same interface.

Kinds: ``version`` (key ``name/version``), ``alias`` (``name/alias``), ``url`` (``name/alias``), ``layer``
(``layer/version``), ``function`` (``name``: the function's own settings).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable


class RegistryStoreError(Exception):
    """The store cannot be opened or written."""


class StaleRecord(RegistryStoreError):
    """A shared store (JetStream) refused a write: another node changed the record since
    this one last saw it. Nothing was written; the registry answers as AWS does for a
    concurrent change (412 with a RevisionId, else 409)."""


class RegistryStore(ABC):
    @abstractmethod
    def load(self, kind: str) -> Iterable[tuple[str, bytes]]:
        """Every ``(key, body)`` of ``kind``."""

    @abstractmethod
    def put(self, kind: str, key: str, body: bytes) -> None: ...

    @abstractmethod
    def delete(self, kind: str, key: str) -> None: ...

    @abstractmethod
    def delete_prefix(self, kind: str, prefix: str) -> None:
        """Every record of ``kind`` whose key starts with ``prefix``."""

    @abstractmethod
    def close(self) -> None: ...
