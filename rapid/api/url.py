"""Serving function URLs on rapid's port: by Host header and by path.

A request reaches a URL two ways (``rapid.api.app`` sends it here before any route):

- ``Host: <url-id>.lambda-url.<region>.localhost[:port]`` (curl and browsers resolve
  ``*.localhost`` to loopback), any path;
- ``/lambda-url/<url-id>/<path>`` on any host, for clients that cannot set one; the
  function sees ``/<path>``.

Theory of operation
-------------------
The url-id names the configuration (``Registry.urls``, one dict lookup). An unknown one is
answered 403 ``{"Message":null}``, as AWS answers it. ``AWS_IAM`` URLs check the request's
SigV4 with the keys of ``--credentials`` (the management API's ``Guard``); without
credentials rapid has no keys to check against, so it demands a well-formed SigV4
``Authorization`` header and takes its key id on trust. A CORS preflight (``OPTIONS`` with
``Origin`` and ``Access-Control-Request-Method``) of a URL with CORS is answered from the
configuration without invoking anything. Otherwise the request becomes the payload 2.0
event (``rapid.core.url_event``) of an ordinary ``Invocation``, submitted to the function
(or alias) as Invoke submits one.

``BUFFERED``: the answer, once settled, is interpreted as Lambda interprets it; a function
error (a timeout included) is 502 ``Internal Server Error``, a throttle 429.
``RESPONSE_STREAM``: the invocation carries a ``UrlStream`` as its stream consumer, as
InvokeWithResponseStream does (``rapid.api.stream``); with the
``application/vnd.awslambda.http-integration-response`` content type the prelude before the
eight NUL bytes gives the status, headers and cookies, and the rest goes on to the client in
chunks as the runtime writes it, under the client's back-pressure. The URL's CORS headers are
added to every answer (the function's own ``Access-Control-*`` headers give way to them).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from rapid.api.guard import Guard
from rapid.core import url_event
from rapid.core.errors import MAX_SYNC_REQUEST, ServiceError
from rapid.core.invocation import Invocation
from rapid.core.naming import Target, function_arn, trace_id
from rapid.http.message import Request, Response, StreamingResponse

if TYPE_CHECKING:
    from rapid.api.invoke import InvokeAPI
    from rapid.host.function import Function
    from rapid.registry.model import FunctionUrl
    from rapid.http.protocol import HttpConnection
    from rapid.registry.registry import Registry

PATH_PREFIX = "/lambda-url/"
_FORWARDED = "x-rapid-forwarded"  # the one-hop mark of a request another node forwarded (rapid.cluster)
_SIGNED = re.compile(r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/")
_encode = msgspec.json.Encoder().encode


def _message(status: int, message: str | None, rid: str, code: str | None = None) -> Response:
    headers = [("x-amzn-RequestId", rid)]
    if code:
        headers.append(("x-amzn-ErrorType", code))
    return Response.json(status, {"Message": message}, headers)


def locate(req: Request, region: str) -> tuple[str, str, str] | None:
    """``(url-id, path the function sees, domainName)`` of a URL request; None if it
    names no URL (then it is not one)."""
    target = req.target
    if target.startswith(PATH_PREFIX):
        rest = req.path[len(PATH_PREFIX):]
        url_id, slash, path = rest.partition("/")
        return url_id, "/" + path if slash else "/", f"{url_id}.lambda-url.{region}.localhost"
    host = req.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.lower().rstrip(".")
    if not name.endswith(".localhost") or ".lambda-url." not in name:
        return None
    url_id, _, rest = name.partition(".lambda-url.")
    if rest != f"{region}.localhost":
        return None
    return url_id, req.path or "/", name


class UrlServer:
    def __init__(self, invoke: InvokeAPI, registry: Registry, guard: Guard | None) -> None:
        self.invoke_api = invoke
        self.host = invoke.host
        self.registry = registry
        self.guard = guard
        self.region = invoke.host.region
        self.account = invoke.host.config.account_id

    def __call__(self, req: Request, conn: HttpConnection, rid: str) -> Response | asyncio.Future[Response] | None:
        """The answer to a URL's request; None if ``req`` names no URL after all (another
        host that merely contains ``.lambda-url.``): the app's routes then take it."""
        found = locate(req, self.region)
        if found is None:
            return None
        return self.answer(req, rid, conn.peer[0] if conn.peer else "127.0.0.1", _local_port(conn), found)

    def answer(self, req: Request, rid: str, peer: str, port: int,
               found: tuple[str, str, str] | None = None) -> Response | asyncio.Future[Response]:
        """The answer to a URL's request from ``peer`` on ``port`` (also a request another
        node forwarded, with its invoker's address: ``rapid.cluster.stream_forwarding``)."""
        found = found or locate(req, self.region)
        if found is None:
            return _message(403, None, rid, "AccessDeniedException")
        url = self.registry.urls.by_id.get(found[0])
        if url is None:
            return _message(403, None, rid, "AccessDeniedException")
        where: tuple[str, str, str] = found
        cors = url.cors
        origin = req.headers.get("origin")
        if req.method == "OPTIONS" and origin and "access-control-request-method" in req.headers:
            allowed = url_event.preflight(cors, origin, req.headers.get("access-control-request-method"),
                                          req.headers.get("access-control-request-headers"))
            if allowed is not None:
                return Response(200, b"", [*allowed, ("x-amzn-RequestId", rid)])
        authorizer = None
        if url.auth_type == "AWS_IAM":
            checked = self._signed(req, rid)
            if isinstance(checked, Response):
                return checked
            authorizer = checked
        if self.host.stopping:
            return _message(503, "rapid is shutting down", rid, "ServiceException")
        if req.too_large or len(req.body) > MAX_SYNC_REQUEST:
            return _message(413, f"Request must be smaller than {MAX_SYNC_REQUEST} bytes for the "
                            "InvokeFunction operation", rid, "RequestTooLargeException")
        try:
            fn = self.host.resolve(Target(url.function, url.qualifier))
        except ServiceError as exc:
            return _message(exc.status, exc.message, rid, exc.code)
        placement = self.invoke_api.placement
        if placement is not None and placement.streams is not None:  # a cluster: maybe another node runs it
            extra = url_event.cors_headers(url.cors, req.headers.get("origin")) + [("x-amzn-RequestId", rid)]
            placed = placement.place(
                fn, req, rid, lambda: self._submit(req, rid, url, where, peer, port, authorizer),
                ask=placement.streams.asker("url", peer, port), refuse=lambda exc, _rid: _refusal(exc, extra))
            if placed is not None:
                return placed
        return self._submit(req, rid, url, where, peer, port, authorizer, fn)

    def _submit(self, req: Request, rid: str, url: FunctionUrl, found: tuple[str, str, str], peer: str, port: int,
                authorizer: dict[str, Any] | None, fn: Function | None = None) -> asyncio.Future[Response]:
        """The request as an invocation of the URL's function, here."""
        if fn is None:
            fn = self.host.resolve(Target(url.function, url.qualifier))  # ServiceError: gone meanwhile
        _, path, domain = found
        cors = url.cors
        origin = req.headers.get("origin")
        now = time.time()
        trace = req.headers.get("x-amzn-trace-id") or trace_id(now)
        headers = dict(req.headers)
        headers.pop(_FORWARDED, None)
        # What Lambda's front end adds: the client's address, the scheme and port it used, a trace.
        forwarded = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{forwarded}, {peer}" if forwarded else peer
        headers["x-forwarded-proto"] = "http"
        headers["x-forwarded-port"] = str(port)
        headers["x-amzn-trace-id"] = trace
        payload = _encode(url_event.event(
            req.method, path, req.query, headers, bytes(req.body), url_id=url.url_id, domain=domain,
            source_ip=peer, request_id=rid, now=now,
            account_id="anonymous" if authorizer is None else self.account, authorizer=authorizer,
        ))
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        if len(payload) > MAX_SYNC_REQUEST:
            fut.set_result(_message(413, f"Request must be smaller than {MAX_SYNC_REQUEST} bytes for the "
                                    "InvokeFunction operation", rid, "RequestTooLargeException"))
            return fut
        inv = Invocation(
            request_id=rid, payload=payload,
            function_arn=function_arn(self.region, self.account, fn.name, url.qualifier),
            timeout=fn.timeout, trace_id=trace,
        )
        extra = url_event.cors_headers(cors, origin) + [("x-amzn-RequestId", rid)]
        head_only = req.method == "HEAD"
        if url.invoke_mode == "RESPONSE_STREAM":
            answer = UrlStream(fut, extra, cors is not None)
            inv.stream = answer
            inv.on_settled = answer.settled
        else:
            inv.on_settled = lambda inv: _settle(fut, inv, extra, cors is not None, head_only)
        fn.submit(inv)
        return fut

    def _signed(self, req: Request, rid: str) -> dict[str, Any] | Response:
        """The authorizer.iam of a correctly signed request, or the refusal."""
        header = req.headers.get("authorization", "")
        m = _SIGNED.match(header)
        if m is None:
            return _message(403, "Forbidden", rid, "AccessDeniedException")
        if self.guard is not None and self.guard.keys is not None:
            try:
                self.guard.check(req)
            except ServiceError as exc:
                return _message(exc.status, exc.message, rid, exc.code)
        key = m["key"]
        return {"iam": {
            "accessKey": key, "accountId": self.account, "callerId": key, "cognitoIdentity": None,
            "principalOrgId": None, "userArn": f"arn:aws:iam::{self.account}:user/{key}", "userId": key,
        }}

    def __repr__(self) -> str:
        return f"<UrlServer urls={len(self.registry.urls.by_id)} region={self.region}>"


