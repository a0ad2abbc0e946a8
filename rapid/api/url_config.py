"""Function URL configurations of the Lambda REST API.

====================================================================  =======================
``POST   /2021-10-31/functions/{name}/url[?Qualifier=alias]``           CreateFunctionUrlConfig (201)
``GET    /2021-10-31/functions/{name}/url[?Qualifier=alias]``           GetFunctionUrlConfig
``PUT    /2021-10-31/functions/{name}/url[?Qualifier=alias]``           UpdateFunctionUrlConfig
``DELETE /2021-10-31/functions/{name}/url[?Qualifier=alias]``           DeleteFunctionUrlConfig (204)
``GET    /2021-10-31/functions/{name}/urls``                            ListFunctionUrlConfigs
====================================================================  =======================

A URL belongs to the unqualified function or to one alias (AWS refuses versions and
``$LATEST`` as a qualifier). Its address is ``http://<url-id>.lambda-url.<region>.localhost:<port>/``
on rapid's own port; ``rapid.api.url`` serves it.
"""

from __future__ import annotations

from typing import Any

from rapid.api.shapes import Context, body_of, no_content, ok, page, query_of
from rapid.core.errors import invalid_parameter, resource_conflict, resource_not_found, validation
from rapid.http.message import Request, Response
from rapid.http.router import Router
from rapid.core.url_event import Cors
from rapid.registry.model import FunctionUrl

