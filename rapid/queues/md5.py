"""The digests SQS answers with, computed as AWS computes them.

``MD5OfMessageBody``: the MD5 of the body's UTF-8 bytes. ``MD5OfMessageAttributes`` (and
``MD5OfMessageSystemAttributes``): attributes sorted by name; for each, the name, then the
data type, each as a 4-byte big-endian length and its UTF-8 bytes; then one byte, 1 for a
string value (String and Number types) or 2 for a binary one; then the value as a 4-byte
length and its bytes. The MD5 of all of it, in hex. (The AWS SDKs check these.)
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any


def of_body(body: str) -> str:
    return hashlib.md5(body.encode("utf-8")).hexdigest()


def _part(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def of_attributes(attributes: dict[str, dict[str, Any]]) -> str:
    """``attributes``: name -> ``{"DataType", "StringValue" | "BinaryValue" (base64)}``."""
    h = hashlib.md5()
    for name in sorted(attributes):
        value = attributes[name]
        h.update(_part(name.encode("utf-8")))
        h.update(_part(value["DataType"].encode("utf-8")))
        if "BinaryValue" in value:
            h.update(b"\x02")
            h.update(_part(base64.b64decode(value["BinaryValue"])))
        else:
            h.update(b"\x01")
            h.update(_part(value["StringValue"].encode("utf-8")))
    return h.hexdigest()
