"""A running daemon's API as the template applier's in-process ``App`` (``rapid deploy``).

``rapid.template.control.Control`` calls ``app.router.match(...)`` then the route's
handler, and ``app.targets[service](req, rid)`` for the JSON protocols. ``RemoteApp``
answers both by sending the very same request over HTTP to the daemon at ``url`` (in a
thread, so the applier's loop runs on), and ``RemoteDeployments`` is the host's
``deployments`` for it: it starts each gradual deployment on the daemon
(``POST /_rapid/api/deployments``) and remembers its id, so ``rapid deploy`` can follow it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from rapid.http.message import Request, Response


def send(url: str, method: str, target: str, body: bytes, headers: dict[str, str],
         timeout: float = 60) -> tuple[int, list[tuple[str, str]], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        conn.request(method, target, body=body or None, headers={k: v for k, v in headers.items() if k != "host"})
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


class _Forward:
    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, req: Request, *rest: Any) -> asyncio.Future[Response]:
        async def go() -> Response:
            status, headers, body = await asyncio.to_thread(
                send, self.url, req.method, req.target, bytes(req.body or b""), dict(req.headers))
            return Response(status, body, headers)

        return asyncio.ensure_future(go())


@dataclass
class _Route:
    handler: _Forward
    management: bool = True


class _Router:
    def __init__(self, url: str) -> None:
        self.route = _Route(_Forward(url))

    def match(self, method: str, path: str) -> tuple[_Route, dict[str, str]]:
        return self.route, {}


class _Targets:
    def __init__(self, url: str) -> None:
        self.forward = _Forward(url)

    def get(self, service: str, default: Any = None) -> _Forward:
        return self.forward


class RemoteApp:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.router = _Router(self.url)
        self.targets = _Targets(self.url)

    def __repr__(self) -> str:
        return f"<RemoteApp {self.url}>"


@dataclass
class RemoteDeployments:
    url: str
    alarms: dict[str, dict[str, Any]] = field(default_factory=dict)  # the template's CloudWatch alarms
    started: list[str] = field(default_factory=list)

    async def start(self, *, function_name: str, alias: str, from_version: str | None, to_version: str,
                    preference: dict[str, Any]) -> str:
        body = json.dumps({"FunctionName": function_name, "Alias": alias, "FromVersion": from_version,
                           "ToVersion": to_version, "DeploymentPreference": preference,
                           "Alarms": self.alarms}).encode()
        status, _, answer = await asyncio.to_thread(send, self.url, "POST", "/_rapid/api/deployments", body,
                                                    {"Content-Type": "application/json"})
        data = json.loads(answer or b"{}")
        if status != 201:
            raise RuntimeError(f"{function_name}:{alias}: {data.get('Type')}: {data.get('message')}")
        self.started.append(data["DeploymentId"])
        return str(data["DeploymentId"])


@dataclass
class RemoteHost:
    deployments: RemoteDeployments
