"""rapid's own deployments API under ``/_rapid/api/deployments`` (management routes: the
Guard applies).

- ``GET`` every kept deployment, newest first, with its steps and outcome (``?function=``
  for one function's), as JSON; the dashboard and ``rapid deployments --url`` read it.
- ``POST`` starts one, as the template applier does in process: ``{"FunctionName",
  "Alias", "FromVersion", "ToVersion", "DeploymentPreference", "Alarms": {name:
  properties}}``; 201 ``{"DeploymentId"}``. ``rapid deploy`` uses it for a template
  applied from outside the daemon.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

from rapid.api.shapes import body_of
from rapid.core.errors import ServiceError
from rapid.deployments.model import DeploymentError
from rapid.deployments.service import Deployments
from rapid.http.message import Request, Response
from rapid.http.router import Router

PATH = "/_rapid/api/deployments"


class DeploymentsView:
    def __init__(self, deployments: Deployments) -> None:
        self.deployments = deployments

    def routes(self, router: Router) -> None:
        router.add("GET", PATH, self.list)
        router.add("POST", PATH, self.start)

    def list(self, req: Request, params: dict[str, str], rid: str) -> Response:
        query = {k: v[-1] for k, v in parse_qs(req.query).items()} if req.query else {}
        fn = query.get("function")
        return Response.json(200, [d.view() for d in self.deployments.listed() if fn in (None, d.function)])

    def start(self, req: Request, params: dict[str, str], rid: str) -> asyncio.Future[Response]:
        data = body_of(req)
        fields = {"function_name": data.get("FunctionName"), "alias": data.get("Alias"),
                  "to_version": data.get("ToVersion")}
        for key, value in fields.items():
            if not isinstance(value, str) or not value:
                raise ServiceError(400, "InvalidParameterValueException", f"{key} must be a non-empty string")
        alarms = data.get("Alarms") or {}
        preference = data.get("DeploymentPreference") or {}
        if not isinstance(alarms, dict) or not isinstance(preference, dict):
            raise ServiceError(400, "InvalidParameterValueException",
                               "DeploymentPreference and Alarms must be objects")
        from_version = data.get("FromVersion")

        async def run() -> Response:
            try:
                did = await self.deployments.start(
                    function_name=fields["function_name"], alias=fields["alias"],  # type: ignore[arg-type]
                    from_version=str(from_version) if from_version is not None else None,
                    to_version=fields["to_version"], preference=preference, alarms=alarms,  # type: ignore[arg-type]
                )
            except DeploymentError as exc:
                return Response.json(400, {"Type": exc.code, "message": exc.message},
                                     [("x-amzn-ErrorType", exc.code), ("x-amzn-RequestId", rid)])
            return Response.json(201, {"DeploymentId": did}, [("x-amzn-RequestId", rid)])

        return asyncio.ensure_future(run())

    def __repr__(self) -> str:
        return f"<DeploymentsView {self.deployments!r}>"

