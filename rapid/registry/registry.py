"""The registry: every function created through the API, its versions, aliases and
settings, and every layer version; in memory, written through a ``RegistryStore``.

Theory of operation
-------------------
Each operation checks its input with ``rapid.core.rules`` and the current state, builds the
new immutable record, writes it to the store, swaps it in, then tells the listeners (the
host's ``Deployment``) what changed. A refused operation raises ``ServiceError`` before
anything is written. ``$LATEST`` is replaced whole on every change with a fresh RevisionId;
a published version is a copy of ``$LATEST`` under the next number and never changes.

Functions declared at start (``rapid.toml``, ``--function``, drop-in) are not stored here:
the host knows them, the API lists them and reads them, and refuses to change them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from rapid.core import rules
from rapid.core.errors import ServiceError, invalid_parameter, precondition_failed, resource_conflict, resource_not_found
from rapid.core.routing import LATEST, Route
from rapid.host.archive import MAX_UNZIPPED
from rapid.registry.code_store import CodeStore
from rapid.registry.layers import Layers
from rapid.registry.model import (
    Alias, CodeRef, FunctionSettings, LayerVersion, Settings, VersionSpec, b64_sha, encode, now_text, revision,
)
from rapid.registry.store import RegistryStore, StaleRecord
from rapid.registry.urls import FunctionUrls

_NO_ROUTES: Mapping[str, Route] = {}
Listener = Callable[[str, str, str | None], None]  # (event, function name, version)


class Registry:
    def __init__(self, store: RegistryStore, code: CodeStore, region: str, account: str) -> None:
        self.store = store
        self.code = code
        self.region = region
        self.account = account
        self.latest: dict[str, VersionSpec] = {}
        self.versions: dict[str, dict[str, VersionSpec]] = {}
        self.aliases: dict[str, dict[str, Alias]] = {}
        self.settings: dict[str, FunctionSettings] = {}
        self.layer_versions = Layers(store, code, region, account)
        self.urls = FunctionUrls(store)  # function URLs, of these functions and of declared ones
        self.listeners: list[Listener] = []
        self.declared: set[str] = set()  # names the configuration holds (read-only here)
        self._routes: dict[str, dict[str, Route]] = {}
        # The ARN a RevisionId was checked for, while that operation writes: a shared store
        # (JetStream) that refuses the write as stale then answers 412, not 409.
        self._precondition: str | None = None

    # -- load -----------------------------------------------------------------------------

    def load(self) -> None:
        dec = msgspec.json.Decoder
        for _, body in self.store.load("version"):
            spec = dec(VersionSpec).decode(body)
            if spec.version == LATEST:
                self.latest[spec.name] = spec
            else:
                self.versions.setdefault(spec.name, {})[spec.version] = spec
        for _, body in self.store.load("alias"):
            alias = dec(Alias).decode(body)
            self.aliases.setdefault(alias.function, {})[alias.name] = alias
        for key, body in self.store.load("function"):
            self.settings[key] = dec(FunctionSettings).decode(body)
        self.layer_versions.load()
        self.urls.load()
        for name in list(self.latest):
            self.settings.setdefault(name, FunctionSettings())
            self._reroute(name)

    # -- names ----------------------------------------------------------------------------

    def arn(self, name: str, qualifier: str | None = None) -> str:
        base = f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"
        return f"{base}:{qualifier}" if qualifier else base

    @property
    def layers(self) -> dict[str, dict[int, LayerVersion]]:
        return self.layer_versions.versions

    def layer_arn(self, name: str, version: int | None = None) -> str:
        return self.layer_versions.arn(name, version)

    def function(self, name: str) -> VersionSpec:
        spec = self.latest.get(name)
        if spec is None:
            raise resource_not_found(f"Function not found: {self.arn(name)}")
        return spec

    def writable(self, name: str) -> VersionSpec:
        if name in self.declared:
            raise invalid_parameter(
                f"Function {name} is declared in rapid's configuration (rapid.toml, --function or the drop-in "
                "command); change it there and restart rapid"
            )
        return self.function(name)

    def version(self, name: str, qualifier: str | None) -> VersionSpec:
        """The spec a qualifier names (an alias gives its primary version)."""
        spec = self.function(name)
        if qualifier is None or qualifier == LATEST:
            return spec
        if not qualifier.isdigit():
            alias = self.aliases.get(name, {}).get(qualifier)
            if alias is None:
                raise resource_not_found(f"Function not found: {self.arn(name, qualifier)}")
            qualifier = alias.version
            if qualifier == LATEST:
                return spec
        found = self.versions.get(name, {}).get(qualifier)
        if found is None:
            raise resource_not_found(f"Function not found: {self.arn(name, qualifier)}")
        return found

    def routes(self, name: str) -> Mapping[str, Route]:
        """The function's aliases as routing needs them (kept up to date, not built per call)."""
        return self._routes.get(name, _NO_ROUTES)

    def _reroute(self, name: str) -> None:
        aliases = self.aliases.get(name)
        if aliases:
            self._routes[name] = {a.name: Route(a.version, tuple(a.weights.items())) for a in aliases.values()}
        else:
            self._routes.pop(name, None)

    def _tell(self, event: str, name: str, version: str | None = None) -> None:
        for listener in self.listeners:
            listener(event, name, version)

    # -- functions ------------------------------------------------------------------------

    def _layer_sizes(self, arns: Sequence[str]) -> tuple[int, ...]:
        sizes = []
        for arn in arns:
            name, number = rules.layer_of(arn)
            layer = self.layers.get(name, {}).get(number)
            if layer is None or not arn.startswith(self.layer_arn(name) + ":"):
                raise invalid_parameter(f"Layer version {arn} does not exist.")
            sizes.append(layer.code.size)
        return tuple(sizes)

    def _check_unzipped(self, code: CodeRef, layers: Sequence[str]) -> None:
        """AWS's 250 MB quota, for the function and its layers together, unzipped."""
        total = code.unzipped
        for arn in layers:
            name, number = rules.layer_of(arn)
            layer = self.layers.get(name, {}).get(number)
            total += layer.code.unzipped if layer is not None else 0
        if total > MAX_UNZIPPED:
            raise invalid_parameter(f"Unzipped size must be smaller than {MAX_UNZIPPED} bytes")

    def check_new(self, name: str) -> None:
        if name in self.latest or name in self.declared:
            raise resource_conflict(f"Function already exist: {name}")

    def create(self, name: str, settings: Settings, code: CodeRef, tags: Mapping[str, str], publish: bool) -> VersionSpec:
        """A new function of ``code`` (already in the code store: ``CodeStore.put``)."""
        self.check_new(name)
        layer_sizes = self._layer_sizes(settings.layers)
        self._check_unzipped(code, settings.layers)
        spec = VersionSpec(
            name=name, version=LATEST, code=code, settings=settings, revision_id=revision(),
            last_modified=now_text(), state="Pending", state_reason="The function is being created.",
            last_update_status="InProgress", layer_sizes=layer_sizes,
        )
        self._put_settings(name, FunctionSettings(tags=dict(tags)))
        self._put_latest(spec)
        self._tell("create", name, LATEST)
        if publish:
            self.publish(name, None, None, "")
        return self.latest[name]

    def settle(self, name: str, ok: bool, reason: str | None = None) -> None:
        """The host has (or could not) set up the new ``$LATEST``: Pending/InProgress end."""
        spec = self.latest.get(name)
        if spec is None:
            return
        if ok:
            done = msgspec.structs.replace(spec, state="Active", state_reason=None,
                                           last_update_status="Successful", last_update_reason=None)
        else:
            done = msgspec.structs.replace(spec, state="Failed" if spec.state == "Pending" else spec.state,
                                           state_reason=reason, last_update_status="Failed",
                                           last_update_reason=reason)
        try:
            self._put_latest(done)
        except ServiceError:  # a shared store: another node settled or changed it first
            pass

    def _check_revision(self, spec: VersionSpec, revision_id: str | None) -> None:
        if revision_id is not None and revision_id != spec.revision_id:
            raise precondition_failed(self.arn(spec.name, spec.version if spec.version != LATEST else None))
        self._precondition = self.arn(spec.name) if revision_id is not None else None

    def _stale(self, arn: str) -> ServiceError:
        """A shared store refused a write: another node changed the record meanwhile."""
        if self._precondition is not None:
            return precondition_failed(self._precondition)
        return resource_conflict(f"The operation cannot be performed at this time. An update is in progress for resource: {arn}")

    def update_code(self, name: str, code: CodeRef, revision_id: str | None, publish: bool) -> VersionSpec:
        spec = self.writable(name)
        self._check_revision(spec, revision_id)
        self._check_unzipped(code, spec.settings.layers)
        new = msgspec.structs.replace(
            spec, code=code, revision_id=revision(), last_modified=now_text(), last_update_status="InProgress",
            last_update_reason="The function is being updated.",
        )
        self._put_latest(new)
        self._tell("update", name, LATEST)
        if publish:
            self.publish(name, None, None, "")
        return self.latest[name]

    def update_config(self, name: str, changes: Mapping[str, Any], revision_id: str | None) -> VersionSpec:
        spec = self.writable(name)
        self._check_revision(spec, revision_id)
        settings = msgspec.structs.replace(spec.settings, **changes)
        layer_sizes = self._layer_sizes(settings.layers) if "layers" in changes else spec.layer_sizes
        if "layers" in changes:
            self._check_unzipped(spec.code, settings.layers)
        new = msgspec.structs.replace(
            spec, settings=settings, revision_id=revision(), last_modified=now_text(),
            last_update_status="InProgress", last_update_reason="The function is being updated.",
            layer_sizes=layer_sizes,
        )
        self._put_latest(new)
        self._tell("update", name, LATEST)
        return new

    def delete(self, name: str, qualifier: str | None) -> None:
        self.writable(name)
        if qualifier is not None and qualifier != LATEST:
            if not qualifier.isdigit():
                raise invalid_parameter("Deletion of aliases is not currently supported.")
            if qualifier not in self.versions.get(name, {}):
                raise resource_not_found(f"Function not found: {self.arn(name, qualifier)}")
            used = [a.name for a in self.aliases.get(name, {}).values()
                    if a.version == qualifier or qualifier in a.weights]
            if used:
                raise resource_conflict(f"Unable to delete version because the following aliases reference it: {used}")
            self.store.delete("version", f"{name}/{qualifier}")
            del self.versions[name][qualifier]
            self._tell("delete-version", name, qualifier)
            return
        if qualifier == LATEST:
            raise invalid_parameter("$LATEST version cannot be deleted without deleting the function.")
        self.store.delete_prefix("version", f"{name}/")
        self.store.delete_prefix("alias", f"{name}/")
        self.store.delete("function", name)
        self.latest.pop(name, None)
        self.versions.pop(name, None)
        self.aliases.pop(name, None)
        self._routes.pop(name, None)
        self.settings.pop(name, None)
        self.urls.function_deleted(name)
        self._tell("delete", name, None)

    def _put_latest(self, spec: VersionSpec) -> None:
        try:
            self.store.put("version", f"{spec.name}/{LATEST}", encode(spec))
        except StaleRecord:
            raise self._stale(self.arn(spec.name)) from None
        finally:
            self._precondition = None
        self.latest[spec.name] = spec

    def _put_settings(self, name: str, settings: FunctionSettings) -> None:
        try:
            self.store.put("function", name, encode(settings))
        except StaleRecord:
            raise self._stale(self.arn(name)) from None
        self.settings[name] = settings

    # -- versions -------------------------------------------------------------------------

    def publish(self, name: str, code_sha256: str | None, revision_id: str | None, description: str) -> VersionSpec:
        spec = self.writable(name)
        self._check_revision(spec, revision_id)
        if code_sha256 is not None and code_sha256 != b64_sha(spec.code):
            raise invalid_parameter(
                f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST "
                f"({b64_sha(spec.code)}). Please try again with the CodeSHA256 in $LATEST."
            )
        published = self.versions.get(name, {})
        if published:
            last = published[max(published, key=int)]
            if last.published_from == spec.revision_id:  # $LATEST unchanged since
                return last
        fs = self.settings.get(name, FunctionSettings())
        number = str(fs.next_version)
        latest_revision = revision()  # publishing changes $LATEST's RevisionId too, as on AWS
        version = msgspec.structs.replace(
            spec, version=number, revision_id=revision(), published_from=latest_revision,
            last_modified=now_text(), state="Active",
            state_reason=None, last_update_status="Successful", last_update_reason=None,
            settings=msgspec.structs.replace(spec.settings, description=description or spec.settings.description),
        )
        self._put_settings(name, msgspec.structs.replace(fs, next_version=fs.next_version + 1))
        self.store.put("version", f"{name}/{number}", encode(version))
        self.versions.setdefault(name, {})[number] = version
        self._put_latest(msgspec.structs.replace(self.latest[name], revision_id=latest_revision))
        self._tell("publish", name, number)
        return version

    # -- aliases --------------------------------------------------------------------------

    def _alias_target(self, name: str, version: str, weights: Mapping[str, float]) -> None:
        if version != LATEST and version not in self.versions.get(name, {}):
            raise resource_not_found(f"Function not found: {self.arn(name, version)}")
        rules.check_routing(version, weights, list(self.versions.get(name, {})))

    def alias(self, name: str, alias: str) -> Alias:
        self.function(name)
        found = self.aliases.get(name, {}).get(alias)
        if found is None:
            raise resource_not_found(f"Cannot find alias arn: {self.arn(name, alias)}")
        return found

    def create_alias(self, name: str, alias: str, version: str, weights: Mapping[str, float], description: str) -> Alias:
        self.writable(name)
        if alias in self.aliases.get(name, {}):
            raise resource_conflict(f"Alias already exists: {self.arn(name, alias)}")
        self._alias_target(name, version, weights)
        record = Alias(function=name, name=alias, version=version, weights=dict(weights),
                       description=description, revision_id=revision())
        self._put_alias(record)
        return record

    def update_alias(self, name: str, alias: str, changes: Mapping[str, Any], revision_id: str | None) -> Alias:
        self.writable(name)
        current = self.alias(name, alias)
        if revision_id is not None and revision_id != current.revision_id:
            raise precondition_failed(self.arn(name, alias))
        self._precondition = self.arn(name, alias) if revision_id is not None else None
        new = msgspec.structs.replace(current, **changes, revision_id=revision())
        self._alias_target(name, new.version, new.weights)
        self._put_alias(new)
        return new

    def delete_alias(self, name: str, alias: str) -> None:
        self.writable(name)
        if alias in self.aliases.get(name, {}):
            self.store.delete("alias", f"{name}/{alias}")
            del self.aliases[name][alias]
            self.urls.delete(name, alias)
            self._reroute(name)
            self._tell("alias", name, alias)

    def _put_alias(self, record: Alias) -> None:
        try:
            self.store.put("alias", f"{record.function}/{record.name}", encode(record))
        except StaleRecord:
            raise self._stale(self.arn(record.function, record.name)) from None
        finally:
            self._precondition = None
        self.aliases.setdefault(record.function, {})[record.name] = record
        self._reroute(record.function)
        self._tell("alias", record.function, record.name)

    # -- settings -------------------------------------------------------------------------

    def set_tags(self, name: str, tags: Mapping[str, str] | None, remove: Sequence[str] = ()) -> None:
        self.writable(name)
        fs = self.settings.get(name, FunctionSettings())
        merged = {**fs.tags, **(tags or {})}
        for key in remove:
            merged.pop(key, None)
        self._put_settings(name, msgspec.structs.replace(fs, tags=merged))

    def set_reserved(self, name: str, reserved: int | None) -> None:
        self.writable(name)
        fs = self.settings.get(name, FunctionSettings())
        self._put_settings(name, msgspec.structs.replace(fs, reserved=reserved))
        self._tell("concurrency", name, None)

    def set_provisioned(self, name: str, qualifier: str, count: int | None) -> None:
        self.writable(name)
        fs = self.settings.get(name, FunctionSettings())
        provisioned = dict(fs.provisioned)
        if count is None:
            provisioned.pop(qualifier, None)
        else:
            provisioned[qualifier] = count
        self._put_settings(name, msgspec.structs.replace(fs, provisioned=provisioned))
        self._tell("provisioned", name, qualifier)

    def __repr__(self) -> str:
        return f"<Registry functions={len(self.latest)} {self.layer_versions!r} {self.store!r}>"
