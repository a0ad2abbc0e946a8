"""The Lambda control plane's JSON: request bodies in, AWS's response shapes out.

``Context`` is what every control-plane handler works with: the registry, the host and the
deployment. ``configuration`` renders a version spec as AWS's ``FunctionConfiguration``;
functions declared at start get a spec made up from their configuration (``declared``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs

import msgspec

from rapid.api.errors import render
from rapid.core import rules
from rapid.core.errors import ServiceError, function_not_found, invalid_parameter, not_json, validation
from rapid.core.naming import parse_function_name
from rapid.core.routing import LATEST
from rapid.host.deployment import Deployment
from rapid.host.host import Host
from rapid.http.message import Request, Response
from rapid.registry.model import Alias, CodeRef, LayerVersion, Settings, VersionSpec
from rapid.registry.model import b64_sha, now_text
from rapid.registry.registry import Registry

T = TypeVar("T")
MAX_CONTROL_REQUEST = 69_905_067  # base64 of 50 MB and its JSON, as AWS counts it
_RUNTIME_NAMES = {"provided": "provided", "shell": "provided", "node": "nodejs20.x",
                  "python": f"python3.{sys.version_info.minor}"}


@dataclass
class Context:
    host: Host
    registry: Registry
    deployment: Deployment
    _declared: dict[str, VersionSpec] = field(default_factory=dict)

    @property
    def region(self) -> str:
        return self.host.region

    @property
    def account(self) -> str:
        return self.host.config.account_id

    def target(self, raw: str, qualifier: str | None = None) -> tuple[str, str | None]:
        """``(name, qualifier)`` from a name, ``name:qualifier`` or an ARN; 404 if unknown."""
        t = parse_function_name(raw, qualifier, self.region, self.account)
        if t.name not in self.registry.latest and t.name not in self.host.functions:
            raise function_not_found(self.registry.arn(t.name, t.qualifier))
        return t.name, t.qualifier

    def declared(self, name: str) -> VersionSpec | None:
        """A function of rapid.toml / --function / drop-in, as a spec (made once)."""
        if name in self.registry.latest and name not in self.registry.declared:
            return None
        fn = self.host.functions.get(name)
        if fn is None:
            return None
        spec = self._declared.get(name)
        if spec is None:
            c = fn.config
            data = b""
            if c.path and c.path.endswith(".zip"):
                try:
                    with open(c.path, "rb") as f:
                        data = f.read()
                except OSError:
                    pass
            spec = VersionSpec(
                name=name, version=fn.version,
                code=CodeRef(sha256=hashlib.sha256(data).hexdigest(), size=len(data)),
                settings=Settings(
                    runtime=_RUNTIME_NAMES.get(c.runtime, "provided"), handler=c.handler or None,
                    role=f"arn:aws:iam::{self.account}:role/rapid-declared", timeout=c.timeout, memory=c.memory,
                    environment={} if c.inherit_environment else dict(c.environment),
                    ephemeral_storage=c.ephemeral_storage,
                    snap_start="PublishedVersions" if c.snap_start else "None",
                ),
                revision_id="00000000-0000-0000-0000-000000000000", last_modified=now_text(), origin="config",
            )
            self._declared[name] = spec
        return spec

    def spec(self, name: str, qualifier: str | None) -> VersionSpec:
        declared = self.declared(name)
        if declared is not None:
            if qualifier not in (None, LATEST, declared.version):
                raise function_not_found(self.registry.arn(name, qualifier))
            return declared
        return self.registry.version(name, qualifier)


    def layer_refs(self, arns: Sequence[str], strict: bool = True) -> list[CodeRef]:
        """The code of each layer version named. An unknown one is refused (``strict``) or
        skipped: a function keeps the layer versions deleted since it named them."""
        refs = []
        for arn in arns:
            name, number = rules.layer_of(arn)
            layer = self.registry.layers.get(name, {}).get(number)
            if layer is None or not arn.startswith(self.registry.layer_arn(name) + ":"):
                if strict:
                    raise invalid_parameter(f"Layer version {arn} does not exist.")
                continue
            refs.append(layer.code)
        return refs

    def upload(self, raw: Any, operation: str, rid: str, then: Callable[[CodeRef], Response],
               layers: Sequence[CodeRef] = ()) -> asyncio.Future[Response]:
        """Decode a base64 ``ZipFile`` and put it in the code store (and merge the layers
        it will run with) on a worker thread; then ``then(ref)`` on the loop."""
        code = self.registry.code

        def work() -> CodeRef:
            ref = code.put(zip_bytes(raw, operation))
            if layers:
                code.merged(layers)
            return ref

        return self.off_loop(work, then, rid)

    def off_loop(self, work: Callable[[], T], then: Callable[[T], Response], rid: str) -> asyncio.Future[Response]:
        """Run blocking ``work`` (unpacking, merging layers) on a worker thread, so a large
        package never stalls the loop and the runtimes it serves; then ``then(result)`` on
        the loop, whose answer (or refusal) is the request's. The change is made even if
        the caller has gone meanwhile."""
        loop = asyncio.get_running_loop()
        out: asyncio.Future[Response] = loop.create_future()

        def done(finished: asyncio.Future[T]) -> None:
            try:
                answer = then(finished.result())
            except ServiceError as exc:
                answer = render(exc, rid)
            except Exception as exc:  # noqa: BLE001 - the caller gets an answer whatever happens
                answer = render(ServiceError(500, "ServiceException", f"rapid could not store the code: {exc}",
                                             kind="Service"), rid)
            if not out.done():
                out.set_result(answer)

        loop.run_in_executor(None, work).add_done_callback(done)
        return out


def body_of(req: Request) -> dict[str, Any]:
    if req.too_large:
        raise ServiceError(413, "RequestEntityTooLargeException",
                           f"Request must be smaller than {MAX_CONTROL_REQUEST} bytes for the operation")
    if not req.body:
        return {}
    try:
        data = msgspec.json.decode(req.body)
    except msgspec.DecodeError:
        raise not_json() from None
    if not isinstance(data, dict):
        raise not_json()
    return data


def query_of(req: Request) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(req.query, keep_blank_values=True).items()} if req.query else {}


def typed(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str | None = None) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise validation(f"1 validation error detected: Value '{value}' at '{where or key[0].lower() + key[1:]}' "
                         "failed to satisfy constraint: Member must be of the right type")
    return value


def zip_bytes(raw: Any, operation: str) -> bytes:
    """The base64 ``ZipFile`` of a request, decoded, within AWS's 50 MB."""
    if not isinstance(raw, str):
        raise invalid_parameter("ZipFile must be base64-encoded bytes")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_parameter("Could not unzip uploaded file. Please check your file, then try to upload again.") from None
    if len(data) > 50 * 1024 * 1024:
        raise ServiceError(413, "RequestEntityTooLargeException",
                           f"Request must be smaller than {MAX_CONTROL_REQUEST} bytes for the {operation} operation")
    return data