_PREFIX = "/2021-10-31/functions/{name}"
AUTH_TYPES = ("NONE", "AWS_IAM")
INVOKE_MODES = ("BUFFERED", "RESPONSE_STREAM")
_METHODS = ("GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "*")
_QUALIFIER_PATTERN = r"((?!^\d+$)^[0-9a-zA-Z-_]+$)"
# (JSON member, Cors field, most items, longest item)
_CORS_LISTS = (
    ("AllowHeaders", "allow_headers", 100, 1024),
    ("AllowMethods", "allow_methods", 6, 6),
    ("AllowOrigins", "allow_origins", 100, 253),
    ("ExposeHeaders", "expose_headers", 100, 1024),
)


def _enum(data: dict[str, Any], key: str, allowed: tuple[str, ...], required: bool) -> str | None:
    value = data.get(key)
    where = key[0].lower() + key[1:]
    if value is None:
        if required:
            raise validation(f"1 validation error detected: Value null at '{where}' failed to satisfy "
                             "constraint: Member must not be null")
        return None
    if value not in allowed:
        raise validation(f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy "
                         f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]")
    return str(value)


def parse_cors(raw: Any) -> Cors | None:
    """A request's ``Cors``, checked against the model's bounds."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise validation("1 validation error detected: Value at 'cors' failed to satisfy constraint: "
                         "Member must be a structure")
    out: dict[str, Any] = {}
    for member, field, most, longest in _CORS_LISTS:
        items = raw.get(member)
        if items is None:
            continue
        where = f"cors.{member[0].lower() + member[1:]}"
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise validation(f"1 validation error detected: Value at '{where}' failed to satisfy constraint: "
                             "Member must be a list of strings")
        if len(items) > most:
            raise validation(f"1 validation error detected: Value '{items}' at '{where}' failed to satisfy "
                             f"constraint: Member must have length less than or equal to {most}")
        for item in items:
            if len(item) > longest or (member == "AllowOrigins" and not item):
                raise validation(f"1 validation error detected: Value '{items}' at '{where}' failed to satisfy "
                                 f"constraint: Member must satisfy constraint: [Member must have length less "
                                 f"than or equal to {longest}]")
        if member == "AllowMethods":
            bad = [m for m in items if m.upper() not in _METHODS]
            if bad:
                raise invalid_parameter(f"Invalid CORS method: {bad[0]}. Allowed: {', '.join(_METHODS)}")
            items = [m.upper() for m in items]
        out[field] = tuple(items)
    if raw.get("AllowCredentials") is not None:
        if not isinstance(raw["AllowCredentials"], bool):
            raise validation("1 validation error detected: Value at 'cors.allowCredentials' failed to satisfy "
                             "constraint: Member must be a boolean")
        out["allow_credentials"] = raw["AllowCredentials"]
    if raw.get("MaxAge") is not None:
        age = raw["MaxAge"]
        if not isinstance(age, int) or isinstance(age, bool) or not 0 <= age <= 86400:
            raise validation(f"1 validation error detected: Value '{age}' at 'cors.maxAge' failed to satisfy "
                             "constraint: Member must have value between 0 and 86400")
        out["max_age"] = age
    return Cors(**out)


def cors_shape(cors: Cors) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for member, field, _, _ in _CORS_LISTS:
        value = getattr(cors, field)
        if value is not None:
            out[member] = list(value)
    if cors.allow_credentials is not None:
        out["AllowCredentials"] = cors.allow_credentials
    if cors.max_age is not None:
        out["MaxAge"] = cors.max_age
    return out


class FunctionUrlsAPI:
    def __init__(self, ctx: Context, port: int = 0) -> None:
        self.ctx = ctx
        self.port = port  # the daemon's listening port (set once it listens)

    def routes(self, router: Router) -> None:
        router.add("POST", _PREFIX + "/url", self.create)
        router.add("GET", _PREFIX + "/url", self.get)
        router.add("PUT", _PREFIX + "/url", self.update)
        router.add("DELETE", _PREFIX + "/url", self.delete)
        router.add("GET", _PREFIX + "/urls", self.list)

    def address(self, url: FunctionUrl) -> str:
        return f"http://{url.url_id}.lambda-url.{self.ctx.region}.localhost:{self.port}/"

    def shape(self, url: FunctionUrl, modified: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "FunctionUrl": self.address(url),
            "FunctionArn": self.ctx.registry.arn(url.function, url.qualifier),
            "AuthType": url.auth_type,
            "CreationTime": url.created,
            "InvokeMode": url.invoke_mode,
        }
        if modified:
            out["LastModifiedTime"] = url.modified
        if url.cors is not None:
            out["Cors"] = cors_shape(url.cors)
        return out

    def _target(self, req: Request, params: dict[str, str]) -> tuple[str, str | None]:
        """The function and alias a request names; 404 if either is unknown."""
        raw = query_of(req).get("Qualifier")
        if raw is not None and (not 1 <= len(raw) <= 128 or raw.isdigit() or raw == "$LATEST"
                                or not all(c.isalnum() or c in "-_" for c in raw)):
            raise validation(f"1 validation error detected: Value '{raw}' at 'qualifier' failed to satisfy "
                             f"constraint: Member must satisfy regular expression pattern: {_QUALIFIER_PATTERN}")
        name, qualifier = self.ctx.target(params["name"], raw)
        if qualifier is not None and (qualifier.isdigit() or qualifier == "$LATEST"):
            raise validation(f"1 validation error detected: Value '{qualifier}' at 'qualifier' failed to satisfy "
                             f"constraint: Member must satisfy regular expression pattern: {_QUALIFIER_PATTERN}")
        if qualifier is not None and qualifier not in self.ctx.registry.aliases.get(name, {}):
            raise resource_not_found(f"Function not found: {self.ctx.registry.arn(name, qualifier)}")
        return name, qualifier

    def _existing(self, name: str, qualifier: str | None) -> FunctionUrl:
        url = self.ctx.registry.urls.get(name, qualifier)
        if url is None:
            raise resource_not_found()
        return url

    def create(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name, qualifier = self._target(req, params)
        data = body_of(req)
        auth = _enum(data, "AuthType", AUTH_TYPES, True)
        mode = _enum(data, "InvokeMode", INVOKE_MODES, False) or "BUFFERED"
        cors = parse_cors(data.get("Cors"))
        arn = self.ctx.registry.arn(name, qualifier)
        refused = resource_conflict(f"Failed to create function url config for [functionArn = {arn}]. Error message:  "
                           "FunctionUrlConfig exists for this Lambda function")
        url = self.ctx.registry.urls.create(name, qualifier, str(auth), mode, cors, refused)
        return ok(201, self.shape(url, modified=False), rid)

    def get(self, req: Request, params: dict[str, str], rid: str) -> Response:
        return ok(200, self.shape(self._existing(*self._target(req, params))), rid)

    def update(self, req: Request, params: dict[str, str], rid: str) -> Response:
        url = self._existing(*self._target(req, params))
        data = body_of(req)
        changes: dict[str, Any] = {}
        auth = _enum(data, "AuthType", AUTH_TYPES, False)
        if auth is not None:
            changes["auth_type"] = auth
        mode = _enum(data, "InvokeMode", INVOKE_MODES, False)
        if mode is not None:
            changes["invoke_mode"] = mode
        if "Cors" in data:
            changes["cors"] = parse_cors(data["Cors"])
        return ok(200, self.shape(self.ctx.registry.urls.update(url, **changes)), rid)

    def delete(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name, qualifier = self._target(req, params)
        if not self.ctx.registry.urls.delete(name, qualifier):
            raise resource_not_found()
        return no_content(rid)

    def list(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name, _ = self.ctx.target(params["name"])
        chunk, marker = page(self.ctx.registry.urls.of_function(name), query_of(req), None)
        out: dict[str, Any] = {"FunctionUrlConfigs": [self.shape(u) for u in chunk]}
        if marker:
            out["NextMarker"] = marker
        return ok(200, out, rid)
