"""The Extensions API edge (2020-01-01), on the instance's own Runtime API address.

One small handler per endpoint: parse the request, ask the instance's ``Extensions``
(``rapid.host.extensions``), render the answer or the error in AWS's shape
(``{"errorMessage", "errorType"}``). Reached through ``rapid.api.runtime.RuntimeAPI``, so
the same peer check applies: only the instance's own processes get here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rapid.core import report
from rapid.core.errors import RuntimeAPIError
from rapid.core.extension_state import ExtensionEvent, extension_line, parse_register
from rapid.http.message import Request, Response

if TYPE_CHECKING:
    from rapid.host.instance import Instance

PREFIX = "/2020-01-01/extension/"
_ACCEPTED = b'{"status":"OK"}'
_JSON = [("Content-Type", "application/json")]


def handle(inst: Instance, rest: str, req: Request) -> Response | asyncio.Future[Response]:
    """``rest`` is the path after ``/2020-01-01/extension/``."""
    try:
        if rest == "register":
            return _allowed(req, "POST") or register(inst, req)
        if rest == "event/next":
            return _allowed(req, "GET") or event_next(inst, req)
        if rest == "init/error":
            return _allowed(req, "POST") or error(inst, req, ExtensionEvent.INIT_ERROR)
        if rest == "exit/error":
            return _allowed(req, "POST") or error(inst, req, ExtensionEvent.EXIT_ERROR)
    except RuntimeAPIError as exc:
        return Response.json(exc.status, exc.body())
    return Response.json(404, {"errorMessage": "Not Found", "errorType": "NotFound"})


def _allowed(req: Request, method: str) -> Response | None:
    if req.method == method:
        return None
    return Response.json(405, {"errorMessage": "Method Not Allowed", "errorType": "MethodNotAllowed"})


def register(inst: Instance, req: Request) -> Response:
    exts = inst.extensions
    name = req.headers.get("lambda-extension-name")
    launched = any(not e.internal and e.name == name and not e.id for e in exts.all)
    reg = parse_register(
        name, bytes(req.body), req.headers.get("lambda-extension-accept-feature"),
        registered=len(exts.by_id), closed=inst.initialized, internal=not launched,
    )
    ext = exts.register(reg)
    fn = inst.function
    body: dict[str, str] = {
        "functionName": fn.name,
        "functionVersion": fn.version,
        "handler": fn.config.handler,
    }
    if reg.account_id:
        body["accountId"] = fn.host.config.account_id
    if fn.json_logs:
        fn.log_line(report.extension_json(ext.name, "Ready", list(ext.events)))
    else:
        fn.log_line(extension_line(ext.name, "Ready", ext.events))
    inst.telemetry.emit("platform", "platform.extension", report.extension_record(ext.name, "Ready", list(ext.events)))
    return Response.json(200, body, [("Lambda-Extension-Identifier", ext.id)])


def event_next(inst: Instance, req: Request) -> Response | asyncio.Future[Response]:
    exts = inst.extensions
    ext = exts.identify(req.headers.get("lambda-extension-identifier"))
    return exts.next(ext)


def error(inst: Instance, req: Request, event: ExtensionEvent) -> Response:
    exts = inst.extensions
    ext = exts.identify(req.headers.get("lambda-extension-identifier"))
    problem = exts.report_error(ext, event, req.headers.get("lambda-extension-function-error-type"))
    if problem is not None:
        return Response.json(problem.status, problem.body())
    return Response(202, _ACCEPTED, _JSON)