def code_input(code: Any, operation: str) -> str:
    """The ``ZipFile`` of a ``Code`` (still base64: ``Context.upload`` decodes it)."""
    if not isinstance(code, dict):
        raise invalid_parameter("Code is required: give Code.ZipFile, the base64 of a .zip deployment package")
    if code.get("S3Bucket") or code.get("S3Key") or code.get("S3ObjectVersion"):
        raise invalid_parameter("rapid stores code itself and has no S3: upload the ZIP as Code.ZipFile "
                                "(aws lambda ... --zip-file fileb://function.zip)")
    if code.get("ImageUri"):
        raise invalid_parameter("rapid runs .zip deployment packages only (PackageType Zip): container images "
                                "(ImageUri) are not supported")
    if code.get("ZipFile") is None:
        raise invalid_parameter("Please provide a source for function code: Code.ZipFile")
    if not isinstance(code["ZipFile"], str):
        raise invalid_parameter("ZipFile must be base64-encoded bytes")
    return code["ZipFile"]


def ok(status: int, obj: object, rid: str) -> Response:
    return Response.json(status, obj, [("x-amzn-RequestId", rid)])


def no_content(rid: str) -> Response:
    return Response(204, b"", [("x-amzn-RequestId", rid)])


# -- renderings ------------------------------------------------------------------------


