"""Function URLs, pure: an HTTP request becomes the event, the function's answer an HTTP one.

The request side builds API Gateway's payload format 2.0 exactly as Lambda builds it for a
function URL: ``version`` "2.0", ``routeKey`` "$default", ``rawPath``, ``rawQueryString``,
``cookies`` (the Cookie header split; it is not among ``headers`` then), ``headers`` with
lower-case names (a repeated header arrives joined by commas), ``queryStringParameters``
(decoded; a repeated key joined by commas), ``requestContext`` (accountId, apiId = url-id,
domainName, domainPrefix, http{method, path, protocol, sourceIp, userAgent}, requestId,
routeKey, stage "$default", time, timeEpoch), ``body`` and ``isBase64Encoded``. The body is
text (as it came) only for ``text/*``, ``application/json``, ``application/xml`` and
``application/javascript`` when it is valid UTF-8; anything else, a missing Content-Type
and form posts included, is base64, as AWS does.

The answer side (``interpret``) reads what the function returned as Lambda does:

===========================================  =============================================
the function returned                          the HTTP client gets
===========================================  =============================================
an object with ``statusCode``                   that status; ``headers``, ``multiValueHeaders``,
                                                each of ``cookies`` as a ``Set-Cookie``;
                                                ``body`` (base64-decoded if ``isBase64Encoded``)
a JSON string                                   200, application/json, the string itself
any other JSON (object without statusCode,      200, application/json, the JSON as returned
array, number, true/false, null)
not JSON, or a bad statusCode                   502 ``Internal Server Error``
===========================================  =============================================

A streaming URL's answer may open with the ``application/vnd.awslambda.http-integration-response``
prelude: the JSON of statusCode/headers/cookies, eight NUL bytes, then the body
(``Prelude`` finds the split in the first chunks). CORS (``preflight``, ``cors_headers``)
follows the URL's configuration: a preflight is answered without invoking the function.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote_plus

import msgspec
from msgspec import Struct

class Cors(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A function URL's CORS settings, as CreateFunctionUrlConfig's ``Cors`` gives them
    (stored in the registry's ``FunctionUrl``)."""

    allow_credentials: bool | None = None
    allow_headers: tuple[str, ...] | None = None
    allow_methods: tuple[str, ...] | None = None
    allow_origins: tuple[str, ...] | None = None
    expose_headers: tuple[str, ...] | None = None
    max_age: int | None = None


PRELUDE_TYPE = "application/vnd.awslambda.http-integration-response"
DELIMITER = b"\0" * 8
MAX_PRELUDE = 1 << 20  # bytes of prelude looked through for the delimiter before giving up
_TEXT_TYPES = ("application/json", "application/xml", "application/javascript")
_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode
BAD_GATEWAY = (502, [("Content-Type", "application/json")], b"Internal Server Error")


def is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith("text/") or kind in _TEXT_TYPES


def _query(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in raw.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        key, value = unquote_plus(key), unquote_plus(value)
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def clf_time(t: float) -> str:
    """requestContext.time: ``12/Mar/2020:19:03:58 +0000``."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))


def event(
    method: str, path: str, query: str, headers: Mapping[str, str], body: bytes, *, url_id: str,
    domain: str, source_ip: str, request_id: str, now: float, account_id: str = "anonymous",
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The payload format 2.0 event of one request (``path`` and ``query`` as sent)."""
    hdrs = {k: v for k, v in headers.items() if k != "cookie"}
    out: dict[str, Any] = {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query}
    cookie = headers.get("cookie")
    if cookie:
        out["cookies"] = [c.strip() for c in cookie.split(";") if c.strip()]
    out["headers"] = hdrs
    if query:
        out["queryStringParameters"] = _query(query)
    context: dict[str, Any] = {"accountId": account_id, "apiId": url_id}
    if authorizer is not None:
        context["authorizer"] = authorizer
    context.update({
        "domainName": domain,
        "domainPrefix": url_id,
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                 "userAgent": headers.get("user-agent", "")},
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": clf_time(now),
        "timeEpoch": int(now * 1000),
    })
    out["requestContext"] = context
    encoded = False
    if body:
        text = None
        if is_text(headers.get("content-type")):
            try:
                text = bytes(body).decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            text, encoded = base64.b64encode(body).decode("ascii"), True
        out["body"] = text
    out["isBase64Encoded"] = encoded
    return out


