"""The Telemetry API (``PUT /2022-07-01/telemetry``) and Logs API (``PUT /2020-08-15/logs``)
subscribe edge, on the instance's own Runtime API address.

Only a registered extension may subscribe (its ``Lambda-Extension-Identifier``); the body is
checked by ``rapid.core.telemetry.parse_subscription`` and the subscription handed to the
instance's ``Telemetry`` (``rapid.host.telemetry``), which delivers from then on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rapid.core import report
from rapid.core.errors import RuntimeAPIError
from rapid.core.telemetry import parse_subscription
from rapid.http.message import Request, Response

if TYPE_CHECKING:
    from rapid.host.instance import Instance

PATHS = {"/2022-07-01/telemetry": "telemetry", "/2020-08-15/logs": "logs"}


def subscribe(inst: Instance, api: str, req: Request) -> Response:
    if req.method != "PUT":
        return Response.json(405, {"errorMessage": "Method Not Allowed", "errorType": "MethodNotAllowed"})
    try:
        ext = inst.extensions.identify(req.headers.get("lambda-extension-identifier"))
        sub = parse_subscription(bytes(req.body), api)
        line = inst.telemetry.subscribe(ext.name, sub)
    except RuntimeAPIError as exc:
        return Response.json(exc.status, exc.body())
    fn = inst.function
    if fn.json_logs:
        kind = "platform.telemetrySubscription" if api == "telemetry" else "platform.logsSubscription"
        types: list[str] = [t for t in ("platform", "function", "extension") if t in sub.types]
        fn.log_line(report.encode(kind, report.subscription_record(ext.name, types)).decode())
    else:
        fn.log_line(line)
    return Response(200, b'"OK"', [("Content-Type", "application/json")])
