"""The event-invoke-config API (boto3's ``*FunctionEventInvokeConfig*``) and ``GET /metrics``.

=========================================================  =======================================
``PUT    /2019-09-25/functions/{name}/event-invoke-config``  PutFunctionEventInvokeConfig: replaces
``POST   /2019-09-25/functions/{name}/event-invoke-config``  UpdateFunctionEventInvokeConfig: merges
``GET    /2019-09-25/functions/{name}/event-invoke-config``  GetFunctionEventInvokeConfig
``DELETE /2019-09-25/functions/{name}/event-invoke-config``  DeleteFunctionEventInvokeConfig (204)
``GET    /2019-09-25/functions/{name}/event-invoke-config/list``  ListFunctionEventInvokeConfigs
=========================================================  =======================================

``?Qualifier=`` (or a qualified name) picks the version; unqualified means ``$LATEST``, and
the answer's ``FunctionArn`` says so, as AWS's does. Errors are AWS's: a value out of range
or a destination that is not an ARN is a 400 ``ValidationException`` worded as AWS's request
validation words it ("1 validation error detected: Value '5' at 'maximumRetryAttempts'
failed to satisfy constraint: Member must have value less than or equal to 2"); a request
with no setting, or a destination rapid cannot deliver to, is a 400
``InvalidParameterValueException``; an unknown function, or a function without a config for
Get/Update/Delete, is a 404 ``ResourceNotFoundException``. A change is answered once it is
durable.

Update merges field by field: a field it gives replaces the stored one; within
``DestinationConfig``, ``OnSuccess`` and ``OnFailure`` are replaced separately (an empty
``{}`` or ``""`` destination removes one).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import msgspec

from rapid.core.errors import (
    ServiceError,
    invalid_parameter,
    not_json,
    resource_not_found,
    unknown_operation,
    validation,
)
from rapid.core.naming import LATEST, function_arn, parse_function_name
from rapid.events import destinations as dest
from rapid.events import metrics, policy
from rapid.api.errors import render as _error
from rapid.http.message import Request, Response

if TYPE_CHECKING:
    from rapid.events.dispatcher import Dispatcher
    from rapid.host.function import Function
    from rapid.host.host import Host

PREFIX = "/2019-09-25/functions/"
_SUFFIX = "/event-invoke-config"
_LIST = "/event-invoke-config/list"
MAX_LIST_ITEMS = 50


def no_config(arn: str) -> ServiceError:
    return resource_not_found(f"The function {arn} doesn't have an EventInvokeConfig")


def nothing_to_set() -> ServiceError:
    return invalid_parameter("You must specify at least one of error handling or destination setting.")


def _validation(errors: list[str]) -> ServiceError:
    n = len(errors)
    head = f"{n} validation error{'s' if n > 1 else ''} detected: "
    return validation(head + "; ".join(errors))


class EventsAPI:
    def __init__(self, host: Host, dispatcher: Dispatcher) -> None:
        self.host = host
        self.dispatcher = dispatcher
        self._loop = asyncio.get_running_loop()

    # -- routing --------------------------------------------------------------------------

    def handles(self, path: str) -> bool:
        return path.startswith(PREFIX) and path.endswith((_SUFFIX, _LIST))

    def __call__(self, req: Request, rid: str) -> Response | asyncio.Future[Response]:
        """Raises ``ServiceError`` for the caller to render."""
        path = req.path
        query = parse_qs(req.query) if req.query else {}
        if path.endswith(_LIST):
            if req.method != "GET":
                raise unknown_operation()
            return self.list(unquote(path[len(PREFIX):-len(_LIST)]), query, rid)
        name = unquote(path[len(PREFIX):-len(_SUFFIX)])
        qualifier = query.get("Qualifier", [None])[0]
        if req.method == "GET":
            return self.get(name, qualifier, rid)
        if req.method == "DELETE":
            return self.delete(name, qualifier, rid)
        if req.method in ("PUT", "POST"):
            return self.put(name, qualifier, req.body, rid, merge=req.method == "POST")
        raise unknown_operation()

    def metrics(self, req: Request, rid: str) -> asyncio.Future[Response]:
        if req.method != "GET":
            raise unknown_operation()
        out: asyncio.Future[Response] = self._loop.create_future()

        def done(snap: asyncio.Future[Any]) -> None:
            if out.done():
                return
            if snap.exception() is not None:
                out.set_result(_error(ServiceError(500, "ServiceException", str(snap.exception()), "Service"), rid))
                return
            text = metrics.render(snap.result()).encode()
            out.set_result(Response(200, text, [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]))

        self.dispatcher.snapshot().add_done_callback(done)
        return out

    # -- operations -----------------------------------------------------------------------

    def _resolve(self, name: str, qualifier: str | None) -> tuple[Function, str, str]:
        host = self.host
        target = parse_function_name(name, qualifier, host.region, host.config.account_id)
        fn = host.resolve(target)
        q = target.qualifier or LATEST
        return fn, q, function_arn(host.region, host.config.account_id, fn.name, q)

    def get(self, name: str, qualifier: str | None, rid: str) -> Response:
        fn, q, arn = self._resolve(name, qualifier)
        body = self.dispatcher.configs.get((fn.name, q))
        if body is None:
            raise no_config(arn)
        return Response.json(200, render(body, arn), [("x-amzn-RequestId", rid)])

    def list(self, name: str, query: dict[str, list[str]], rid: str) -> Response:
        errors = []
        max_items = MAX_LIST_ITEMS
        raw = query.get("MaxItems", [None])[0]
        if raw is not None:
            try:
                max_items = int(raw)
            except ValueError:
                raise validation(f"1 validation error detected: Value '{raw}' at 'maxItems' failed to satisfy "
                                 "constraint: Member must be a number") from None
            if max_items < 1:
                errors.append(f"Value '{max_items}' at 'maxItems' failed to satisfy constraint: "
                              "Member must have value greater than or equal to 1")
            elif max_items > MAX_LIST_ITEMS:
                errors.append(f"Value '{max_items}' at 'maxItems' failed to satisfy constraint: "
                              f"Member must have value less than or equal to {MAX_LIST_ITEMS}")
        if errors:
            raise _validation(errors)
        fn, _, _ = self._resolve(name, None)
        host = self.host
        items = sorted((q, body) for (f, q), body in self.dispatcher.configs.items() if f == fn.name)
        start = 0
        marker = query.get("Marker", [None])[0]
        if marker:
            try:
                start = int(marker)
            except ValueError:
                raise invalid_parameter("Invalid marker.") from None
        page = items[start:start + max_items]
        out: dict[str, Any] = {
            "FunctionEventInvokeConfigs": [
                render(body, function_arn(host.region, host.config.account_id, fn.name, q)) for q, body in page
            ],
        }
        if start + max_items < len(items):
            out["NextMarker"] = str(start + max_items)
        return Response.json(200, out, [("x-amzn-RequestId", rid)])

    def delete(self, name: str, qualifier: str | None, rid: str) -> asyncio.Future[Response]:
        fn, q, arn = self._resolve(name, qualifier)
        if (fn.name, q) not in self.dispatcher.configs:
            raise no_config(arn)
        return self._answer(self.dispatcher.put_config(fn.name, q, None), lambda: Response(
            204, b"", [("x-amzn-RequestId", rid)]), rid)

    def put(
        self, name: str, qualifier: str | None, raw: bytes | bytearray, rid: str, *, merge: bool
    ) -> asyncio.Future[Response]:
        given = _read_settings(raw)
        fn, q, arn = self._resolve(name, qualifier)
        if not given:
            raise nothing_to_set()
        current = self.dispatcher.configs.get((fn.name, q))
        if merge:
            if current is None:
                raise no_config(arn)
            body = {k: v for k, v in current.items() if k != "LastModified"}
            for key, value in given.items():
                if key == "DestinationConfig":
                    merged = dict(body.get("DestinationConfig") or {})
                    merged.update(value)
                    body[key] = merged
                else:
                    body[key] = value
        else:
            body = dict(given)
        destination = body.get("DestinationConfig") or {}
        body["DestinationConfig"] = {
            "OnSuccess": _slot(destination.get("OnSuccess")),
            "OnFailure": _slot(destination.get("OnFailure")),
        }
        self._check_destinations(fn, body["DestinationConfig"])
        body["LastModified"] = time.time()
        return self._answer(self.dispatcher.put_config(fn.name, q, body),
                            lambda: Response.json(200, render(body, arn), [("x-amzn-RequestId", rid)]), rid)

    def _check_destinations(self, fn: Function, config: dict[str, Any]) -> None:
        on_success = config["OnSuccess"].get("Destination")
        on_failure = config["OnFailure"].get("Destination")
        host = self.host
        for value in (on_success, on_failure):
            if not value:
                continue
            try:
                dest.parse_target(value, region=host.region, account=host.config.account_id,
                                  functions=host.functions, owner=fn.name)
            except dest.TargetError as exc:
                if exc.unsupported:
                    raise invalid_parameter(f"{dest.describe_config(on_success, on_failure)} {exc}") from None
                raise invalid_parameter(str(exc)) from None

    def _answer(
        self, stored: asyncio.Future[None], ok: Any, rid: str
    ) -> asyncio.Future[Response]:
        out: asyncio.Future[Response] = self._loop.create_future()

        def done(f: asyncio.Future[None]) -> None:
            if out.done():
                return
            if f.exception() is not None:
                out.set_result(_error(ServiceError(500, "ServiceException", str(f.exception()), "Service"), rid))
            else:
                out.set_result(ok())

        stored.add_done_callback(done)
        return out


def render(body: dict[str, Any], arn: str) -> dict[str, Any]:
    """A stored config as AWS answers it."""
    out: dict[str, Any] = {"LastModified": body.get("LastModified", 0.0), "FunctionArn": arn}
    if "MaximumRetryAttempts" in body:
        out["MaximumRetryAttempts"] = body["MaximumRetryAttempts"]
    if "MaximumEventAgeInSeconds" in body:
        out["MaximumEventAgeInSeconds"] = body["MaximumEventAgeInSeconds"]
    out["DestinationConfig"] = body.get("DestinationConfig") or {"OnSuccess": {}, "OnFailure": {}}
    return out


def _slot(value: Any) -> dict[str, str]:
    if isinstance(value, dict) and value.get("Destination"):
        return {"Destination": value["Destination"]}
    return {}


def _read_settings(raw: bytes | bytearray) -> dict[str, Any]:
    """The settings a Put/Update request gives, checked as AWS's request validation checks
    them (types, ranges, destination patterns)."""
    if not raw:
        return {}
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise not_json() from None
    if not isinstance(doc, dict):
        raise not_json()
    out: dict[str, Any] = {}
    errors: list[str] = []
    for key, field, (low, high) in (
        ("MaximumRetryAttempts", "maximumRetryAttempts", policy.RETRY_ATTEMPTS_RANGE),
        ("MaximumEventAgeInSeconds", "maximumEventAgeInSeconds", policy.EVENT_AGE_RANGE),
    ):
        value = doc.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ServiceError(400, "InvalidRequestContentException",
                               f"Could not parse request body into json: {key} must be an integer.")
        if value < low:
            errors.append(f"Value '{value}' at '{field}' failed to satisfy constraint: "
                          f"Member must have value greater than or equal to {low}")
        elif value > high:
            errors.append(f"Value '{value}' at '{field}' failed to satisfy constraint: "
                          f"Member must have value less than or equal to {high}")
        out[key] = value
    config = doc.get("DestinationConfig")
    if config is not None:
        if not isinstance(config, dict):
            raise ServiceError(400, "InvalidRequestContentException",
                               "Could not parse request body into json: DestinationConfig must be an object.")
        clean: dict[str, Any] = {}
        for key, field in (("OnSuccess", "onSuccess"), ("OnFailure", "onFailure")):
            if key not in config:
                continue
            slot = config[key] or {}
            if not isinstance(slot, dict):
                raise ServiceError(400, "InvalidRequestContentException",
                                   f"Could not parse request body into json: {key} must be an object.")
            value = slot.get("Destination")
            if value is not None and not isinstance(value, str):
                raise ServiceError(400, "InvalidRequestContentException",
                                   f"Could not parse request body into json: {key}.Destination must be a string.")
            if value:
                where = f"destinationConfig.{field}.destination"
                if len(value) > dest.MAX_DESTINATION_LENGTH:
                    errors.append(f"Value '{value}' at '{where}' failed to satisfy constraint: "
                                  f"Member must have length less than or equal to {dest.MAX_DESTINATION_LENGTH}")
                elif not dest.matches_aws_pattern(value):
                    errors.append(f"Value '{value}' at '{where}' failed to satisfy constraint: "
                                  f"Member must satisfy regular expression pattern: {dest.AWS_DESTINATION_PATTERN}")
            clean[key] = {"Destination": value} if value else {}
        out["DestinationConfig"] = clean
    if errors:
        raise _validation(errors)
    return out
