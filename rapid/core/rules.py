"""What the Lambda control plane accepts: runtimes, handlers, ranges, variables, layers,
reserved concurrency and alias weights, worded as AWS words its refusals.

Pure functions of plain values: each returns nothing or raises ``ServiceError``
(``InvalidParameterValueException`` unless AWS answers otherwise). The API modules call them
before anything is stored, so a refused request changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from rapid.core.errors import ServiceError, function_not_found, invalid_parameter, validation
from rapid.core.reserved_env import MAX_ENV_BYTES, RESERVED_ENV

PYTHON_RUNTIMES = tuple(f"python3.{minor}" for minor in range(9, 15))
NODE_RUNTIMES = tuple(f"nodejs{major}.x" for major in (18, 20, 22, 24))
PROVIDED_RUNTIMES = ("provided", "provided.al2", "provided.al2023")
RUNTIMES = PROVIDED_RUNTIMES + PYTHON_RUNTIMES + NODE_RUNTIMES
# Runtimes AWS has deprecated for creation and update.
_DEPRECATED = re.compile(r"^(python2\.7|python3\.[678]|nodejs([0-9]|1[0-6])?(\.x|\.10)?|go1\.x|ruby2\.\d|"
                         r"java8|dotnetcore\d\.\d|dotnet6)$")
_NODE_RUNTIME = re.compile(r"^nodejs(\d+)\.x$")

MIN_MEMORY, MAX_MEMORY = 128, 10240
MIN_TIMEOUT, MAX_TIMEOUT = 1, 900
MIN_STORAGE, MAX_STORAGE = 512, 10240
MAX_LAYERS = 5
MIN_UNRESERVED = 100
MAX_ZIP = 50 * 1024 * 1024  # a direct upload
_HANDLER = re.compile(r"^[^\s]+$")
_ROLE = re.compile(r"^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
_ENV_KEY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")  # AWS accepts one letter too
_LAYER_VERSION_ARN = re.compile(
    r"^arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:(?P<name>[a-zA-Z0-9-_]+):(?P<version>[0-9]+)$"
)
LAYER_NAME = re.compile(r"^[a-zA-Z0-9-_]{1,140}$")
ALIAS_NAME = re.compile(r"^(?!^[0-9]+$)([a-zA-Z0-9-_]+)$")


def _one(message: str) -> ServiceError:
    return validation(f"1 validation error detected: {message}")


def runtime_family(runtime: str) -> str:
    """``provided``, ``python`` or ``node``: which kind of bootstrap a runtime needs."""
    if runtime in PROVIDED_RUNTIMES:
        return "provided"
    return "python" if runtime.startswith("python") else "node"


def check_runtime(runtime: str | None) -> None:
    if runtime is None:
        raise invalid_parameter("Runtime is required for .zip deployment packages.")
    if runtime in RUNTIMES:
        return
    m = _NODE_RUNTIME.match(runtime)
    if m and int(m.group(1)) >= 18:
        return  # a newer Node release: the bundled runtime serves it
    if _DEPRECATED.match(runtime):
        raise invalid_parameter(
            f"The runtime parameter of {runtime} is no longer supported for creating or updating AWS "
            "Lambda functions. We recommend you use a supported runtime while creating or updating functions."
        )
    raise invalid_parameter(
        f"Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: "
        f"[{', '.join(RUNTIMES)}] or be a valid ARN"
    )


def check_handler(runtime: str, handler: str | None) -> None:
    if handler is None:
        if runtime_family(runtime) != "provided":
            raise invalid_parameter("Handler is required for .zip deployment packages.")
        return
    if len(handler) > 128 or not _HANDLER.match(handler):
        raise _one(
            f"Value '{handler}' at 'handler' failed to satisfy constraint: Member must satisfy regular "
            r"expression pattern: [^\s]+"
        )


def check_role(role: str | None) -> None:
    if role is None:
        raise _one("Value null at 'role' failed to satisfy constraint: Member must not be null")
    if not _ROLE.match(role):
        raise _one(
            f"Value '{role}' at 'role' failed to satisfy constraint: Member must satisfy regular "
            r"expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
        )


def _range(name: str, value: int | None, low: int, high: int) -> None:
    if value is None:
        return
    if value < low:
        raise _one(f"Value '{value}' at '{name}' failed to satisfy constraint: Member must have value "
                   f"greater than or equal to {low}")
    if value > high:
        raise _one(f"Value '{value}' at '{name}' failed to satisfy constraint: Member must have value "
                   f"less than or equal to {high}")


def check_sizes(memory: int | None, timeout: int | None, storage: int | None) -> None:
    _range("memorySize", memory, MIN_MEMORY, MAX_MEMORY)
    _range("timeout", timeout, MIN_TIMEOUT, MAX_TIMEOUT)
    _range("ephemeralStorage.size", storage, MIN_STORAGE, MAX_STORAGE)


def check_environment(variables: Mapping[str, str]) -> None:
    """AWS counts the JSON of the variables against the 4 KB limit."""
    for key in variables:
        if not _ENV_KEY.match(key):
            raise _one(
                "Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy "
                r"constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]"
            )
    reserved = sorted(RESERVED_ENV & variables.keys())
    if reserved:
        raise invalid_parameter(
            "Lambda was unable to configure your environment variables because the environment variables "
            "you have provided contains reserved keys that are currently not supported for modification. "
            f"Reserved keys used in this request: {', '.join(reserved)}"
        )
    measured = "{" + ",".join(f'"{k}":"{v}"' for k, v in variables.items()) + "}"
    if len(measured.encode()) > MAX_ENV_BYTES:
        raise invalid_parameter(
            "Lambda was unable to configure your environment variables because the environment variables "
            "you have provided exceeded the 4KB limit. String measured: " + measured
        )


def layer_of(arn: str) -> tuple[str, int]:
    """``(layer name, version)`` of a layer version ARN, or a ValidationException."""
    m = _LAYER_VERSION_ARN.match(arn)
    if m is None:
        raise _one(
            f"Value '[{arn}]' at 'layers' failed to satisfy constraint: Member must satisfy constraint: "
            "[Member must have length less than or equal to 140, Member must have length greater than or "
            "equal to 1, Member must satisfy regular expression pattern: "
            r"arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+, Member must not be null]"
        )
    return m["name"], int(m["version"])


def check_layers(arns: Sequence[str]) -> None:
    if len(arns) > MAX_LAYERS:
        raise invalid_parameter("Cannot reference more than 5 layers.")
    seen: set[str] = set()
    for arn in arns:
        name, _ = layer_of(arn)
        if name in seen:
            raise invalid_parameter("Two different versions of the same layer are not allowed to be referenced "
                                    "in the same function. " + f"{arn} is a duplicate")
        seen.add(name)


def check_reserved(requested: int, others_reserved: int, account_limit: int) -> None:
    """AWS's 100-unreserved rule, for a function asking ``requested`` while every other
    function together reserves ``others_reserved``."""
    if requested < 0:
        raise _one(f"Value '{requested}' at 'reservedConcurrentExecutions' failed to satisfy constraint: "
                   "Member must have value greater than or equal to 0")
    if account_limit - others_reserved - requested < MIN_UNRESERVED:
        raise invalid_parameter(
            "Specified ReservedConcurrentExecutions for function decreases account's "
            f"UnreservedConcurrentExecution below its minimum value of [{MIN_UNRESERVED}]."
        )


def check_routing(primary: str, weights: Mapping[str, float], versions: Sequence[str]) -> None:
    """An alias's RoutingConfig: one extra published version, weight in [0, 1)."""
    if primary == "$LATEST" and weights:
        raise invalid_parameter("$LATEST is not supported for an alias pointing to more than 1 version")
    if len(weights) > 1:
        raise invalid_parameter("Number of items in AdditionalVersionWeights cannot be greater than 1")
    for version, weight in weights.items():
        if version == "$LATEST" or not version.isdigit():
            raise invalid_parameter(f"Invalid function version {version}. Function version {version} is not "
                                    "a published version")
        if not 0.0 <= weight < 1.0:
            raise _one(f"Value '{weight}' at 'routingConfig.additionalVersionWeights' failed to satisfy "
                       "constraint: Map value must satisfy constraint: [Member must have value less than "
                       "or equal to 1.0, Member must have value greater than or equal to 0.0]")
        if version == primary:
            raise invalid_parameter(f"Invalid function version {version}: the primary version of an alias "
                                    "cannot also be an additional version")
        if version not in versions:
            raise function_not_found(f"version {version}")
