"""The event-stream framing, read back by botocore's own parser (what boto3 uses)."""

import json
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer

from rapid.core.eventstream import MAX_CHUNK, invoke_complete, message, payload_chunk


def _parse(data: bytes):
    buf = EventStreamBuffer()
    buf.add_data(data)
    return list(buf)


def test_payload_chunk_round_trips():
    [msg] = _parse(payload_chunk(b'{"hello": "world"}'))
    assert msg.headers == {":event-type": "PayloadChunk", ":content-type": "application/octet-stream",
                           ":message-type": "event"}
    assert msg.payload == b'{"hello": "world"}'


def test_invoke_complete_round_trips():
    [msg] = _parse(invoke_complete("Unhandled", "boom", "bG9n"))
    assert msg.headers[":event-type"] == "InvokeComplete"
    assert json.loads(msg.payload) == {"ErrorCode": "Unhandled", "ErrorDetails": "boom", "LogResult": "bG9n"}
    [empty] = _parse(invoke_complete())
    assert json.loads(empty.payload) == {}


def test_many_messages_in_one_buffer_and_split_anywhere():
    data = payload_chunk(b"a") + payload_chunk(b"") + payload_chunk(bytes(range(256))) + invoke_complete()
    buf = EventStreamBuffer()
    got = []
    for i in range(len(data)):
        buf.add_data(data[i:i + 1])
        got.extend(buf)
    assert [m.payload for m in got[:3]] == [b"a", b"", bytes(range(256))]
    assert got[3].headers[":event-type"] == "InvokeComplete"


def test_large_payload_is_cut_into_messages():
    data = bytes(MAX_CHUNK * 2 + 5)
    msgs = _parse(payload_chunk(data))
    assert [len(m.payload) for m in msgs] == [MAX_CHUNK, MAX_CHUNK, 5]


def test_crcs_are_checked():
    good = message(((":event-type", "PayloadChunk"),), b"x")
    assert int.from_bytes(good[8:12], "big") == zlib.crc32(good[:8])
    bad = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(Exception):
        _parse(bad)
