"""The configuration's sources before they are merged: the command line, the environment and
``rapid.toml``, each read into plain dicts in one flat shape.

The command line and the environment name the same keys (``SERVER_KEYS`` for the server,
``FUNCTION_KEYS`` for the functions they declare); every key has one environment variable
(``ENV_VARS``) and, in drop-in mode, the RIE's own variables fill the function
(``RIE_VARS``). Their values arrive as strings: ``value_of`` turns each into what the
``Config`` Struct's type for it expects, so that ``rapid.config.load`` validates every source
by the same rules. A problem is a ``ConfigError``: one clear line, exit status 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A configuration problem found at start-up: one clear line, exit status 2."""


SERVER_KEYS = (
    "host", "port", "log_format", "data_dir", "region", "account_id", "init_timeout", "restore_timeout",
    "shutdown_timeout", "max_concurrency", "idle_timeout", "max_lifetime", "freeze", "freeze_with", "private_tmp",
    "drop_privileges", "user_range", "memory_limit", "verify_runtime_peer", "overflow", "async_time_scale",
    "async_concurrency", "http_header_timeout", "http_idle_timeout", "credentials", "allow_unauthenticated",
    "cluster", "cluster_replicas", "scaling_time_scale",
    # Templates and logs (rapid.template, rapid.logs).
    "template", "parameter_overrides", "watch", "api_port", "schedule_time_scale", "log_max_bytes",
)
FUNCTION_KEYS = ("runtime", "handler", "timeout", "memory", "concurrency", "extensions", "snap_start")
# Which of those arrive as strings that must become numbers or booleans.
_INTS = ("port", "timeout", "memory", "concurrency", "max_concurrency", "async_concurrency", "cluster_replicas",
         "api_port", "log_max_bytes")
_FLOATS = ("init_timeout", "restore_timeout", "shutdown_timeout", "idle_timeout", "max_lifetime", "async_time_scale",
           "http_header_timeout", "http_idle_timeout", "scaling_time_scale", "schedule_time_scale")
_BOOLS = ("freeze", "verify_runtime_peer", "allow_unauthenticated", "watch", "snap_start")

# Every flag's environment variable. RIE's own variables apply to drop-in mode.
ENV_VARS = {
    "host": "RAPID_HOST",
    "port": "RAPID_PORT",
    "log_format": "RAPID_LOG_FORMAT",
    "data_dir": "RAPID_DATA_DIR",
    "region": "AWS_REGION",
    "account_id": "RAPID_ACCOUNT_ID",
    "init_timeout": "RAPID_INIT_TIMEOUT",
    "restore_timeout": "RAPID_RESTORE_TIMEOUT",
    "shutdown_timeout": "RAPID_SHUTDOWN_TIMEOUT",
    "max_concurrency": "RAPID_MAX_CONCURRENCY",
    "idle_timeout": "RAPID_IDLE_TIMEOUT",
    "max_lifetime": "RAPID_MAX_LIFETIME",
    "freeze": "RAPID_FREEZE",
    "freeze_with": "RAPID_FREEZE_WITH",
    "private_tmp": "RAPID_PRIVATE_TMP",
    "drop_privileges": "RAPID_DROP_PRIVILEGES",
    "user_range": "RAPID_USER_RANGE",
    "memory_limit": "RAPID_MEMORY_LIMIT",
    "verify_runtime_peer": "RAPID_VERIFY_RUNTIME_PEER",
    "async_time_scale": "RAPID_ASYNC_TIME_SCALE",
    "async_concurrency": "RAPID_ASYNC_CONCURRENCY",
    "scaling_time_scale": "RAPID_SCALING_TIME_SCALE",
    "overflow": "RAPID_OVERFLOW",
    "http_header_timeout": "RAPID_HTTP_HEADER_TIMEOUT",
    "http_idle_timeout": "RAPID_HTTP_IDLE_TIMEOUT",
    "credentials": "RAPID_CREDENTIALS",
    "allow_unauthenticated": "RAPID_ALLOW_UNAUTHENTICATED",
    "cluster": "RAPID_CLUSTER",
    "cluster_replicas": "RAPID_CLUSTER_REPLICAS",
    "template": "RAPID_TEMPLATE",
    "parameter_overrides": "RAPID_PARAMETER_OVERRIDES",
    "watch": "RAPID_WATCH",
    "api_port": "RAPID_API_PORT",
    "schedule_time_scale": "RAPID_SCHEDULE_TIME_SCALE",
    "log_max_bytes": "RAPID_LOG_MAX_BYTES",
    "config": "RAPID_CONFIG",
    "function": "RAPID_FUNCTIONS",  # whitespace-separated NAME=PATH items
    "env": "RAPID_ENV",  # newline-separated KEY=VALUE items
    "runtime": "RAPID_RUNTIME",
    "handler": "RAPID_HANDLER",
    "timeout": "RAPID_TIMEOUT",
    "memory": "RAPID_MEMORY",
    "concurrency": "RAPID_CONCURRENCY",
    "extensions": "RAPID_EXTENSIONS",
    "snap_start": "RAPID_SNAP_START",
}
RIE_VARS = {
    "timeout": "AWS_LAMBDA_FUNCTION_TIMEOUT",
    "memory": "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "handler": "_HANDLER",
    "version": "AWS_LAMBDA_FUNCTION_VERSION",
}
DROPIN_DEFAULTS = {"timeout": 300, "memory": 3008}


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """The environment's layer, in the same flat shape the command line gives."""
    out: dict[str, Any] = {}
    for key, var in ENV_VARS.items():
        value = environ.get(var)
        if value is None or value == "":
            continue
        if key == "function":
            out[key] = value.split()
        elif key == "env":
            out[key] = [line for line in value.splitlines() if line.strip()]
        else:
            out[key] = value
    return out


