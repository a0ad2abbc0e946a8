"""The pure half of function URLs: the event, the answer's interpretation, the prelude, CORS."""

from __future__ import annotations

import base64
import json

from rapid.core import url_event
from rapid.core.url_event import Cors


def _event(**kw):  # type: ignore[no-untyped-def]
    args = dict(method="GET", path="/p", query="", headers={}, body=b"", url_id="u" * 32,
                domain="d.localhost", source_ip="127.0.0.1", request_id="rid", now=1583348638.390)
    args.update(kw)
    return url_event.event(**args)


def test_time_fields_and_text_detection() -> None:
    e = _event()
    assert e["requestContext"]["time"] == "04/Mar/2020:19:03:58 +0000"
    assert e["requestContext"]["timeEpoch"] == 1583348638390
    for kind in ("text/plain", "text/html; charset=utf-8", "application/json", "APPLICATION/XML",
                 "application/javascript"):
        assert url_event.is_text(kind), kind
    for kind in (None, "", "application/octet-stream", "application/x-www-form-urlencoded", "image/png"):
        assert not url_event.is_text(kind), kind
    # Text that is not UTF-8 cannot ride in a JSON string: base64 then.
    e = _event(headers={"content-type": "text/plain"}, body=b"\xff\xfe")
    assert e["isBase64Encoded"] is True and base64.b64decode(e["body"]) == b"\xff\xfe"


def test_interpret() -> None:
    assert url_event.interpret(b'"hi"') == (200, [("Content-Type", "application/json")], b"hi")
    assert url_event.interpret(b"[1,2]")[2] == b"[1,2]"
    assert url_event.interpret(b"null")[0] == 200
    status, headers, body = url_event.interpret(json.dumps(
        {"statusCode": 404, "headers": {"X-A": 1}, "multiValueHeaders": {"X-B": ["1", "2"]}, "body": {"k": 1}}).encode())
    assert status == 404 and ("X-A", "1") in headers and headers.count(("X-B", "1")) == 1 and ("X-B", "2") in headers
    assert ("Content-Type", "application/json") in headers and json.loads(body) == {"k": 1}
    assert url_event.interpret(b'{"statusCode": 99}') == url_event.BAD_GATEWAY
    assert url_event.interpret(b'{"statusCode": "abc"}') == url_event.BAD_GATEWAY
    assert url_event.interpret(b"not json") == url_event.BAD_GATEWAY
    assert url_event.interpret(b'{"statusCode": 204}')[:1] == (204,)


def test_prelude_split_across_chunks() -> None:
    p = url_event.Prelude()
    assert not p.feed(b'{"statusCode": 201, "headers": {"a": "b"}}\0\0\0')
    assert p.feed(b"\0\0\0\0\0body")
    assert p.head == (201, [("Content-Type", "application/json"), ("a", "b")]) and p.rest == b"body"
    bad = url_event.Prelude()
    assert bad.feed(b"{oops" + url_event.DELIMITER) and bad.head is None
    short = url_event.Prelude()
    short.feed(b'{"statusCode": 200}')
    short.finish()
    assert short.head is not None and short.head[0] == 200 and short.rest == b""


def test_cors() -> None:
    cors = Cors(allow_origins=("https://a.example",), allow_methods=("GET",), allow_headers=("X-T",), max_age=5)
    assert url_event.preflight(None, "https://a.example", "GET", None) is None
    ok = dict(url_event.preflight(cors, "https://a.example", "GET", "x-t") or [])
    assert ok["Access-Control-Allow-Origin"] == "https://a.example" and ok["Access-Control-Max-Age"] == "5"
    assert url_event.preflight(cors, "https://b.example", "GET", None) == []
    assert url_event.preflight(cors, "https://a.example", "PUT", None) == []
    assert url_event.preflight(cors, "https://a.example", "GET", "x-other") == []
    star = Cors(allow_origins=("*",))
    assert url_event.cors_headers(star, "https://z.example") == [("Access-Control-Allow-Origin", "*")]
    creds = Cors(allow_origins=("*",), allow_credentials=True)
    assert ("Access-Control-Allow-Origin", "https://z.example") in url_event.cors_headers(creds, "https://z.example")
    assert url_event.cors_headers(cors, None) == []
