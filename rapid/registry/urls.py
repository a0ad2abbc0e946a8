"""Function URLs: at most one per function and per alias, found by url-id when served.

Stored through the registry's store as kind ``url``, key ``name/qualifier`` (the qualifier
empty for the unqualified function). Two indexes are kept in memory: by ``(function,
qualifier)`` for the control plane and by url-id for the hot path (``rapid.api.url``),
so serving a request is one dict lookup whatever the number of URLs. A url-id is 32
lowercase letters and digits, as AWS's are, drawn at random and never reused while the
daemon runs. A URL outlives neither its function nor its alias: the registry drops it
when either is deleted.
"""

from __future__ import annotations

import secrets
import string
import time

import msgspec

from rapid.core.errors import ServiceError
from rapid.core.url_event import Cors
from rapid.registry.model import FunctionUrl, encode
from rapid.registry.store import RegistryStore

_ALPHABET = string.ascii_lowercase + string.digits
URL_ID_LENGTH = 32


def url_time(t: float | None = None) -> str:
    """CreationTime / LastModifiedTime as AWS gives them: ``2026-12-01T13:47:45.123456Z``."""
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1_000_000) % 1_000_000:06d}Z"


def new_url_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(URL_ID_LENGTH))


def _key(function: str, qualifier: str | None) -> str:
    return f"{function}/{qualifier or ''}"


class FunctionUrls:
    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self.by_target: dict[tuple[str, str | None], FunctionUrl] = {}
        self.by_id: dict[str, FunctionUrl] = {}

    def load(self) -> None:
        decoder = msgspec.json.Decoder(FunctionUrl)
        for _, body in self.store.load("url"):
            self._index(decoder.decode(body))

    def _index(self, url: FunctionUrl) -> None:
        self.by_target[(url.function, url.qualifier)] = url
        self.by_id[url.url_id] = url

    def get(self, function: str, qualifier: str | None) -> FunctionUrl | None:
        return self.by_target.get((function, qualifier))

    def of_function(self, function: str) -> list[FunctionUrl]:
        """Every URL of ``function``, the unqualified one first, then by alias name."""
        return sorted((u for (f, _), u in self.by_target.items() if f == function),
                      key=lambda u: (u.qualifier is not None, u.qualifier or ""))

    def create(self, function: str, qualifier: str | None, auth_type: str, invoke_mode: str,
               cors: Cors | None, conflict: ServiceError) -> FunctionUrl:
        if (function, qualifier) in self.by_target:
            raise conflict
        url_id = new_url_id()
        while url_id in self.by_id:
            url_id = new_url_id()
        now = url_time()
        url = FunctionUrl(function=function, qualifier=qualifier, url_id=url_id, auth_type=auth_type,
                          invoke_mode=invoke_mode, cors=cors, created=now, modified=now)
        self._put(url)
        return url

    def update(self, url: FunctionUrl, **changes: object) -> FunctionUrl:
        new = msgspec.structs.replace(url, **changes, modified=url_time())
        self._put(new)
        return new

    def delete(self, function: str, qualifier: str | None) -> bool:
        url = self.by_target.pop((function, qualifier), None)
        if url is None:
            return False
        self.by_id.pop(url.url_id, None)
        self.store.delete("url", _key(function, qualifier))
        return True

    def function_deleted(self, function: str) -> None:
        for url in self.of_function(function):
            self.delete(url.function, url.qualifier)

    def _put(self, url: FunctionUrl) -> None:
        self.store.put("url", _key(url.function, url.qualifier), encode(url))
        self._index(url)

    def __repr__(self) -> str:
        return f"<FunctionUrls {len(self.by_id)}>"
