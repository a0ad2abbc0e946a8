"""``GET /_rapid/api/deployments``: every kept deployment, newest first, with its steps and
outcome (``?function=`` for one function's), as JSON; the dashboard and ``rapid
deployments --url`` read it. A management route (the Guard applies)."""

from __future__ import annotations

from urllib.parse import parse_qs

from rapid.deployments.service import Deployments
from rapid.http.message import Request, Response
from rapid.http.router import Router

PATH = "/_rapid/api/deployments"


class DeploymentsView:
    def __init__(self, deployments: Deployments) -> None:
        self.deployments = deployments

    def routes(self, router: Router) -> None:
        router.add("GET", PATH, self.list)

    def list(self, req: Request, params: dict[str, str], rid: str) -> Response:
        query = {k: v[-1] for k, v in parse_qs(req.query).items()} if req.query else {}
        fn = query.get("function")
        return Response.json(200, [d.view() for d in self.deployments.listed() if fn in (None, d.function)])

    def __repr__(self) -> str:
        return f"<DeploymentsView {self.deployments!r}>"
