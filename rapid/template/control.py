"""The control plane, called in process: the applier's way to create and change things.

``Control.call("POST", "/2015-03-31/functions", body)`` builds the very ``Request`` a
client's HTTP call would, hands it to the route the daemon's router finds for it, awaits
the answer and decodes its JSON; ``Control.target("AmazonSQS", "CreateQueue", body)`` does
the same for the JSON-protocol services (``X-Amz-Target``). So a template changes nothing
the API could not: the same checks, the same errors, the same listeners (ListFunctions
shows it all). The management guard is not consulted: the daemon itself is the caller.
A refusal raises ``ControlError`` with AWS's error code and message.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote, urlencode

from rapid.api.errors import render
from rapid.core.errors import ServiceError
from rapid.core.naming import request_id
from rapid.http.message import Request, Response


class ControlError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


class Control:
    def __init__(self, app: Any, host_header: str = "127.0.0.1") -> None:
        self.app = app
        self.host_header = host_header

    def _request(self, method: str, target: str, body: Any, headers: dict[str, str]) -> Request:
        req = Request(method, target)
        req.headers = {"host": self.host_header, "content-type": "application/json", **headers}
        if body is not None:
            req.body = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        return req

    async def _answer(self, answer: Response | asyncio.Future[Response]) -> Response:
        if isinstance(answer, asyncio.Future):
            answer = await answer
        return answer

    @staticmethod
    def _decode(resp: Response) -> Any:
        if not resp.body:
            return {}
        try:
            return json.loads(bytes(resp.body))
        except ValueError:
            return {"_raw": bytes(resp.body)}

    async def raw(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
                  headers: dict[str, str] | None = None) -> Response:
        target = path + ("?" + urlencode(query) if query else "")
        req = self._request(method, target, body, headers or {})
        found = self.app.router.match(method, req.path)
        if not isinstance(found, tuple):
            raise ControlError(404, "UnknownOperationException", f"no route for {method} {path}")
        route, params = found
        rid = request_id()
        try:
            answer = route.handler(req, params, rid)
        except ServiceError as exc:
            answer = render(exc, rid)
        return await self._answer(answer)

    async def call(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
                   *, missing_ok: bool = False) -> Any:
        """The decoded answer; None for a 404 when ``missing_ok``; ``ControlError`` otherwise."""
        resp = await self.raw(method, path, body, query)
        data = self._decode(resp)
        if resp.status >= 400:
            code = dict(resp.headers).get("x-amzn-ErrorType", "") or data.get("Type") or data.get("__type", "")
            code = str(code).split(":")[0].rsplit("#", 1)[-1]
            if missing_ok and resp.status == 404:
                return None
            raise ControlError(resp.status, code, str(data.get("message") or data.get("Message") or data))
        return data

    async def target(self, service: str, operation: str, body: dict[str, Any]) -> Any:
        """A JSON-protocol call (``AmazonSQS.CreateQueue``, ``Kinesis_20131202.CreateStream``)."""
        handler = self.app.targets.get(service)
        if handler is None:
            raise ControlError(400, "UnknownOperationException", f"{service} is not served here")
        req = self._request("POST", "/", body, {"x-amz-target": f"{service}.{operation}",
                                                "content-type": "application/x-amz-json-1.0"})
        resp = await self._answer(handler(req, request_id()))
        data = self._decode(resp)
        if resp.status >= 400:
            code = str(data.get("__type", "")).rsplit("#", 1)[-1]
            raise ControlError(resp.status, code, str(data.get("message") or data))
        return data


def path_of(name: str) -> str:
    return quote(name, safe="")