def configuration(ctx: Context, spec: VersionSpec) -> dict[str, Any]:
    s = spec.settings
    reg = ctx.registry
    arn = reg.arn(spec.name, None if spec.version == LATEST else spec.version)
    out: dict[str, Any] = {
        "FunctionName": spec.name,
        "FunctionArn": arn,
        "Runtime": s.runtime,
        "Role": s.role,
        "Handler": s.handler,
        "CodeSize": spec.code.size,
        "Description": s.description,
        "Timeout": s.timeout,
        "MemorySize": s.memory,
        "LastModified": spec.last_modified,
        "CodeSha256": b64_sha(spec.code),
        "Version": spec.version,
        "TracingConfig": {"Mode": s.tracing_mode},
        "RevisionId": spec.revision_id,
        "State": spec.state,
        "LastUpdateStatus": spec.last_update_status,
        "PackageType": "Zip",
        "Architectures": list(s.architectures),
        "EphemeralStorage": {"Size": s.ephemeral_storage},
        "SnapStart": snap_start_shape(spec),
        "LoggingConfig": {"LogFormat": s.log_format, "LogGroup": s.log_group or f"/aws/lambda/{spec.name}"},
    }
    if s.handler is None:
        del out["Handler"]
    if s.environment:
        out["Environment"] = {"Variables": dict(s.environment)}
    if s.layers:
        sizes = spec.layer_sizes + (0,) * (len(s.layers) - len(spec.layer_sizes))
        out["Layers"] = [{"Arn": arn, "CodeSize": size} for arn, size in zip(s.layers, sizes)]
    if s.dead_letter:
        out["DeadLetterConfig"] = {"TargetArn": s.dead_letter}
    if spec.state_reason:
        out["StateReason"] = spec.state_reason
        out["StateReasonCode"] = "Creating" if spec.state == "Pending" else "InternalError"
    if spec.last_update_reason:
        out["LastUpdateStatusReason"] = spec.last_update_reason
    return out


def alias_shape(ctx: Context, alias: Alias) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AliasArn": ctx.registry.arn(alias.function, alias.name),
        "Name": alias.name,
        "FunctionVersion": alias.version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    }
    if alias.weights:
        out["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.weights)}
    return out


def layer_shape(ctx: Context, layer: LayerVersion, location: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Content": {"Location": location, "CodeSha256": b64_sha(layer.code), "CodeSize": layer.code.size},
        "LayerArn": ctx.registry.layer_arn(layer.name),
        "LayerVersionArn": ctx.registry.layer_arn(layer.name, layer.version),
        "Description": layer.description,
        "CreatedDate": layer.created,
        "Version": layer.version,
        "CompatibleRuntimes": list(layer.compatible_runtimes),
        "CompatibleArchitectures": list(layer.compatible_architectures),
    }
    if layer.license_info is not None:
        out["LicenseInfo"] = layer.license_info
    return out


def code_location(req: Request, sha256: str) -> str:
    host = req.headers.get("host", "127.0.0.1")
    return f"http://{host}/_rapid/code/{sha256}.zip"


def page(items: list[Any], query: dict[str, str], key: Any) -> tuple[list[Any], str | None]:
    """AWS-style Marker/MaxItems pagination over ``items`` sorted by ``key``."""
    raw = query.get("MaxItems")
    max_items = 50
    if raw is not None:
        try:
            max_items = int(raw)
        except ValueError:
            raise validation(f"1 validation error detected: Value '{raw}' at 'maxItems' failed to satisfy "
                             "constraint: Member must be a number") from None
        if not 1 <= max_items <= 10000:
            raise validation(f"1 validation error detected: Value '{max_items}' at 'maxItems' failed to satisfy "
                             "constraint: Member must have value between 1 and 10000")
    start = 0
    marker = query.get("Marker")
    if marker:
        try:
            start = int(base64.urlsafe_b64decode(marker.encode()).decode())
        except (ValueError, binascii.Error):
            raise invalid_parameter(f"Invalid marker: {marker}") from None
    chunk = items[start:start + max_items]
    following = start + max_items
    next_marker = base64.urlsafe_b64encode(str(following).encode()).decode() if following < len(items) else None
    return chunk, next_marker


def snap_start_shape(spec: VersionSpec) -> dict[str, str]:
    """``SnapStart``, as AWS shows it: applied to published versions only (``$LATEST`` is
    Off), and to a function declared with ``snap_start = true`` in the TOML file as it runs."""
    apply_on = spec.settings.snap_start
    on = apply_on == "PublishedVersions" and (spec.version != LATEST or spec.origin == "config")
    return {"ApplyOn": apply_on, "OptimizationStatus": "On" if on else "Off"}
