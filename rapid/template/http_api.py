"""The local HTTP API: a template's ``Api`` and ``HttpApi`` events served on ``--api-port``,
as ``sam local start-api`` serves them (paths without the stage prefix), without Docker.

A request is matched against the routes (``rapid.template.api_events.Table``), turned into
the route's payload (1.0 or 2.0), and invoked synchronously through the Invoke API (the
function's alias when it has ``AutoPublishAlias``); the answer is read as API Gateway reads
it. No route: 403 ``Missing Authentication Token`` when the port serves a REST API, else
404 ``Not Found``. A function error or an answer API Gateway cannot read: 502
``Internal server error``. ``replace`` swaps the routes when the template is applied again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rapid.core.naming import request_id
from rapid.http.message import Request, Response
from rapid.http.protocol import HttpConnection, Limits
from rapid.http.server import Listener, listen
from rapid.template.api_events import (
    INTERNAL_ERROR, Route, Table, _encode, answer_v1, answer_v2, event_v1, event_v2, not_found,
)
from rapid.template.control import Control, path_of

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload quota


class LocalApi:
    def __init__(self, control: Control, account: str) -> None:
        self.control = control
        self.account = account
        self.table = Table([])
        self.listener: Listener | None = None
        self.served = 0

    def replace(self, routes: list[Route]) -> None:
        self.table = Table(routes)

    async def start(self, host: str, port: int) -> int:
        self.listener = await listen(self, host, port, MAX_BODY, Limits(), 256)
        sock: Any = self.listener.sockets[0]
        return int(sock.getsockname()[1])

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()

    def __call__(self, req: Request, conn: HttpConnection) -> asyncio.Future[Response] | Response:
        rid = request_id()
        found = self.table.match(req.method, req.path)
        if found is None:
            rest = any(r.rest for r in self.table.routes)
            return Response(*_with_id(not_found(rest), rid))
        route, params = found
        return asyncio.ensure_future(self._invoke(route, params, req, conn, rid))

    async def _invoke(self, route: Route, params: dict[str, str], req: Request, conn: HttpConnection,
                      rid: str) -> Response:
        build = event_v1 if route.payload == "1.0" else event_v2
        peer = conn.peer[0] if conn.peer else "127.0.0.1"
        event = build(route, params, req.method, req.path, req.query, req.headers, bytes(req.body),
                      request_id=rid, source_ip=peer, now=time.time(), account=self.account,
                      api_id=route.api.lower()[:10])
        query = {"Qualifier": route.qualifier} if route.qualifier else None
        resp = await self.control.raw("POST", f"/2015-03-31/functions/{path_of(route.function)}/invocations",
                                      _encode(event), query)
        self.served += 1
        if resp.status != 200 or any(n.lower() == "x-amz-function-error" for n, _ in resp.headers):
            return Response(*_with_id(INTERNAL_ERROR, rid))
        read = answer_v1 if route.payload == "1.0" else answer_v2
        return Response(*_with_id(read(bytes(resp.body)), rid))

    def __repr__(self) -> str:
        return f"<LocalApi {self.table!r} served={self.served}>"


def _with_id(answer: tuple[int, list[tuple[str, str]], bytes], rid: str) -> tuple[int, bytes, list[tuple[str, str]]]:
    status, headers, body = answer
    headers = [*headers, ("x-amzn-RequestId", rid), ("apigw-requestid", rid)]
    return status, body, headers


__all__ = ["LocalApi", "Route", "Any"]
