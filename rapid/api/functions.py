"""Functions of the Lambda REST API: create, read, list, update, delete, tags, account.

==========================================================  ==================================
``POST   /2015-03-31/functions``                              CreateFunction (201)
``GET    /2015-03-31/functions/{name}``                       GetFunction
``GET    /2015-03-31/functions/{name}/configuration``         GetFunctionConfiguration
``PUT    /2015-03-31/functions/{name}/configuration``         UpdateFunctionConfiguration
``PUT    /2015-03-31/functions/{name}/code``                  UpdateFunctionCode
``DELETE /2015-03-31/functions/{name}[?Qualifier=N]``         DeleteFunction (204)
``GET    /2015-03-31/functions``                              ListFunctions (Marker, MaxItems, FunctionVersion=ALL)
``GET    /2016-08-19/account-settings``                       GetAccountSettings
``POST/DELETE/GET /2017-03-31/tags/{arn}``                    TagResource (204), UntagResource (204), ListTags
``GET    /_rapid/code/{sha256}.zip``                          the ZIP a GetFunction ``Code.Location`` names
==========================================================  ==================================

Each handler parses the request, checks it (``rapid.core.rules``), calls the registry and
renders the answer; a refusal is a ``ServiceError`` rendered by the app.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from rapid.api.shapes import (
    Context, body_of, code_input, code_location, configuration, no_content, ok, page, query_of, typed,
)
from rapid.core import rules
from rapid.core.errors import invalid_parameter, resource_not_found, validation
from rapid.core.naming import NAME_RE, parse_function_name
from rapid.http.message import Request, Response
from rapid.http.router import Router
from rapid.registry.model import CodeRef, Settings

_PREFIX = "/2015-03-31/functions"


def _settings_changes(data: dict[str, Any], runtime: str | None) -> dict[str, Any]:
    """The Settings fields a Create/UpdateFunctionConfiguration body sets, checked."""
    out: dict[str, Any] = {}
    if "Role" in data:
        rules.check_role(typed(data, "Role", str))
        out["role"] = data["Role"]
    if data.get("Runtime") is not None:
        rules.check_runtime(typed(data, "Runtime", str))
        out["runtime"] = data["Runtime"]
    if data.get("Handler") is not None:
        rules.check_handler(out.get("runtime", runtime or "provided"), typed(data, "Handler", str))
        out["handler"] = data["Handler"]
    if data.get("Description") is not None:
        out["description"] = typed(data, "Description", str)
    timeout = typed(data, "Timeout", int)
    memory = typed(data, "MemorySize", int)
    storage = typed(data.get("EphemeralStorage") or {}, "Size", int, "ephemeralStorage.size")
    rules.check_sizes(memory, timeout, storage)
    if timeout is not None:
        out["timeout"] = timeout
    if memory is not None:
        out["memory"] = memory
    if storage is not None:
        out["ephemeral_storage"] = storage
    snap = data.get("SnapStart")
    if snap is not None:
        apply_on = snap.get("ApplyOn") if isinstance(snap, dict) else None
        if apply_on not in ("PublishedVersions", "None"):
            raise validation(f"1 validation error detected: Value '{apply_on}' at 'snapStart.applyOn' failed to "
                             "satisfy constraint: Member must satisfy enum value set: [PublishedVersions, None]")
        family = rules.runtime_family(out.get("runtime", runtime or "provided"))
        if apply_on == "PublishedVersions" and family != "python":
            raise invalid_parameter(f"SnapStart is not supported here for runtime "
                                    f"{out.get('runtime', runtime)!r}: only the bundled Python runtime forks")
        out["snap_start"] = apply_on
    env = data.get("Environment")
    if env is not None:
        variables = (env or {}).get("Variables") or {}
        if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
            raise validation("1 validation error detected: Value at 'environment.variables' failed to satisfy "
                             "constraint: Member must be a map of strings")
        rules.check_environment(variables)
        out["environment"] = dict(variables)
    if data.get("Layers") is not None:
        layers = data["Layers"]
        if not isinstance(layers, list) or not all(isinstance(a, str) for a in layers):
            raise validation("1 validation error detected: Value at 'layers' failed to satisfy constraint: "
                             "Member must be a list of layer version ARNs")
        rules.check_layers(layers)
        out["layers"] = tuple(layers)
    arch = data.get("Architectures")
    if arch is not None:
        if arch not in (["x86_64"], ["arm64"]):
            raise validation(f"1 validation error detected: Value '{arch}' at 'architectures' failed to satisfy "
                             "constraint: Member must satisfy constraint: [Member must satisfy enum value set: "
                             "[x86_64, arm64]] and Member must have length less than or equal to 1")
        out["architectures"] = tuple(arch)
    tracing = (data.get("TracingConfig") or {}).get("Mode")
    if tracing is not None:
        if tracing not in ("Active", "PassThrough"):
            raise validation(f"1 validation error detected: Value '{tracing}' at 'tracingConfig.mode' failed to "
                             "satisfy constraint: Member must satisfy enum value set: [Active, PassThrough]")
        out["tracing_mode"] = tracing
    logging = data.get("LoggingConfig")
    if isinstance(logging, dict):
        if logging.get("LogFormat") is not None:
            if logging["LogFormat"] not in ("Text", "JSON"):
                raise validation(f"1 validation error detected: Value '{logging['LogFormat']}' at "
                                 "'loggingConfig.logFormat' failed to satisfy constraint: Member must satisfy "
                                 "enum value set: [JSON, Text]")
            out["log_format"] = logging["LogFormat"]
        if logging.get("LogGroup") is not None:
            out["log_group"] = str(logging["LogGroup"])
    dlq = data.get("DeadLetterConfig")
    if isinstance(dlq, dict) and "TargetArn" in dlq:
        out["dead_letter"] = dlq["TargetArn"] or None
    return out


class FunctionsAPI:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def routes(self, router: Router) -> None:
        router.add("POST", _PREFIX, self.create)
        router.add("GET", _PREFIX, self.list)
        router.add("GET", _PREFIX + "/{name}", self.get)
        router.add("DELETE", _PREFIX + "/{name}", self.delete)
        router.add("GET", _PREFIX + "/{name}/configuration", self.get_configuration)
        router.add("PUT", _PREFIX + "/{name}/configuration", self.update_configuration)
        router.add("PUT", _PREFIX + "/{name}/code", self.update_code)
        router.add("GET", "/2016-08-19/account-settings", self.account_settings)
        router.add("POST", "/2017-03-31/tags/{arn}", self.tag)
        router.add("DELETE", "/2017-03-31/tags/{arn}", self.untag)
        router.add("GET", "/2017-03-31/tags/{arn}", self.list_tags)
        router.add("GET", "/_rapid/code/{file}", self.download)

    # -- create ---------------------------------------------------------------------------

    def create(self, req: Request, params: dict[str, str], rid: str) -> asyncio.Future[Response]:
        data = body_of(req)
        name = data.get("FunctionName")
        if not isinstance(name, str):
            raise validation("1 validation error detected: Value null at 'functionName' failed to satisfy "
                             "constraint: Member must not be null")
        if ":" in name:  # an ARN or a partial one names the function too
            name = parse_function_name(name, None, self.ctx.region, self.ctx.account).name
        if not NAME_RE.match(name):
            raise validation(f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
                             r"constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+")
        if data.get("PackageType", "Zip") != "Zip":
            raise invalid_parameter("rapid runs .zip deployment packages only (PackageType Zip): container "
                                    "images are not supported")
        if "Role" not in data:
            rules.check_role(None)
        rules.check_runtime(data.get("Runtime"))
        if data.get("Handler") is None:
            rules.check_handler(data["Runtime"], None)
        changes = _settings_changes(data, data.get("Runtime"))
        tags = data.get("Tags") or {}
        if not isinstance(tags, dict):
            raise validation("1 validation error detected: Value at 'tags' failed to satisfy constraint: "
                             "Member must be a map")
        zipped = code_input(data.get("Code"), "CreateFunction")
        reg = self.ctx.registry
        reg.check_new(name)
        settings, publish = Settings(**changes), bool(data.get("Publish"))

        def created(code: CodeRef) -> Response:
            return ok(201, configuration(self.ctx, reg.create(name, settings, code, tags, publish)), rid)

        return self.ctx.upload(zipped, "CreateFunction", rid, created, self.ctx.layer_refs(settings.layers))

    # -- read -----------------------------------------------------------------------------

    def get(self, req: Request, params: dict[str, str], rid: str) -> Response:
        ctx = self.ctx
        name, qualifier = ctx.target(params["name"], query_of(req).get("Qualifier"))
        spec = ctx.spec(name, qualifier)
        out: dict[str, Any] = {
            "Configuration": configuration(ctx, spec),
            "Code": {"RepositoryType": "S3", "Location": code_location(req, spec.code.sha256)},
        }
        fs = ctx.registry.settings.get(name)
        if fs is not None:
            out["Tags"] = dict(fs.tags)
            if fs.reserved is not None:
                out["Concurrency"] = {"ReservedConcurrentExecutions": fs.reserved}
        return ok(200, out, rid)

    def get_configuration(self, req: Request, params: dict[str, str], rid: str) -> Response:
        ctx = self.ctx
        name, qualifier = ctx.target(params["name"], query_of(req).get("Qualifier"))
        return ok(200, configuration(ctx, ctx.spec(name, qualifier)), rid)

    def list(self, req: Request, params: dict[str, str], rid: str) -> Response:
        ctx = self.ctx
        query = query_of(req)
        every = query.get("FunctionVersion") == "ALL"
        if query.get("FunctionVersion") not in (None, "ALL"):
            raise validation(f"1 validation error detected: Value '{query['FunctionVersion']}' at "
                             "'functionVersion' failed to satisfy constraint: Member must satisfy enum value "
                             "set: [ALL]")
        names = sorted(set(ctx.registry.latest) | set(ctx.host.functions))
        specs = []
        for name in names:
            declared = ctx.declared(name)
            if declared is not None:
                specs.append(declared)
                continue
            specs.append(ctx.registry.latest[name])
            if every:
                versions = ctx.registry.versions.get(name, {})
                specs.extend(versions[v] for v in sorted(versions, key=int))
        chunk, marker = page(specs, query, None)
        out: dict[str, Any] = {"Functions": [configuration(ctx, s) for s in chunk]}
        if marker:
            out["NextMarker"] = marker
        return ok(200, out, rid)

    def account_settings(self, req: Request, params: dict[str, str], rid: str) -> Response:
        host = self.ctx.host
        reg = self.ctx.registry
        total = sum(s.code.size for s in reg.latest.values())
        total += sum(s.code.size for v in reg.versions.values() for s in v.values())
        total += sum(layer.code.size for v in reg.layers.values() for layer in v.values())
        return ok(200, {
            "AccountLimit": {
                "TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800,
                "ConcurrentExecutions": host.max_concurrency,
                "UnreservedConcurrentExecutions": host.unreserved_total,
            },
            "AccountUsage": {"TotalCodeSize": total, "FunctionCount": len(set(reg.latest) | set(host.functions))},
        }, rid)

    def download(self, req: Request, params: dict[str, str], rid: str) -> Response:
        sha = params["file"].removesuffix(".zip")
        path = os.path.join(self.ctx.registry.code.objects, f"{sha}.zip")
        if len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha) or not os.path.isfile(path):
            raise resource_not_found()
        with open(path, "rb") as f:
            return Response(200, f.read(), [("Content-Type", "application/zip"), ("x-amzn-RequestId", rid)])

    # -- change ---------------------------------------------------------------------------

    def update_configuration(
        self, req: Request, params: dict[str, str], rid: str
    ) -> Response | asyncio.Future[Response]:
        ctx = self.ctx
        name, qualifier = ctx.target(params["name"])
        data = body_of(req)
        current = ctx.registry.writable(name)
        changes = _settings_changes(data, current.settings.runtime)
        if "runtime" in changes and "handler" not in changes:
            rules.check_handler(changes["runtime"], current.settings.handler)
        revision_id = typed(data, "RevisionId", str)

        def updated(_: object = None) -> Response:
            return ok(200, configuration(ctx, ctx.registry.update_config(name, changes, revision_id)), rid)

        if changes.get("layers"):  # merged off the loop; the deployment then finds them ready
            refs = ctx.layer_refs(changes["layers"])
            return ctx.off_loop(lambda: ctx.registry.code.merged(refs), updated, rid)
        return updated()

    def update_code(self, req: Request, params: dict[str, str], rid: str) -> asyncio.Future[Response]:
        ctx = self.ctx
        name, _ = ctx.target(params["name"])
        data = body_of(req)
        current = ctx.registry.writable(name)
        zipped = code_input({k: v for k, v in data.items() if k in ("ZipFile", "S3Bucket", "S3Key",
                                                                    "S3ObjectVersion", "ImageUri")},
                            "UpdateFunctionCode")
        revision_id, publish = typed(data, "RevisionId", str), bool(data.get("Publish"))

        def updated(code: CodeRef) -> Response:
            return ok(200, configuration(ctx, ctx.registry.update_code(name, code, revision_id, publish)), rid)

        layers = ctx.layer_refs(current.settings.layers, strict=False)
        return ctx.upload(zipped, "UpdateFunctionCode", rid, updated, layers)

    def delete(self, req: Request, params: dict[str, str], rid: str) -> Response:
        ctx = self.ctx
        name, qualifier = ctx.target(params["name"], query_of(req).get("Qualifier"))
        ctx.registry.delete(name, qualifier)
        return no_content(rid)

    # -- tags -----------------------------------------------------------------------------

    def _tagged(self, arn: str) -> str:
        prefix = f"arn:aws:lambda:{self.ctx.region}:{self.ctx.account}:function:"
        if not arn.startswith(prefix):
            raise validation(f"1 validation error detected: Value '{arn}' at 'resource' failed to satisfy "
                             "constraint: Member must satisfy regular expression pattern: "
                             r"arn:(aws[a-zA-Z-]*):lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:"
                             r"function:[a-zA-Z0-9-_]+")
        rest = arn[len(prefix):]
        if ":" in rest:
            raise invalid_parameter("Tags are not supported on function versions or aliases: tag the function")
        name, _ = self.ctx.target(rest)
        return name

    def tag(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name = self._tagged(params["arn"])
        tags = body_of(req).get("Tags")
        if not isinstance(tags, dict) or not tags:
            raise invalid_parameter("Tags must be a non-empty map of strings")
        self.ctx.registry.set_tags(name, {str(k): str(v) for k, v in tags.items()})
        return no_content(rid)

    def untag(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name = self._tagged(params["arn"])
        from urllib.parse import parse_qs

        keys = parse_qs(req.query).get("tagKeys", []) if req.query else []
        self.ctx.registry.set_tags(name, None, keys)
        return no_content(rid)

    def list_tags(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name = self._tagged(params["arn"])
        fs = self.ctx.registry.settings.get(name)
        return ok(200, {"Tags": dict(fs.tags) if fs else {}}, rid)
