"""Subscriptions and the bounded per-subscriber buffer, with no socket and no clock."""

import json

import pytest

from rapid.core.errors import RuntimeAPIError
from rapid.core.telemetry import QUEUE_FACTOR, Buffer, http_body, parse_subscription, subscription_line, tcp_body


def _body(**kw):
    body = {"schemaVersion": "2022-12-13", "types": ["platform", "function"],
            "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:8080/lambda"}}
    body.update(kw)
    return json.dumps(body).encode()


def test_defaults_and_destination():
    sub = parse_subscription(_body(), "telemetry")
    assert (sub.host, sub.port, sub.path, sub.protocol) == ("127.0.0.1", 8080, "/lambda", "HTTP")
    assert (sub.max_items, sub.max_bytes, sub.timeout_ms) == (1000, 262144, 1000)
    assert sub.types == {"platform", "function"}
    tcp = parse_subscription(_body(destination={"protocol": "TCP", "port": 9999}), "telemetry")
    assert (tcp.protocol, tcp.port) == ("TCP", 9999)
    logs = parse_subscription(_body(schemaVersion=None), "logs")
    assert logs.schema == "2020-08-15" and logs.max_items == 10000


@pytest.mark.parametrize("kw,needle", [
    ({"buffering": {"maxItems": 999}}, "maxItems"),
    ({"buffering": {"maxBytes": 2_000_000}}, "maxBytes"),
    ({"buffering": {"timeoutMs": 10}}, "timeoutMs"),
    ({"types": []}, "types should not be empty"),
    ({"types": ["metrics"]}, "unknown type"),
    ({"schemaVersion": "2019-01-01"}, "schemaVersion"),
    ({"schemaVersion": None}, "schemaVersion"),
    ({"destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain/"}}, "port"),
    ({"destination": {"protocol": "HTTP", "URI": "https://sandbox.localdomain:1/"}}, "http://"),
    ({"destination": {"protocol": "HTTP", "URI": "http://10.0.0.1:80/"}}, "inside"),
    ({"destination": {"protocol": "UDP", "port": 1}}, "not supported"),
])
def test_refusals_are_400_validation_errors(kw, needle):
    with pytest.raises(RuntimeAPIError) as info:
        parse_subscription(_body(**kw), "telemetry")
    assert info.value.status == 400 and info.value.error_type == "ValidationError"
    assert needle in info.value.message


def test_logs_api_has_no_tcp():
    with pytest.raises(RuntimeAPIError):
        parse_subscription(_body(schemaVersion="2021-03-18", destination={"protocol": "TCP", "port": 1}), "logs")


def test_buffer_is_due_when_full_or_old():
    b = Buffer(max_items=3, max_bytes=1000)
    assert not b.due(0.0, 100)
    b.add(b"a", 0.0)
    assert not b.due(0.05, 100) and b.due(0.1, 100)
    b.add(b"b", 0.0)
    b.add(b"c", 0.0)
    assert b.due(0.0, 100)
    assert b.batch(0.2) == [b"a", b"b", b"c"] and len(b) == 0 and b.first_at is None


def test_batches_respect_max_bytes_but_take_one_at_least():
    b = Buffer(max_items=1000, max_bytes=16)
    for e in (b"x" * 12, b"y" * 8, b"z" * 30):
        assert b.add(e, 0.0)
    assert b.batch(0.0) == [b"x" * 12]
    assert b.batch(0.0) == [b"y" * 8]
    assert b.batch(0.0) == [b"z" * 30]  # larger than a batch: sent alone


def test_full_buffer_drops_and_the_notice_comes_first():
    b = Buffer(max_items=2, max_bytes=1 << 20)
    cap = 2 * QUEUE_FACTOR
    for i in range(cap):
        assert b.add(b"e%d" % i, 0.0)
    assert not b.add(b"lost", 0.0) and not b.add(b"lost2", 0.0)
    assert b.dropped() == (2, 9)
    assert len(b) == cap  # bounded
    b.batch(0.0)
    assert b.add(b"next", 0.0, dropped_notice=b"NOTICE")
    assert list(b.events)[-2:] == [b"NOTICE", b"next"] and b.dropped() is None


def test_notice_after_room_even_with_nothing_new():
    b = Buffer(max_items=1, max_bytes=1 << 20)
    for i in range(QUEUE_FACTOR + 1):
        b.add(b"e", 0.0)
    assert b.dropped() == (1, 1)
    b.batch(0.0)
    b.note_dropped(b"NOTICE", 0.0)
    assert list(b.events)[-1] == b"NOTICE" and b.dropped() is None


def test_bodies_and_lines():
    assert json.loads(http_body([b'{"a":1}', b'{"b":2}'])) == [{"a": 1}, {"b": 2}]
    assert tcp_body([b"{}", b"[]"]) == b"{}\n[]\n"
    assert subscription_line("logs", "x", frozenset({"function", "platform"})) == \
        "LOGS\tName: x\tState: Subscribed\tTypes: [Platform, Function]"
