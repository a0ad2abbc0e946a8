"""Layers of the Lambda REST API.

==============================================================  ===============================
``POST   /2018-10-31/layers/{layer}/versions``                    PublishLayerVersion (201)
``GET    /2018-10-31/layers/{layer}/versions``                    ListLayerVersions
``GET    /2018-10-31/layers/{layer}/versions/{number}``           GetLayerVersion
``DELETE /2018-10-31/layers/{layer}/versions/{number}``           DeleteLayerVersion (204)
``GET    /2018-10-31/layers``                                     ListLayers; with ``?find=LayerVersion&Arn=``, GetLayerVersionByArn
==============================================================  ===============================
"""

from __future__ import annotations

import asyncio
from typing import Any

from rapid.api.shapes import Context, body_of, code_location, layer_shape, no_content, ok, page, query_of
from rapid.core import rules
from rapid.core.errors import invalid_parameter, resource_not_found, validation
from rapid.http.message import Request, Response
from rapid.http.router import Router
from rapid.registry.model import CodeRef, LayerVersion

_PREFIX = "/2018-10-31/layers"


def _layer_name(raw: str, ctx: Context) -> str:
    prefix = f"arn:aws:lambda:{ctx.region}:{ctx.account}:layer:"
    name = raw[len(prefix):] if raw.startswith(prefix) else raw
    if not rules.LAYER_NAME.match(name):
        raise validation(f"1 validation error detected: Value '{raw}' at 'layerName' failed to satisfy "
                         "constraint: Member must satisfy regular expression pattern: "
                         r"(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+")
    return name


def _number(raw: str) -> int:
    if not raw.isdigit():
        raise validation(f"1 validation error detected: Value '{raw}' at 'versionNumber' failed to satisfy "
                         "constraint: Member must be a number")
    return int(raw)


def _strings(data: dict[str, Any], key: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    values = data.get(key) or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise validation(f"1 validation error detected: Value at '{key[0].lower() + key[1:]}' failed to satisfy "
                         "constraint: Member must be a list of strings")
    if allowed is not None:
        for v in values:
            if v not in allowed:
                raise validation(f"1 validation error detected: Value '[{v}]' at '{key[0].lower() + key[1:]}' "
                                 f"failed to satisfy constraint: Member must satisfy enum value set: "
                                 f"[{', '.join(allowed)}]")
    return values


class LayersAPI:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def routes(self, router: Router) -> None:
        router.add("POST", _PREFIX + "/{layer}/versions", self.publish)
        router.add("GET", _PREFIX + "/{layer}/versions", self.list_versions)
        router.add("GET", _PREFIX + "/{layer}/versions/{number}", self.get)
        router.add("DELETE", _PREFIX + "/{layer}/versions/{number}", self.delete)
        router.add("GET", _PREFIX, self.list_layers)

    def _shape(self, req: Request, layer: LayerVersion) -> dict[str, Any]:
        return layer_shape(self.ctx, layer, code_location(req, layer.code.sha256))

    def publish(self, req: Request, params: dict[str, str], rid: str) -> asyncio.Future[Response]:
        name = _layer_name(params["layer"], self.ctx)
        data = body_of(req)
        content = data.get("Content")
        if not isinstance(content, dict):
            raise validation("1 validation error detected: Value null at 'content' failed to satisfy constraint: "
                             "Member must not be null")
        if content.get("S3Bucket") or content.get("S3Key"):
            raise invalid_parameter("rapid stores code itself and has no S3: upload the layer ZIP as "
                                    "Content.ZipFile (--zip-file fileb://layer.zip)")
        if content.get("ZipFile") is None:
            raise invalid_parameter("Please provide a source for the layer content: Content.ZipFile")
        runtimes = _strings(data, "CompatibleRuntimes")  # any of AWS's names: a layer may serve other hosts too
        if len(runtimes) > 15:
            raise validation("1 validation error detected: Value at 'compatibleRuntimes' failed to satisfy "
                             "constraint: Member must have length less than or equal to 15")
        architectures = _strings(data, "CompatibleArchitectures", ("x86_64", "arm64"))
        license_info = data.get("LicenseInfo") if isinstance(data.get("LicenseInfo"), str) else None
        description = str(data.get("Description") or "")

        def published(code: CodeRef) -> Response:
            layer = self.ctx.registry.layer_versions.publish(name, code, description, runtimes, architectures,
                                                             license_info)
            return ok(201, self._shape(req, layer), rid)

        return self.ctx.upload(content["ZipFile"], "PublishLayerVersion", rid, published)

    def get(self, req: Request, params: dict[str, str], rid: str) -> Response:
        layer = self.ctx.registry.layer_versions.get(_layer_name(params["layer"], self.ctx), _number(params["number"]))
        return ok(200, self._shape(req, layer), rid)

    def delete(self, req: Request, params: dict[str, str], rid: str) -> Response:
        self.ctx.registry.layer_versions.delete(_layer_name(params["layer"], self.ctx), _number(params["number"]))
        return no_content(rid)

    def _filtered(self, layers: list[LayerVersion], query: dict[str, str]) -> list[LayerVersion]:
        runtime, arch = query.get("CompatibleRuntime"), query.get("CompatibleArchitecture")
        return [lv for lv in layers if (not runtime or runtime in lv.compatible_runtimes)
                and (not arch or arch in lv.compatible_architectures)]

    def list_versions(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name = _layer_name(params["layer"], self.ctx)
        query = query_of(req)
        versions = self.ctx.registry.layers.get(name, {})
        layers = self._filtered([versions[n] for n in sorted(versions, reverse=True)], query)
        chunk, marker = page(layers, query, None)
        out: dict[str, Any] = {"LayerVersions": [_version_item(self._shape(req, lv)) for lv in chunk]}
        if marker:
            out["NextMarker"] = marker
        return ok(200, out, rid)

    def list_layers(self, req: Request, params: dict[str, str], rid: str) -> Response:
        query = query_of(req)
        if query.get("find") == "LayerVersion":
            return self.get_by_arn(req, query, rid)
        reg = self.ctx.registry
        items = []
        for name in sorted(reg.layers):
            matching = self._filtered([reg.layers[name][n] for n in sorted(reg.layers[name], reverse=True)], query)
            if matching:
                items.append({"LayerName": name, "LayerArn": reg.layer_arn(name),
                              "LatestMatchingVersion": _version_item(self._shape(req, matching[0]))})
        chunk, marker = page(items, query, None)
        out: dict[str, Any] = {"Layers": chunk}
        if marker:
            out["NextMarker"] = marker
        return ok(200, out, rid)

    def get_by_arn(self, req: Request, query: dict[str, str], rid: str) -> Response:
        arn = query.get("Arn", "")
        name, number = rules.layer_of(arn)
        if not arn.startswith(self.ctx.registry.layer_arn(name) + ":"):
            raise resource_not_found()
        return ok(200, self._shape(req, self.ctx.registry.layer_versions.get(name, number)), rid)


def _version_item(shape: dict[str, Any]) -> dict[str, Any]:
    """A ListLayerVersions item: the layer version without its Content and LayerArn."""
    return {k: v for k, v in shape.items() if k not in ("Content", "LayerArn")}
