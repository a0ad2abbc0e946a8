"""What the registry holds, as immutable msgspec Structs.

A function is its ``$LATEST`` version spec plus its published versions, its aliases and its
settings (tags, reserved concurrency, provisioned concurrency per qualifier). A version spec
is everything an instance needs to run: the code digest and the configuration, the layer
versions in order, and the revision id that changes with every change. Published versions
are never changed; ``$LATEST`` is replaced whole by every update (``msgspec.structs.replace``).
"""

from __future__ import annotations

import base64
import time
import uuid

import msgspec
from msgspec import Struct

from rapid.core.url_event import Cors


class CodeRef(Struct, frozen=True, kw_only=True):
    sha256: str  # hex of the ZIP's SHA-256; its name in the code store
    size: int  # bytes of the ZIP
    unzipped: int = 0  # bytes of the tree


class Settings(Struct, frozen=True, kw_only=True):
    """A version's configuration, as CreateFunction/UpdateFunctionConfiguration set it."""

    runtime: str
    handler: str | None = None
    role: str
    description: str = ""
    timeout: int = 3
    memory: int = 128
    environment: dict[str, str] = {}
    layers: tuple[str, ...] = ()  # layer version ARNs, merged into /opt in this order
    architectures: tuple[str, ...] = ("x86_64",)
    ephemeral_storage: int = 512
    tracing_mode: str = "PassThrough"
    log_format: str = "Text"
    log_group: str = ""
    dead_letter: str | None = None
    snap_start: str = "None"  # SnapStart.ApplyOn: PublishedVersions | None


class VersionSpec(Struct, frozen=True, kw_only=True):
    """One version of a function: code, configuration, layers; immutable once published."""

    name: str
    version: str  # "$LATEST" or "1", "2", ...
    code: CodeRef
    settings: Settings
    revision_id: str
    last_modified: str  # AWS's format: 2026-12-01T13:47:45.000+0000
    state: str = "Active"  # Pending | Active | Failed
    state_reason: str | None = None
    last_update_status: str = "Successful"  # InProgress | Successful | Failed
    last_update_reason: str | None = None
    layer_sizes: tuple[int, ...] = ()  # CodeSize of each layer, in the order of settings.layers
    published_from: str = ""  # a published version: $LATEST's RevisionId right after publishing
    origin: str = "api"  # "api", or "config" for a function declared at start (rapid.toml, --function)


class Alias(Struct, frozen=True, kw_only=True):
    function: str
    name: str
    version: str
    weights: dict[str, float] = {}
    description: str = ""
    revision_id: str


class LayerVersion(Struct, frozen=True, kw_only=True):
    name: str
    version: int
    code: CodeRef
    description: str = ""
    compatible_runtimes: tuple[str, ...] = ()
    compatible_architectures: tuple[str, ...] = ()
    license_info: str | None = None
    created: str


class FunctionUrl(Struct, frozen=True, kw_only=True):
    """A function URL: the function (or alias) it invokes and how (``rapid.registry.urls``)."""

    function: str
    qualifier: str | None  # an alias name, or None for the unqualified function ($LATEST)
    url_id: str  # 32 lowercase alphanumerics: the host's first label
    auth_type: str  # NONE | AWS_IAM
    invoke_mode: str = "BUFFERED"  # BUFFERED | RESPONSE_STREAM
    cors: Cors | None = None
    created: str  # ISO 8601, as AWS gives CreationTime
    modified: str


class FunctionSettings(Struct, frozen=True, kw_only=True):
    """What belongs to the function rather than to one version."""

    tags: dict[str, str] = {}
    reserved: int | None = None
    provisioned: dict[str, int] = {}  # qualifier -> requested provisioned concurrency
    next_version: int = 1


encode = msgspec.json.Encoder().encode


def now_text(t: float | None = None) -> str:
    """AWS's LastModified format: ``2026-12-01T13:47:45.123+0000``."""
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}+0000"


def revision() -> str:
    return str(uuid.uuid4())


def b64_sha(code: CodeRef) -> str:
    """CodeSha256 as AWS gives it: the base64 of the ZIP's SHA-256."""
    return base64.b64encode(bytes.fromhex(code.sha256)).decode("ascii")
