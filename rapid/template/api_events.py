"""API Gateway's events and answers, pure: routes matched, payload 1.0 and 2.0 built, the
function's answer read back.

Routes (``Route``) are matched as API Gateway matches them: a path without parameters
before one with ``{name}`` parameters, before a greedy ``{proxy+}``; a route's own method
before ``ANY``; an HTTP API's ``$default`` route last. A path parameter takes one segment,
a greedy one the rest of the path.

Payload 1.0 (REST APIs, and HTTP APIs that ask for it): ``resource``, ``path``,
``httpMethod``, ``headers`` and ``multiValueHeaders``, ``queryStringParameters`` and
``multiValueQueryStringParameters``, ``pathParameters``, ``stageVariables``,
``requestContext`` (``resourcePath``, ``httpMethod``, ``stage``, ``requestId``, ``identity``
with ``sourceIp``, ...), ``body``, ``isBase64Encoded``. Payload 2.0 is the function URL's
(``rapid.core.url_event``) with the route's ``routeKey``, ``pathParameters`` and stage.

Answers: 2.0 as Lambda reads a URL's (any JSON; an object with ``statusCode`` is an HTTP
answer); 1.0 needs an object with ``statusCode``, anything else is API Gateway's 502
``{"message": "Internal server error"}``, as is a function error.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from rapid.core import url_event

_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode
INTERNAL_ERROR = (502, [("Content-Type", "application/json")], b'{"message":"Internal server error"}')


@dataclass(frozen=True)
class Route:
    method: str  # GET, POST, ..., or ANY
    path: str  # /items/{id}, /{proxy+}, or $default
    function: str
    qualifier: str | None
    payload: str  # "1.0" or "2.0"
    api: str  # the API's logical id
    stage: str
    rest: bool  # an Api (REST) event rather than an HttpApi one

    @property
    def key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


def _pattern(path: str) -> tuple[re.Pattern[str], tuple[str, ...], int]:
    names: list[str] = []
    out = []
    rank = 0  # 0: literal, 1: with parameters, 2: greedy
    for segment in path.strip("/").split("/") if path != "/" else []:
        m = re.fullmatch(r"\{([A-Za-z0-9._-]+)(\+?)\}", segment)
        if m is None:
            out.append(re.escape(segment))
        elif m.group(2):
            names.append(m.group(1))
            out.append(f"(?P<p{len(names) - 1}>.+)")
            rank = 2
        else:
            names.append(m.group(1))
            out.append(f"(?P<p{len(names) - 1}>[^/]+)")
            rank = max(rank, 1)
    return re.compile("^/" + "/".join(out) + "/?$"), tuple(names), rank


class Table:
    """The routes of one port, ready to match."""

    def __init__(self, routes: list[Route]) -> None:
        compiled: list[tuple[int, int, Route, re.Pattern[str] | None, tuple[str, ...]]] = []
        for r in routes:
            if r.path == "$default":
                compiled.append((3, 1, r, None, ()))
                continue
            rx, names, rank = _pattern(r.path)
            compiled.append((rank, 1 if r.method == "ANY" else 0, r, rx, names))
        compiled.sort(key=lambda c: (c[0], c[1], -len(c[2].path)))
        self._compiled = compiled
        self.routes = routes

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for _rank, _any, route, rx, names in self._compiled:
            if route.method not in ("ANY", method):
                continue
            if rx is None:
                return route, {}
            m = rx.match(path)
            if m is not None:
                return route, {n: m.group(f"p{i}") for i, n in enumerate(names)}
        return None

    def __repr__(self) -> str:
        return f"<Table routes={len(self.routes)}>"


def _body(headers: Mapping[str, str], body: bytes) -> tuple[str | None, bool]:
    if not body:
        return None, False
    if url_event.is_text(headers.get("content-type")):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def event_v1(route: Route, params: dict[str, str], method: str, path: str, query: str,
             headers: Mapping[str, str], body: bytes, *, request_id: str, source_ip: str, now: float,
             account: str, api_id: str) -> dict[str, Any]:
    pairs = parse_qsl(query, keep_blank_values=True)
    multi_q: dict[str, list[str]] = {}
    for k, v in pairs:
        multi_q.setdefault(k, []).append(v)
    text, encoded = _body(headers, body)
    resource = route.path if route.path != "$default" else path
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": dict(headers) or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_q.items()} or None,
        "multiValueQueryStringParameters": multi_q or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": account, "apiId": api_id, "resourceId": "rapid", "resourcePath": resource,
            "httpMethod": method, "path": f"/{route.stage}{path}" if route.rest else path,
            "stage": route.stage, "requestId": request_id, "extendedRequestId": request_id,
            "protocol": "HTTP/1.1", "requestTime": url_event.clf_time(now), "requestTimeEpoch": int(now * 1000),
            "domainName": headers.get("host", "127.0.0.1"),
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("user-agent", ""), "accessKey": None,
                         "accountId": None, "caller": None, "user": None, "userArn": None,
                         "cognitoIdentityId": None, "cognitoIdentityPoolId": None},
        },
        "body": text, "isBase64Encoded": encoded,
    }


def event_v2(route: Route, params: dict[str, str], method: str, path: str, query: str,
             headers: Mapping[str, str], body: bytes, *, request_id: str, source_ip: str, now: float,
             account: str, api_id: str) -> dict[str, Any]:
    ev = url_event.event(method, path, query, headers, body, url_id=api_id,
                         domain=headers.get("host", "127.0.0.1"), source_ip=source_ip, request_id=request_id,
                         now=now, account_id=account)
    ev["routeKey"] = route.key
    ev["requestContext"]["routeKey"] = route.key
    ev["requestContext"]["stage"] = route.stage
    if params:
        ev["pathParameters"] = params
    return ev


def answer_v1(payload: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    try:
        value = _decode(payload) if payload else None
    except msgspec.DecodeError:
        return INTERNAL_ERROR
    if not isinstance(value, dict) or "statusCode" not in value:
        return INTERNAL_ERROR
    head = url_event.http_head({k: v for k, v in value.items() if k != "cookies"})
    if head is None:
        return INTERNAL_ERROR
    raw = value.get("body")
    if raw is None:
        data = b""
    elif not isinstance(raw, str):
        return INTERNAL_ERROR
    elif value.get("isBase64Encoded") is True:
        try:
            data = base64.b64decode(raw)
        except (binascii.Error, ValueError):
            return INTERNAL_ERROR
    else:
        data = raw.encode()
    return head[0], head[1], data


def answer_v2(payload: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    status, headers, data = url_event.interpret(payload)
    if status == 502 and data == url_event.BAD_GATEWAY[2]:
        return INTERNAL_ERROR
    return status, headers, data


def not_found(rest: bool) -> tuple[int, list[tuple[str, str]], bytes]:
    if rest:
        return 403, [("Content-Type", "application/json"), ("x-amzn-ErrorType", "MissingAuthenticationTokenException")], \
            b'{"message":"Missing Authentication Token"}'
    return 404, [("Content-Type", "application/json")], b'{"message":"Not Found"}'


__all__ = ["INTERNAL_ERROR", "Route", "Table", "answer_v1", "answer_v2", "event_v1", "event_v2", "not_found",
           "_encode"]
