"""Versions and aliases of the Lambda REST API.

=================================================================  ===========================
``POST   /2015-03-31/functions/{name}/versions``                     PublishVersion (201)
``GET    /2015-03-31/functions/{name}/versions``                     ListVersionsByFunction
``POST   /2015-03-31/functions/{name}/aliases``                      CreateAlias (201)
``GET    /2015-03-31/functions/{name}/aliases``                      ListAliases (?FunctionVersion=)
``GET|PUT|DELETE /2015-03-31/functions/{name}/aliases/{alias}``      GetAlias, UpdateAlias, DeleteAlias (204)
=================================================================  ===========================
"""

from __future__ import annotations

from typing import Any

from rapid.api.shapes import Context, alias_shape, body_of, configuration, no_content, ok, page, query_of, typed
from rapid.core import rules
from rapid.core.errors import validation
from rapid.http.message import Request, Response
from rapid.http.router import Router

_PREFIX = "/2015-03-31/functions/{name}"


def _weights(data: dict[str, Any]) -> dict[str, float] | None:
    routing = data.get("RoutingConfig")
    if routing is None:
        return None
    weights = (routing or {}).get("AdditionalVersionWeights") or {}
    if not isinstance(weights, dict) or not all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                                for w in weights.values()):
        raise validation("1 validation error detected: Value at 'routingConfig.additionalVersionWeights' failed "
                         "to satisfy constraint: Member must be a map of version to weight")
    return {str(k): float(v) for k, v in weights.items()}


def _alias_name(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 128 or not rules.ALIAS_NAME.match(name):
        raise validation(f"1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: "
                         r"Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)")
    return name


class VersionsAPI:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def routes(self, router: Router) -> None:
        router.add("POST", _PREFIX + "/versions", self.publish)
        router.add("GET", _PREFIX + "/versions", self.list_versions)
        router.add("POST", _PREFIX + "/aliases", self.create_alias)
        router.add("GET", _PREFIX + "/aliases", self.list_aliases)
        router.add("GET", _PREFIX + "/aliases/{alias}", self.get_alias)
        router.add("PUT", _PREFIX + "/aliases/{alias}", self.update_alias)
        router.add("DELETE", _PREFIX + "/aliases/{alias}", self.delete_alias)

    def publish(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name, _ = self.ctx.target(params["name"])
        data = body_of(req)
        spec = self.ctx.registry.publish(
            name, typed(data, "CodeSha256", str), typed(data, "RevisionId", str), typed(data, "Description", str) or ""
        )
        return ok(201, configuration(self.ctx, spec), rid)

    def list_versions(self, req: Request, params: dict[str, str], rid: str) -> Response:
        ctx = self.ctx
        name, _ = ctx.target(params["name"])
        declared = ctx.declared(name)
        if declared is not None:
            specs = [declared]
        else:
            versions = ctx.registry.versions.get(name, {})
            specs = [ctx.registry.latest[name], *(versions[v] for v in sorted(versions, key=int))]
        chunk, marker = page(specs, query_of(req), None)
        out: dict[str, Any] = {"Versions": [configuration(ctx, s) for s in chunk]}
        if marker:
            out["NextMarker"] = marker
        return ok(200, out, rid)

    def create_alias(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name, qualifier = self.ctx.target(params["name"])
        data = body_of(req)
        version = data.get("FunctionVersion")
        if not isinstance(version, str):
            raise validation("1 validation error detected: Value null at 'functionVersion' failed to satisfy "
                             "constraint: Member must not be null")
        alias = self.ctx.registry.create_alias(
            name, _alias_name(data.get("Name")), version, _weights(data) or {},
            typed(data, "Description", str) or "",
        )
        return ok(201, alias_shape(self.ctx, alias), rid)

    def get_alias(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name, _ = self.ctx.target(params["name"])
        return ok(200, alias_shape(self.ctx, self.ctx.registry.alias(name, params["alias"])), rid)

    def update_alias(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name, _ = self.ctx.target(params["name"])
        data = body_of(req)
        changes: dict[str, Any] = {}
        if data.get("FunctionVersion") is not None:
            changes["version"] = typed(data, "FunctionVersion", str)
        if data.get("Description") is not None:
            changes["description"] = typed(data, "Description", str)
        weights = _weights(data)
        if weights is not None:
            changes["weights"] = weights
        alias = self.ctx.registry.update_alias(name, params["alias"], changes, typed(data, "RevisionId", str))
        return ok(200, alias_shape(self.ctx, alias), rid)

    def delete_alias(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name, _ = self.ctx.target(params["name"])
        self.ctx.registry.delete_alias(name, params["alias"])
        return no_content(rid)

    def list_aliases(self, req: Request, params: dict[str, str], rid: str) -> Response:
        ctx = self.ctx
        name, _ = ctx.target(params["name"])
        query = query_of(req)
        aliases = sorted(ctx.registry.aliases.get(name, {}).values(), key=lambda a: a.name)
        if query.get("FunctionVersion"):
            aliases = [a for a in aliases if a.version == query["FunctionVersion"]]
        chunk, marker = page(aliases, query, None)
        out: dict[str, Any] = {"Aliases": [alias_shape(ctx, a) for a in chunk]}
        if marker:
            out["NextMarker"] = marker
        return ok(200, out, rid)
