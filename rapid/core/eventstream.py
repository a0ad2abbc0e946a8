"""AWS's event-stream framing (``application/vnd.amazon.eventstream``), as
InvokeWithResponseStream answers: pure functions from values to bytes.

One message::

    total length (u32) | headers length (u32) | prelude CRC32 (u32)
    headers: name length (u8) | name | type (u8, 7 = string) | value length (u16) | value
    payload
    message CRC32 (u32, of everything before it)

all big-endian, CRC32 as zlib computes it. Lambda sends ``PayloadChunk`` events (the raw
bytes of the function's answer, as they come) and ends with one ``InvokeComplete`` (JSON:
``ErrorCode``, ``ErrorDetails``, ``LogResult``), each with the headers ``:event-type``,
``:content-type`` and ``:message-type: event``.
"""

from __future__ import annotations

import struct
import zlib

import msgspec

_STRING = 7
_PRELUDE = struct.Struct(">II")
_U32 = struct.Struct(">I")


def _headers(pairs: tuple[tuple[str, str], ...]) -> bytes:
    out = bytearray()
    for name, value in pairs:
        n, v = name.encode(), value.encode()
        out += bytes((len(n),)) + n + bytes((_STRING,)) + struct.pack(">H", len(v)) + v
    return bytes(out)


def message(headers: tuple[tuple[str, str], ...], payload: bytes) -> bytes:
    """One event-stream message."""
    head = _headers(headers)
    total = 12 + len(head) + len(payload) + 4
    prelude = _PRELUDE.pack(total, len(head))
    prelude += _U32.pack(zlib.crc32(prelude))
    body = prelude + head + payload
    return body + _U32.pack(zlib.crc32(body))


_CHUNK_HEADERS = (
    (":event-type", "PayloadChunk"), (":content-type", "application/octet-stream"), (":message-type", "event"),
)
_COMPLETE_HEADERS = (
    (":event-type", "InvokeComplete"), (":content-type", "application/json"), (":message-type", "event"),
)
# A message may carry at most 16 MB; Lambda's chunks are far smaller. Long payloads are cut.
MAX_CHUNK = 1 << 20


def payload_chunk(data: bytes) -> bytes:
    """PayloadChunk messages for ``data`` (several if it is over ``MAX_CHUNK``)."""
    if len(data) <= MAX_CHUNK:
        return message(_CHUNK_HEADERS, data)
    view = memoryview(data)
    return b"".join(message(_CHUNK_HEADERS, bytes(view[i:i + MAX_CHUNK])) for i in range(0, len(data), MAX_CHUNK))


def invoke_complete(error_code: str | None = None, error_details: str | None = None,
                    log_result: str | None = None) -> bytes:
    body: dict[str, str] = {}
    if error_code:
        body["ErrorCode"] = error_code
    if error_details:
        body["ErrorDetails"] = error_details
    if log_result:
        body["LogResult"] = log_result
    return message(_COMPLETE_HEADERS, msgspec.json.encode(body))