def _local_port(conn: HttpConnection) -> int:
    transport = conn.transport
    sock = transport.get_extra_info("sockname") if transport is not None else None
    return int(sock[1]) if isinstance(sock, tuple) and len(sock) >= 2 else 0


def _with_cors(headers: list[tuple[str, str]], extra: list[tuple[str, str]], has_cors: bool) -> list[tuple[str, str]]:
    return (url_event.without_cors(headers) if has_cors else headers) + extra


def _refusal(svc: ServiceError, extra: list[tuple[str, str]]) -> Response:
    """A throttle or a refusal of the service, as a URL answers it."""
    text = "Rate Exceeded." if svc.status == 429 else svc.message
    headers = [("x-amzn-ErrorType", svc.code), *extra]
    if svc.retry_after is not None:
        headers.append(("Retry-After", str(svc.retry_after)))
    return Response.json(svc.status, {"Message": text}, headers)


def _failure(inv: Invocation, extra: list[tuple[str, str]]) -> Response | None:
    """The answer of an invocation that did not produce one: throttled, refused, failed."""
    outcome = inv.outcome
    assert outcome is not None
    svc = outcome.service_error
    if svc is not None:
        return _refusal(svc, extra)
    if outcome.function_error:
        status, headers, body = url_event.BAD_GATEWAY
        return Response(status, body, [*headers, *extra])
    return None


