"""One configuration model, filled from the TOML file, the environment and the command line.

Precedence, lowest first: built-in defaults < ``rapid.toml`` < environment < command line.
All three fill plain dicts that are merged and then converted once into the ``Config``
Struct, so every source is validated by the same rules, unknown keys are rejected, and an
error names the key it is about (``$.functions.hello.timeout``).

Function settings given on the command line or in the environment (``--runtime``,
``--timeout``, ...) apply to the functions declared there (``--function``, ``-- CMD``); a
function declared in the TOML file carries its own settings in its own table. Reading each
source into its flat dict is ``rapid.config_sources``; this module holds the model and the
checks that span keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from rapid.config_sources import (
    FUNCTION_KEYS,
    SERVER_KEYS,
    ConfigError,
    dropin,
    from_env,
    pairs,
    read_toml,
    value_of,
)
from rapid.core.reserved_env import MAX_ENV_BYTES, RESERVED_ENV

__all__ = ["Config", "ConfigError", "FunctionConfig", "load"]


Name = Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]


class FunctionConfig(Struct, forbid_unknown_fields=True, kw_only=True):
    path: str | None = None  # a folder or a .zip; relative to the TOML file's folder
    command: list[str] | None = None  # drop-in mode: the bootstrap command itself
    runtime: Literal["provided", "python", "node", "shell"] = "provided"
    handler: str = ""
    timeout: Annotated[int, Meta(ge=1, le=900)] = 3
    memory: Annotated[int, Meta(ge=128, le=10240)] = 128
    reserved_concurrency: Annotated[int, Meta(ge=0)] | None = None  # --concurrency
    provisioned_concurrency: Annotated[int, Meta(ge=0)] = 0
    per_instance_concurrency: Annotated[int, Meta(ge=1, le=1000)] = 1  # AWS_LAMBDA_MAX_CONCURRENCY
    ephemeral_storage: Annotated[int, Meta(ge=512, le=10240)] = 512  # MB of /tmp
    snap_start: bool = False  # SnapStart (bundled python runtime): init once, fork instances
    environment: dict[str, str] = {}
    # The folder of external extensions (executables started beside the runtime). Default:
    # /opt/extensions in drop-in mode, else the `extensions/` folder inside the function's.
    extensions: str | None = None
    # Asynchronous invocation (rapid.events): the $LATEST event-invoke-config, and the DLQ.
    maximum_retry_attempts: Annotated[int, Meta(ge=0, le=2)] | None = None  # default 2
    maximum_event_age: Annotated[int, Meta(ge=60, le=21600)] | None = None  # seconds, default 21600
    on_success: str | None = None  # destination: arn:aws:lambda|sqs:..., file:///..., http(s)://...
    on_failure: str | None = None
    dead_letter: str | None = None  # DeadLetterConfig.TargetArn: the same kinds of target
    # Not for users' TOML files in practice; set by drop-in mode.
    version: str = "$LATEST"
    inherit_environment: bool = False  # drop-in mode passes the container's env through


class Config(Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8080
    log_format: Literal["text", "json"] = "text"
    data_dir: str | None = None
    region: str = "us-east-1"
    account_id: Annotated[str, Meta(pattern=r"^\d{12}$")] = "000000000000"
    init_timeout: Annotated[float, Meta(gt=0, le=900)] = 10.0
    restore_timeout: Annotated[float, Meta(gt=0, le=900)] = 10.0  # SnapStart's restore phase, AWS's 10 s
    shutdown_timeout: Annotated[float, Meta(ge=0)] = 10.0
    max_concurrency: Annotated[int, Meta(ge=1)] = 1000  # capped by what the machine can run
    idle_timeout: Annotated[float, Meta(gt=0)] = 600.0  # stop an on-demand instance idle this long
    max_lifetime: Annotated[float, Meta(gt=0)] = 4 * 3600.0  # recycle every instance after this
    freeze: bool = True  # stop an idle instance's processes between invokes
    # How: SIGSTOP/SIGCONT to its process group, or its freezer cgroup. Measured on a cgroup
    # v1 host, the freezer costs 80-150 us more daemon CPU per invoke, so it is opt-in.
    freeze_with: Literal["signal", "cgroup"] = "signal"
    private_tmp: Literal["auto", "namespace", "directory"] = "auto"
    drop_privileges: Literal["auto", "off"] = "auto"  # as root: run instances as their own uid
    user_range: Annotated[str, Meta(pattern=r"^\d+-\d+$")] = "990000-999999"
    memory_limit: Literal["auto", "cgroup", "watchdog", "off"] = "auto"
    verify_runtime_peer: bool = True  # refuse Runtime API connections from other processes
    overflow: Literal["throttle", "queue"] = "throttle"  # beyond the limit: 429 as AWS, or wait
    async_time_scale: Annotated[float, Meta(gt=0, le=1)] = 1.0  # scales async retry delays and ages (tests)
    async_concurrency: Annotated[int, Meta(ge=1)] = 16  # most async attempts in flight per function
    # Scales the clock of provisioned-concurrency autoscaling and gradual deployments (tests):
    # at 0.01 a metric minute, a cooldown or a canary's interval passes 100 times faster.
    scaling_time_scale: Annotated[float, Meta(gt=0, le=1)] = 1.0
    # Invoke API clients: a request must keep arriving (headers complete) within this many
    # seconds, and an idle keep-alive connection is closed after the other.
    http_header_timeout: Annotated[float, Meta(gt=0)] = 10.0
    http_idle_timeout: Annotated[float, Meta(gt=0)] = 60.0
    credentials: str | None = None  # an AWS credentials file: SigV4 on the management API
    allow_unauthenticated: bool = False  # an open management API on a non-loopback address
    cluster: Annotated[str, Meta(pattern=r"^nats://[^\s/]+$")] | None = None  # nats://HOST:PORT (rapid.cluster)
    cluster_replicas: Annotated[int, Meta(ge=1, le=5)] = 1  # JetStream replicas of rapid's buckets and streams
    functions: dict[Name, FunctionConfig] = {}
    # A SAM / CloudFormation application (rapid.template), applied through the control plane.
    template: str | None = None
    parameter_overrides: dict[str, str] = {}
    watch: bool = False  # apply the template again when it or its code changes
    api_port: Annotated[int, Meta(ge=0, le=65535)] = 3000  # its Api / HttpApi events
    schedule_time_scale: Annotated[float, Meta(gt=0, le=1)] = 1.0  # runs Schedule events faster (tests)
    log_max_bytes: Annotated[int, Meta(ge=0)] = 16 * 1024 * 1024  # kept log per function (rapid.logs); 0: none
    # Derived: the function served in drop-in mode (`-- CMD`, or a searched bootstrap), named
    # `function` or AWS_LAMBDA_FUNCTION_NAME; "" when there is none.
    dropin_function: str = ""

    @property
    def dropin(self) -> bool:
        return bool(self.dropin_function)


def load(
    cli: Mapping[str, Any], environ: Mapping[str, str] | None = None, cwd: str | None = None
) -> Config:
    """Build the one Config from a flat dict of command-line values (``None`` = not given),
    the environment and the TOML file either names. Raises ``ConfigError``."""
    environ = os.environ if environ is None else environ
    cwd = cwd or os.getcwd()
    flat = from_env(environ)
    flat.update({k: v for k, v in cli.items() if v is not None and v != []})

    merged: dict[str, Any] = {}
    functions: dict[str, dict[str, Any]] = {}
    config_file = flat.get("config")
    if config_file:
        merged, functions = read_toml(config_file, cwd)
    for key in SERVER_KEYS:
        if key in flat:
            merged[key] = value_of(key, flat[key])

    shared = {k: value_of(k, flat[k]) for k in FUNCTION_KEYS if k in flat}
    if "concurrency" in shared:
        shared["reserved_concurrency"] = shared.pop("concurrency")
    env_vars = pairs("--env", flat.get("env", []))
    if env_vars:
        shared["environment"] = env_vars
    for item in flat.get("function", []):
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--function {item!r}: expected NAME=PATH")
        if name in functions:
            raise ConfigError(f"function {name!r} is declared twice")
        functions[name] = {"path": os.path.join(cwd, path), **shared}

    command = flat.get("command")
    # With a data dir and nothing to serve, rapid is the Lambda service alone: functions
    # come through the API. Without one, it looks for a bootstrap as the RIE does.
    service_only = command is None and not functions and bool(merged.get("data_dir") or merged.get("template"))
    if command is not None or (not functions and not service_only):
        served = dropin(command, environ, shared, cwd)
        name = environ.get("AWS_LAMBDA_FUNCTION_NAME") or "function"
        if name in functions:
            raise ConfigError(f"function {name!r} is declared twice (once as the drop-in command)")
        functions[name] = served
        merged["dropin_function"] = name

    converted = {}
    for name, table in functions.items():
        try:
            converted[name] = msgspec.convert(table, FunctionConfig, strict=False)
        except msgspec.ValidationError as exc:
            # msgspec names dict keys "[...]": say which function, and where in it.
            raise ConfigError(f"functions.{name}: {str(exc).replace('`$', '`functions.' + name)}") from None
    merged["functions"] = converted
    try:
        config = msgspec.convert(merged, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None
    for name, fn in config.functions.items():
        _check_function(name, fn)
        _check_async_targets(name, fn, config)
    reserved = sum(fn.reserved_concurrency or 0 for fn in config.functions.values())
    if reserved and reserved > config.max_concurrency - 100:
        raise ConfigError(
            f"reserved_concurrency: {reserved} reserved in all, but at most "
            f"{max(0, config.max_concurrency - 100)} of max_concurrency {config.max_concurrency} may be "
            "(100 stay unreserved, as on AWS)"
        )
    return config


def _check_function(name: str, fn: FunctionConfig) -> None:
    where = f"functions.{name}"
    if fn.command is None:
        if fn.path is None:
            raise ConfigError(f"{where}.path is required")
        if not os.path.exists(fn.path):
            raise ConfigError(f"{where}.path: no such file or directory: {fn.path}")
        if not (os.path.isdir(fn.path) or fn.path.endswith(".zip")):
            raise ConfigError(f"{where}.path: expected a folder or a .zip: {fn.path}")
    if fn.runtime != "provided" and not fn.handler:
        raise ConfigError(f"{where}.handler is required for runtime {fn.runtime!r}")
    if fn.reserved_concurrency is not None and fn.provisioned_concurrency > fn.reserved_concurrency:
        raise ConfigError(
            f"{where}.provisioned_concurrency ({fn.provisioned_concurrency}) cannot exceed "
            f"its reserved_concurrency ({fn.reserved_concurrency})"
        )
    if fn.snap_start and fn.runtime != "python":
        raise ConfigError(f"{where}.snap_start needs runtime = 'python' (the bundled runtime forks its template)")
    if fn.snap_start and fn.provisioned_concurrency:
        raise ConfigError(f"{where}: snap_start and provisioned_concurrency cannot be combined (as on AWS)")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in fn.environment.items())
    if size > MAX_ENV_BYTES and not fn.inherit_environment:
        raise ConfigError(
            f"{where}.environment: {size} bytes of variables; Lambda allows {MAX_ENV_BYTES} in all"
        )
    if not fn.inherit_environment:
        reserved = sorted(RESERVED_ENV & fn.environment.keys())
        if reserved:
            raise ConfigError(
                f"{where}.environment: reserved keys cannot be set: {', '.join(reserved)}"
            )


def _check_async_targets(name: str, fn: FunctionConfig, config: Config) -> None:
    from rapid.events.destinations import TargetError, parse_target

    for key in ("on_success", "on_failure", "dead_letter"):
        value = getattr(fn, key)
        if not value:
            continue
        try:
            parse_target(value, region=config.region, account=config.account_id,
                         functions=config.functions, owner=name)
        except TargetError as exc:
            raise ConfigError(f"functions.{name}.{key}: {exc}") from None