def dropin(command: list[str] | None, environ: Mapping[str, str], shared: dict[str, Any], cwd: str) -> dict[str, Any]:
    """The drop-in function: the RIE's variables, then the command line's settings."""
    fn: dict[str, Any] = dict(DROPIN_DEFAULTS)
    for key, var in RIE_VARS.items():
        if environ.get(var):
            fn[key] = environ[var]
    if command and len(command) >= 2:
        # As the RIE does: a command of two or more words ends with the handler
        # (`rapid serve -- npx aws-lambda-ric index.handler`); --handler still wins.
        fn["handler"] = command[-1]
    fn.update(shared)
    fn["path"] = cwd
    fn["inherit_environment"] = True
    if command:
        fn["command"] = list(command)
    return fn


def read_toml(path: str, cwd: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The server table and the functions' tables, paths made relative to the file's folder."""
    import tomllib  # here, not at the top: most daemons start without a rapid.toml (some 8 ms)

    file = Path(cwd, path)
    try:
        data = tomllib.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    functions = data.pop("functions", {})
    if not isinstance(functions, dict):
        raise ConfigError(f"{path}: 'functions' must be a table of [functions.NAME] tables")
    for name, fn in functions.items():
        for key in ("path", "extensions"):
            if isinstance(fn, dict) and isinstance(fn.get(key), str):
                fn[key] = str(file.parent / fn[key])
    if isinstance(data.get("data_dir"), str):
        data["data_dir"] = str(file.parent / data["data_dir"])
    if isinstance(data.get("template"), str):  # relative to this file, as data_dir is
        data["template"] = str(file.parent / data["template"])
    return data, functions


def value_of(key: str, value: Any) -> Any:
    """CLI and env values arrive as strings; the Struct's types decide what they must be."""
    if key == "parameter_overrides" and not isinstance(value, dict):
        return _overrides(value)
    if isinstance(value, str) and key in _INTS:
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a whole number, got {value!r}") from None
    if isinstance(value, str) and key in _FLOATS:
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if isinstance(value, str) and key in _BOOLS:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def pairs(flag: str, items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")  # the value may itself contain '='
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _overrides(value: Any) -> dict[str, str]:
    """``--parameter-overrides``: ``Key=Value`` items, or the CLI's ``ParameterKey=K,ParameterValue=V``."""
    items = value.split() if isinstance(value, str) else list(value)
    out: dict[str, str] = {}
    for item in items:
        if item.startswith("ParameterKey="):
            parts = dict(p.partition("=")[::2] for p in item.split(","))
            if "ParameterValue" not in parts:
                raise ConfigError(f"parameter_overrides {item!r}: expected ParameterKey=K,ParameterValue=V")
            out[parts["ParameterKey"]] = parts["ParameterValue"]
            continue
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"parameter_overrides {item!r}: expected KEY=VALUE")
        out[key] = val
    return out