def _settle(fut: asyncio.Future[Response], inv: Invocation, extra: list[tuple[str, str]], has_cors: bool,
            head_only: bool) -> None:
    if fut.done():
        return
    failed = _failure(inv, extra)
    if failed is not None:
        fut.set_result(failed)
        return
    assert inv.outcome is not None
    status, headers, body = url_event.interpret(inv.outcome.body)
    fut.set_result(Response(status, b"" if head_only else body, _with_cors(headers, extra, has_cors)))


class UrlStream:
    """A RESPONSE_STREAM URL's consumer of the runtime's stream (``begin``/``chunk``), and
    its ``on_settled``."""

    __slots__ = ("_pause", "_resume", "extra", "fut", "has_cors", "prelude", "resp")

    def __init__(self, fut: asyncio.Future[Response], extra: list[tuple[str, str]], has_cors: bool) -> None:
        self.fut = fut
        self.extra = extra
        self.has_cors = has_cors
        self.resp: StreamingResponse | None = None
        self.prelude: url_event.Prelude | None = None
        self._pause: Callable[[], None] | None = None
        self._resume: Callable[[], None] | None = None

    def begin(self, content_type: str, pause: Callable[[], None] | None = None,
              resume: Callable[[], None] | None = None) -> None:
        self._pause, self._resume = pause, resume
        if content_type.split(";", 1)[0].strip().lower() == url_event.PRELUDE_TYPE:
            self.prelude = url_event.Prelude()  # the head waits for the prelude's end
        else:
            self._open(200, [("Content-Type", content_type or "application/octet-stream")])

    def _open(self, status: int, headers: list[tuple[str, str]]) -> None:
        resp = StreamingResponse(status, _with_cors(headers, self.extra, self.has_cors))
        resp.on_pause, resp.on_resume = self._pause, self._resume
        self.resp = resp
        if not self.fut.done():
            self.fut.set_result(resp)
        else:
            resp.closed = True  # the client went away before anything came

    def chunk(self, data: bytes) -> None:
        if self.resp is not None:
            self.resp.write(data)
            return
        prelude = self.prelude
        if prelude is not None and prelude.feed(data):
            self._opened_by(prelude)

    def _opened_by(self, prelude: url_event.Prelude) -> None:
        head = prelude.head
        if head is None:  # not a valid prelude: what AWS answers for a malformed response
            status, headers, _ = url_event.BAD_GATEWAY
            self._open(status, headers)
            assert self.resp is not None
            self.resp.write(url_event.BAD_GATEWAY[2])
            self.resp.end()
            return
        self._open(*head)
        assert self.resp is not None
        if prelude.rest:
            self.resp.write(prelude.rest)

    def settled(self, inv: Invocation) -> None:
        outcome = inv.outcome
        assert outcome is not None
        if self.resp is None:
            failed = _failure(inv, self.extra)
            if failed is not None:
                if not self.fut.done():
                    self.fut.set_result(failed)
                return
            if self.prelude is not None:  # streamed, but ended before the delimiter
                self.prelude.finish()
                self._opened_by(self.prelude)
            else:  # a buffered answer: sent as the function returned it, as AWS streams it
                self._open(200, [("Content-Type", outcome.content_type or "application/json")])
                assert self.resp is not None
                self.resp.write(outcome.body)
        assert self.resp is not None
        self.resp.end()  # a mid-stream error can only cut the body short, as on AWS

    def __repr__(self) -> str:
        return f"<UrlStream started={self.resp is not None} prelude={self.prelude!r}>"
