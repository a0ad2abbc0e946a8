"""Layer versions: published once, numbered 1, 2, ... per layer (a deleted number is never
given again, as on AWS), stored through the registry's store, code in the code store."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from rapid.core.errors import resource_not_found
from rapid.registry.code_store import CodeStore
from rapid.registry.model import CodeRef, LayerVersion, encode, now_text
from rapid.registry.store import RegistryStore


class Layers:
    def __init__(self, store: RegistryStore, code: CodeStore, region: str, account: str) -> None:
        self.store = store
        self.code = code
        self.region = region
        self.account = account
        self.versions: dict[str, dict[int, LayerVersion]] = {}
        self.next: dict[str, int] = {}

    def load(self) -> None:
        decoder = msgspec.json.Decoder(LayerVersion)
        for _, body in self.store.load("layer"):
            layer = decoder.decode(body)
            self.versions.setdefault(layer.name, {})[layer.version] = layer
        for key, body in self.store.load("layer-next"):
            self.next[key] = int(body)

    def arn(self, name: str, version: int | None = None) -> str:
        base = f"arn:aws:lambda:{self.region}:{self.account}:layer:{name}"
        return base if version is None else f"{base}:{version}"

    def publish(self, name: str, code: CodeRef, description: str, runtimes: Sequence[str],
                architectures: Sequence[str], license_info: str | None) -> LayerVersion:
        number = self.next.get(name, max(self.versions.get(name, {}), default=0) + 1)
        layer = LayerVersion(
            name=name, version=number, code=code, description=description,
            compatible_runtimes=tuple(runtimes), compatible_architectures=tuple(architectures),
            license_info=license_info, created=now_text(),
        )
        self.store.put("layer", f"{name}/{number:08d}", encode(layer))
        self.store.put("layer-next", name, str(number + 1).encode())
        self.versions.setdefault(name, {})[number] = layer
        self.next[name] = number + 1
        return layer

    def get(self, name: str, number: int) -> LayerVersion:
        found = self.versions.get(name, {}).get(number)
        if found is None:
            raise resource_not_found()
        return found

    def delete(self, name: str, number: int) -> None:
        if number in self.versions.get(name, {}):
            self.store.delete("layer", f"{name}/{number:08d}")
            del self.versions[name][number]
            if not self.versions[name]:
                del self.versions[name]

    def __repr__(self) -> str:
        return f"<Layers {sum(len(v) for v in self.versions.values())} versions of {len(self.versions)} layers>"
