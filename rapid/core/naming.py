"""Names, ARNs and ids as AWS spells them."""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass

from rapid.core.errors import ServiceError, function_not_found, invalid_parameter, validation

LATEST = "$LATEST"
NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ARN_RE = re.compile(
    r"^(?:arn:(?:aws[a-zA-Z-]*):lambda:(?P<region>[a-z0-9-]+):)?"
    r"(?:(?P<account>\d{12}):function:)?"
    r"(?P<name>[a-zA-Z0-9_-]+)(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?$"
)


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    qualifier: str | None


def function_arn(region: str, account: str, name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def parse_function_name(raw: str, qualifier: str | None, region: str, account: str) -> Target:
    """Resolve ``name``, ``name:qualifier``, a partial or a full ARN, as Invoke accepts them."""
    m = _ARN_RE.match(raw)
    if m is None or len(raw) > 170:
        raise validation(
            f"1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?"
            r"(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
        )
    name, derived = m["name"], m["qualifier"]
    if len(name) > 64:
        raise function_not_found(function_arn(region, account, name))
    if derived and qualifier and derived != qualifier:
        raise invalid_parameter(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    if (m["region"] and m["region"] != region) or (m["account"] and m["account"] != account):
        raise function_not_found(raw)
    return Target(name, derived or qualifier)


# Ids are drawn from one batch of the kernel's entropy (os.urandom, the same source as
# uuid4 and secrets), kept as hex: one getrandom call serves ~50 invocations instead of
# three calls each. Every hex digit is used once (the lock: the event writer thread draws
# ids too).
_HEX_BATCH = 2048  # bytes per getrandom call
_hex = ""
_at = 0
_lock = threading.Lock()
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # RFC 9562 variant bits 10xx


def random_hex(n: int) -> str:
    """``n`` random hex digits."""
    global _hex, _at
    with _lock:
        at = _at
        if at + n > len(_hex):
            _hex, at = os.urandom(max(_HEX_BATCH, n)).hex(), 0
        _at = at + n
        return _hex[at : at + n]


def request_id() -> str:
    """A random (version 4) UUID, as Lambda's request ids are."""
    h = random_hex(32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def trace_id(now: float | None = None) -> str:
    """An X-Ray trace header like Lambda's, for invokers that send none."""
    epoch = int(time.time() if now is None else now)
    h = random_hex(40)
    return f"Root=1-{epoch:08x}-{h[:24]};Parent={h[24:]};Sampled=0"


def log_stream_name(instance_hex: str, version: str = LATEST, now: float | None = None) -> str:
    day = time.strftime("%Y/%m/%d", time.gmtime(now))  # gmtime(None): the current time
    return f"{day}/[{version}]{instance_hex}"


def check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise ServiceError(400, "InvalidParameterValueException", f"Invalid function name: {name}")
