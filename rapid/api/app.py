"""Every API on the daemon's port behind one router, and the service errors rendered once.

Routes, hottest first: Invoke (and the legacy InvokeAsync, and InvokeWithResponseStream:
``rapid.api.stream``), the Lambda control plane
(functions, versions, aliases, layers, concurrency: ``rapid.api.functions`` and its
siblings), the event-invoke-config API, ``/metrics`` and ``/healthz``; the dashboard
under ``/_rapid/`` (``rapid.api.dashboard``: loopback peers only). A handler returns a
``Response`` (or a future of one) or raises ``ServiceError``, which becomes AWS's REST-JSON
error here. Management routes pass the ``Guard`` first (``rapid.api.guard``): open on
loopback, SigV4 or refused elsewhere.

Function URLs (``rapid.api.url``) come before every route: a request whose target starts
with ``/lambda-url/`` or whose Host names ``<url-id>.lambda-url.<region>.localhost`` is a
URL's, whatever its method and path. The check is one ``startswith`` and one substring
search, so Invoke pays next to nothing for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rapid.api.dashboard import PREFIX as DASHBOARD
from rapid.api.dashboard import DashboardAPI
from rapid.api.errors import render
from rapid.api.guard import Guard
from rapid.api import stream
from rapid.api.invoke import InvokeAPI
from rapid.api.url import PATH_PREFIX as URL_PATH
from rapid.api.url import UrlServer
from rapid.core.errors import ServiceError, unknown_operation
from rapid.core.naming import request_id
from rapid.http.message import Request, Response
from rapid.http.protocol import HttpConnection
from rapid.http.router import Router


class App:
    def __init__(self, invoke: InvokeAPI, ready: Callable[[], bool], guard: Guard | None = None) -> None:
        self.invoke_api = invoke
        self.host = invoke.host
        self.ready = ready
        self.guard = guard
        self.urls: UrlServer | None = None  # function URLs, once the registry exists (serve_urls)
        # The dashboard serves loopback peers only and streams on the connection itself.
        self.dashboard = DashboardAPI(invoke.host, invoke, invoke.events)
        # JSON-protocol services (``POST /``) by their X-Amz-Target prefix: "AmazonSQS" and
        # "Kinesis_20131202" (rapid.queues, rapid.streams); management calls, so guarded.
        self.targets: dict[str, Callable[[Request, str], Response | asyncio.Future[Response]]] = {}
        # A query-protocol service (form-encoded ``Action=...``, XML answers): the built-in SQS
        # (rapid.queues.sqs_query); (which requests are its, the handler). Guarded too.
        self.query_protocol: tuple[Callable[[Request], bool],
                                   Callable[[Request, str], Response | asyncio.Future[Response]]] | None = None
        self.router = Router()
        r = self.router
        r.add("POST", "/2015-03-31/functions/{name}/invocations", self._invoke, management=False)
        r.add("POST", "/2014-11-13/functions/{name}/invoke-async", self._invoke_async, management=False)
        r.add("POST", "/2021-11-15/functions/{name}/response-streaming-invocations", self._invoke_stream,
              management=False)
        r.add("GET", "/healthz", self._healthz, management=False)
        events = invoke.events_api
        if events is not None:
            r.add("*", "/2019-09-25/functions/{name}/event-invoke-config", self._events)
            r.add("*", "/2019-09-25/functions/{name}/event-invoke-config/list", self._events)
            r.add("GET", "/metrics", self._metrics, management=False)
        self.more_metrics: list[Callable[[], str]] = []  # further Prometheus text (the mappings' pollers)

    def add(self, api: Any) -> None:
        """An API object with ``routes(router)``: the control plane's modules."""
        api.routes(self.router)

    def serve_urls(self, registry: Any) -> None:
        """Serve the registry's function URLs on this port (``rapid.api.url``)."""
        self.urls = UrlServer(self.invoke_api, registry, self.guard)

    def __call__(self, req: Request, conn: HttpConnection) -> Response | asyncio.Future[Response]:
        rid = request_id()
        urls = self.urls
        if urls is not None and (req.target.startswith(URL_PATH) or ".lambda-url." in req.headers.get("host", "")):
            answer = urls(req, conn, rid)
            if answer is not None:
                return answer
        try:
            target = req.headers.get("x-amz-target")
            if target is not None and (service := self.targets.get(target.partition(".")[0])) is not None:
                if self.guard is not None:
                    self.guard.check(req)
                return service(req, rid)
            found = self.router.match(req.method, req.path)
            if not isinstance(found, tuple):
                # no route: a query-protocol request (POST / or to a queue's URL, Action=...)?
                if self.query_protocol is not None and self.query_protocol[0](req):
                    if self.guard is not None:
                        self.guard.check(req)
                    return self.query_protocol[1](req, rid)
                if req.path.startswith(DASHBOARD):  # after the routes: /_rapid/code/ is the API's
                    return self.dashboard(req, conn, rid)
                raise unknown_operation()
            route, params = found
            if route.management and self.guard is not None:
                self.guard.check(req)
            return route.handler(req, params, rid)
        except ServiceError as exc:
            return render(exc, rid)

    def _invoke(self, req: Request, params: dict[str, str], rid: str) -> Response | asyncio.Future[Response]:
        return self.invoke_api.invoke(params["name"], req, rid, None)

    def _invoke_stream(self, req: Request, params: dict[str, str], rid: str) -> Response | asyncio.Future[Response]:
        return stream.invoke(self.invoke_api, params["name"], req, rid)  # InvokeWithResponseStream

    def _invoke_async(self, req: Request, params: dict[str, str], rid: str) -> Response | asyncio.Future[Response]:
        return self.invoke_api.invoke(params["name"], req, rid, "Event")

    def _events(self, req: Request, params: dict[str, str], rid: str) -> Response | asyncio.Future[Response]:
        assert self.invoke_api.events_api is not None
        return self.invoke_api.events_api(req, rid)

    def _metrics(self, req: Request, params: dict[str, str], rid: str) -> asyncio.Future[Response]:
        assert self.invoke_api.events_api is not None
        answer = self.invoke_api.events_api.metrics(req, rid)
        if not self.more_metrics:
            return answer
        out: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        def done(f: asyncio.Future[Response]) -> None:
            if f.cancelled():
                out.cancel()
                return
            resp = f.result()
            if resp.status == 200:
                resp.body = bytes(resp.body) + "".join(more() for more in self.more_metrics).encode()
            out.set_result(resp)

        answer.add_done_callback(done)
        return out

    def _healthz(self, req: Request, params: dict[str, str], rid: str) -> Response:
        if self.ready() and not self.host.stopping:
            return Response.json(200, {"status": "ok"})
        return Response.json(503, {"status": "starting" if not self.host.stopping else "stopping"})

    def __repr__(self) -> str:
        return f"<App {self.router!r} guard={self.guard!r}>"
