"""Input constraints as AWS words their failures: 400 ``ValidationException``.

AWS checks every member of a request against its service model (an enum, a pattern, a
length) before anything else, and words a failure the same way everywhere:
``1 validation error detected: Value 'X' at 'member' failed to satisfy constraint: ...``.
Each check here returns the value it was given, so a handler reads
``kind = enum("invocationType", header, KINDS)``. The patterns are the model's own (botocore's
``lambda`` service model), written as AWS prints them.
"""

from __future__ import annotations

import json
import re

import msgspec

from rapid.core.errors import ServiceError, not_json, validation

QUALIFIER_PATTERN = "(|[a-zA-Z0-9$_-]+)"
_QUALIFIER_RE = re.compile(r"[a-zA-Z0-9$_-]+")
MAX_QUALIFIER = 128


def failed(member: str, value: str | None, constraint: str) -> ServiceError:
    shown = "null" if value is None else f"'{value}'"
    return validation(
        f"1 validation error detected: Value {shown} at '{member}' failed to satisfy constraint: {constraint}"
    )


def enum(member: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise failed(member, value, f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    return value


def qualifier(value: str | None) -> str | None:
    """A version, an alias or ``$LATEST``, as Invoke's ``Qualifier`` takes it."""
    if value is None:
        return None
    if len(value) > MAX_QUALIFIER:
        raise failed("qualifier", value, f"Member must have length less than or equal to {MAX_QUALIFIER}")
    if not _QUALIFIER_RE.fullmatch(value):
        raise failed("qualifier", value, f"Member must satisfy regular expression pattern: {QUALIFIER_PATTERN}")
    return value


def json_payload(body: bytes | bytearray) -> None:
    """The Invoke API takes a JSON document in valid UTF-8, as RFC 8259 defines both: an
    escaped lone surrogate (``"\\ud800"``) is valid JSON; a byte that is not UTF-8 is not."""
    try:
        msgspec.json.decode(body, type=msgspec.Raw)  # fast, but it passes bad UTF-8 through
    except msgspec.DecodeError:
        # msgspec also refuses escaped lone surrogates, which JSON allows: ask the stdlib.
        try:
            json.loads(bytes(body).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise not_json() from None
        return
    if not body.isascii():
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise not_json() from None