def _header_value(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def http_head(meta: Mapping[str, Any]) -> tuple[int, list[tuple[str, str]]] | None:
    """Status and headers of a ``statusCode`` object (or a prelude); None if malformed."""
    status = meta.get("statusCode", 200)
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return None
    headers: list[tuple[str, str]] = []
    raw = meta.get("headers")
    if isinstance(raw, dict):
        for name, value in raw.items():
            text = _header_value(value)
            if text is not None and name:
                headers.append((str(name), text))
    multi = meta.get("multiValueHeaders")
    if isinstance(multi, dict):
        for name, values in multi.items():
            for value in values if isinstance(values, list) else [values]:
                text = _header_value(value)
                if text is not None and name:
                    headers.append((str(name), text))
    cookies = meta.get("cookies")
    if isinstance(cookies, list):
        headers.extend(("Set-Cookie", c) for c in cookies if isinstance(c, str))
    if not any(n.lower() == "content-type" for n, _ in headers):
        headers.insert(0, ("Content-Type", "application/json"))
    return status, headers


def interpret(payload: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """A buffered function answer as the HTTP answer Lambda gives (see the table above)."""
    try:
        value = _decode(payload) if payload else None
    except msgspec.DecodeError:
        return BAD_GATEWAY
    if isinstance(value, dict) and "statusCode" in value:
        head = http_head(value)
        if head is None:
            return BAD_GATEWAY
        body = value.get("body")
        if body is None:
            data = b""
        elif isinstance(body, str):
            if value.get("isBase64Encoded") is True:
                try:
                    data = base64.b64decode(body, validate=False)
                except (binascii.Error, ValueError):
                    return BAD_GATEWAY
            else:
                data = body.encode("utf-8")
        else:
            data = _encode(body)
        return head[0], head[1], data
    if isinstance(value, str):
        return 200, [("Content-Type", "application/json")], value.encode("utf-8")
    return 200, [("Content-Type", "application/json")], bytes(payload)


class Prelude:
    """Finds a streamed answer's prelude: feed chunks until ``done``; then ``head`` is the
    status and headers (None if the prelude was not valid JSON) and ``rest`` the body bytes
    that came with it."""

    __slots__ = ("_buf", "done", "head", "rest")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.done = False
        self.head: tuple[int, list[tuple[str, str]]] | None = None
        self.rest = b""

    def feed(self, data: bytes) -> bool:
        self._buf += data
        at = self._buf.find(DELIMITER)
        if at < 0:
            if len(self._buf) > MAX_PRELUDE:
                self.done, self.rest = True, b""
            return self.done
        self.done = True
        try:
            meta = _decode(bytes(self._buf[:at]))
        except msgspec.DecodeError:
            meta = None
        self.head = http_head(meta) if isinstance(meta, dict) else None
        self.rest = bytes(self._buf[at + len(DELIMITER):])
        self._buf = bytearray()
        return True

    def finish(self) -> None:
        """The stream ended before any delimiter: the whole of it was the prelude."""
        if not self.done:
            self.feed(DELIMITER)

    def __repr__(self) -> str:
        return f"<Prelude done={self.done} head={self.head and self.head[0]}>"


# -- CORS -------------------------------------------------------------------------------


def _origin_allowed(cors: Cors, origin: str) -> str | None:
    """The Access-Control-Allow-Origin to send for ``origin``; None if it is not allowed."""
    origins = cors.allow_origins or ()
    if "*" in origins:
        return origin if cors.allow_credentials else "*"
    for allowed in origins:
        if allowed.rstrip("/").lower() == origin.rstrip("/").lower():
            return origin
    return None


def cors_headers(cors: Cors | None, origin: str | None) -> list[tuple[str, str]]:
    """What an actual (non-preflight) response carries for a request from ``origin``."""
    if cors is None or not origin:
        return []
    allowed = _origin_allowed(cors, origin)
    if allowed is None:
        return []
    out = [("Access-Control-Allow-Origin", allowed)]
    if allowed != "*":
        out.append(("Vary", "Origin"))
    if cors.allow_credentials:
        out.append(("Access-Control-Allow-Credentials", "true"))
    if cors.expose_headers:
        out.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
    return out


def preflight(cors: Cors | None, origin: str | None, method: str | None,
              requested: str | None) -> list[tuple[str, str]] | None:
    """The headers of a preflight's answer; None if the URL has no CORS (the function then
    gets the OPTIONS request). A refused origin, method or header gets an answer without
    the allowing headers, so the browser refuses the call."""
    if cors is None:
        return None
    if not origin:
        return []
    allowed = _origin_allowed(cors, origin)
    if allowed is None:
        return []
    methods = tuple(m.upper() for m in (cors.allow_methods or ()))
    if method and "*" not in methods and method.upper() not in methods:
        return []
    allow_headers = tuple(h.lower() for h in (cors.allow_headers or ()))
    asked = [h.strip() for h in (requested or "").split(",") if h.strip()]
    if "*" not in allow_headers and any(h.lower() not in allow_headers for h in asked):
        return []
    out = [("Access-Control-Allow-Origin", allowed)]
    if allowed != "*":
        out.append(("Vary", "Origin"))
    if methods:
        out.append(("Access-Control-Allow-Methods", ",".join(methods)))
    if cors.allow_headers:
        out.append(("Access-Control-Allow-Headers", ",".join(cors.allow_headers)))
    if cors.allow_credentials:
        out.append(("Access-Control-Allow-Credentials", "true"))
    if cors.expose_headers:
        out.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
    if cors.max_age:
        out.append(("Access-Control-Max-Age", str(cors.max_age)))
    return out


def without_cors(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The function's own headers minus Access-Control-*: the URL's configuration decides."""
    return [(n, v) for n, v in headers if not n.lower().startswith("access-control-")]
