"""The registry in SQLite, in ``DATA_DIR/registry.db``: one table of records, WAL journal.

Every write is its own transaction, committed before the API answers. In WAL mode with
``synchronous=NORMAL`` a committed transaction survives the daemon being killed (``kill
-9``); only a power loss may take the last few back.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable

from rapid.registry.store import RegistryStore, RegistryStoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (kind, key)
)
"""


class SQLiteRegistryStore(RegistryStore):
    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, "registry.db")
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise RegistryStoreError(f"{self.path}: {exc}") from None

    def load(self, kind: str) -> Iterable[tuple[str, bytes]]:
        return list(self._db.execute("SELECT key, body FROM records WHERE kind = ? ORDER BY key", (kind,)))

    def put(self, kind: str, key: str, body: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO records (kind, key, body) VALUES (?, ?, ?)", (kind, key, body))

    def delete(self, kind: str, key: str) -> None:
        self._db.execute("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))

    def delete_prefix(self, kind: str, prefix: str) -> None:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        self._db.execute("DELETE FROM records WHERE kind = ? AND key LIKE ? ESCAPE '\\'", (kind, escaped + "%"))

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"<SQLiteRegistryStore {self.path}>"


def read_records(data_dir: str, kind: str) -> list[tuple[str, bytes]]:
    """Every ``(key, body)`` of ``kind`` in ``data_dir``'s registry, read-only (for ``rapid
    queue``, beside a running daemon or none); empty when there is no registry there."""
    path = os.path.join(data_dir, "registry.db")
    if not os.path.exists(path):
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [(key, bytes(body)) for key, body in
                db.execute("SELECT key, body FROM records WHERE kind = ? ORDER BY key", (kind,))]
    except sqlite3.OperationalError:  # no table yet
        return []
    finally:
        db.close()
