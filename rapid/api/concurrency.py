"""Reserved and provisioned concurrency of the Lambda REST API.

=====================================================================  ========================
``PUT    /2017-10-31/functions/{name}/concurrency``                      PutFunctionConcurrency
``DELETE /2017-10-31/functions/{name}/concurrency``                      DeleteFunctionConcurrency (204)
``GET    /2019-09-30/functions/{name}/concurrency``                      GetFunctionConcurrency
``PUT    /2019-09-30/functions/{name}/provisioned-concurrency?Qualifier``  PutProvisionedConcurrencyConfig (202)
``GET    ...provisioned-concurrency?Qualifier`` / ``?List=ALL``          Get / ListProvisionedConcurrencyConfigs
``DELETE ...provisioned-concurrency?Qualifier``                          DeleteProvisionedConcurrencyConfig (204)
=====================================================================  ========================

Reserved concurrency is the function's, shared by all its versions, and keeps 100 of the
host's ``max_concurrency`` unreserved. Provisioned concurrency is per version or alias; its
Status is ``IN_PROGRESS`` until that many instances have initialised, then ``READY``
(``FAILED`` when the version cannot start at all).
"""

from __future__ import annotations

from typing import Any

from rapid.api.shapes import Context, body_of, no_content, ok, page, query_of
from rapid.core import rules
from rapid.core.errors import ServiceError, invalid_parameter, validation
from rapid.core.naming import Target
from rapid.core.routing import LATEST
from rapid.host.function import PROVISIONED_TRIES
from rapid.host.host import Host
from rapid.http.message import Request, Response
from rapid.http.router import Router
from rapid.registry.model import now_text
from rapid.registry.registry import Registry


class ConcurrencyAPI:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._modified: dict[tuple[str, str], str] = {}

    def routes(self, router: Router) -> None:
        router.add("PUT", "/2017-10-31/functions/{name}/concurrency", self.put_reserved)
        router.add("DELETE", "/2017-10-31/functions/{name}/concurrency", self.delete_reserved)
        router.add("GET", "/2019-09-30/functions/{name}/concurrency", self.get_reserved)
        router.add("PUT", "/2019-09-30/functions/{name}/provisioned-concurrency", self.put_provisioned)
        router.add("GET", "/2019-09-30/functions/{name}/provisioned-concurrency", self.get_provisioned)
        router.add("DELETE", "/2019-09-30/functions/{name}/provisioned-concurrency", self.delete_provisioned)

    # -- reserved -------------------------------------------------------------------------

    def put_reserved(self, req: Request, params: dict[str, str], rid: str) -> Response:
        ctx = self.ctx
        name, _ = ctx.target(params["name"])
        value = body_of(req).get("ReservedConcurrentExecutions")
        if not isinstance(value, int) or isinstance(value, bool):
            raise validation("1 validation error detected: Value null at 'reservedConcurrentExecutions' failed "
                             "to satisfy constraint: Member must not be null")
        fs = ctx.registry.settings.get(name)
        current = fs.reserved if fs and fs.reserved is not None else 0
        rules.check_reserved(value, ctx.host.reserved_total - current, ctx.host.max_concurrency)
        provisioned = sum(fs.provisioned.values()) if fs else 0
        if provisioned > value:
            raise invalid_parameter(f"ReservedConcurrentExecutions {value} should not be lower than function's "
                                    f"total provisioned concurrency [{provisioned}].")
        ctx.registry.set_reserved(name, value)
        return ok(200, {"ReservedConcurrentExecutions": value}, rid)

    def get_reserved(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name, _ = self.ctx.target(params["name"])
        fs = self.ctx.registry.settings.get(name)
        if fs is None:
            fn = self.ctx.host.functions.get(name)
            reserved = fn.reserved if fn is not None else None
        else:
            reserved = fs.reserved
        return ok(200, {} if reserved is None else {"ReservedConcurrentExecutions": reserved}, rid)

    def delete_reserved(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name, _ = self.ctx.target(params["name"])
        self.ctx.registry.set_reserved(name, None)
        return no_content(rid)

    # -- provisioned ----------------------------------------------------------------------

    def _qualified(self, req: Request, params: dict[str, str]) -> tuple[str, str, str]:
        """(function, qualifier, the version it names)."""
        ctx = self.ctx
        name, qualifier = ctx.target(params["name"], query_of(req).get("Qualifier"))
        if qualifier is None:
            raise validation("1 validation error detected: Value null at 'qualifier' failed to satisfy "
                             "constraint: Member must not be null")
        if qualifier == LATEST:
            raise invalid_parameter("Provisioned Concurrency Configs cannot be applied to unpublished function "
                                    "versions.")
        ctx.registry.writable(name)
        version = ctx.registry.version(name, qualifier).version
        if version == LATEST:
            raise invalid_parameter("Provisioned Concurrency Configs cannot be applied to unpublished function "
                                    "versions.")
        return name, qualifier, version

    def _shape(self, name: str, qualifier: str, requested: int) -> dict[str, Any]:
        ctx = self.ctx
        version = ctx.registry.version(name, qualifier).version
        view = ctx.deployment.provisioned_view
        if view is not None:  # a cluster: the whole function's figures, every node's part
            allocated, available, status, reason = view(name, version, requested)
            out: dict[str, Any] = {
                "RequestedProvisionedConcurrentExecutions": requested,
                "AvailableProvisionedConcurrentExecutions": available,
                "AllocatedProvisionedConcurrentExecutions": allocated,
                "Status": status,
                "LastModified": self._modified.get((name, qualifier), now_text()),
            }
            if reason is not None:
                out["StatusReason"] = reason
            return out
        pool = ctx.host.pools.get((name, version))
        ready = min(requested, pool.provisioned_ready) if pool is not None else 0
        out = {
            "RequestedProvisionedConcurrentExecutions": requested,
            "AvailableProvisionedConcurrentExecutions": ready,
            "AllocatedProvisionedConcurrentExecutions": ready,
            "Status": "READY" if ready >= requested else "IN_PROGRESS",
            "LastModified": self._modified.get((name, qualifier), now_text()),
        }
        if pool is not None and ready < requested and pool.provisioned_failures >= PROVISIONED_TRIES:
            out["Status"] = "FAILED"
            out["StatusReason"] = f"FUNCTION_ERROR_INIT_FAILURE: {pool.provisioned_error}"
        return out

    def put_provisioned(self, req: Request, params: dict[str, str], rid: str) -> Response:
        ctx = self.ctx
        name, qualifier, version = self._qualified(req, params)
        value = body_of(req).get("ProvisionedConcurrentExecutions")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise validation(f"1 validation error detected: Value '{value}' at 'provisionedConcurrentExecutions' "
                             "failed to satisfy constraint: Member must have value greater than or equal to 1")
        check_provisioned(ctx.registry, ctx.host, name, qualifier, value)
        self._modified[(name, qualifier)] = now_text()
        ctx.registry.set_provisioned(name, qualifier, value)
        return ok(202, self._shape(name, qualifier, value), rid)

    def get_provisioned(self, req: Request, params: dict[str, str], rid: str) -> Response:
        ctx = self.ctx
        query = query_of(req)
        if query.get("List") == "ALL":
            name, _ = ctx.target(params["name"])
            fs = ctx.registry.settings.get(name)
            items = sorted((fs.provisioned if fs else {}).items())
            chunk, marker = page(items, query, None)
            out: dict[str, Any] = {"ProvisionedConcurrencyConfigs": [
                {"FunctionArn": ctx.registry.arn(name, q), **self._shape(name, q, n)} for q, n in chunk
            ]}
            if marker:
                out["NextMarker"] = marker
            return ok(200, out, rid)
        name, qualifier, _ = self._qualified(req, params)
        requested = ctx.registry.settings[name].provisioned.get(qualifier)
        if requested is None:
            raise ServiceError(404, "ProvisionedConcurrencyConfigNotFoundException",
                               "No Provisioned Concurrency Config found for this function")
        return ok(200, self._shape(name, qualifier, requested), rid)

    def delete_provisioned(self, req: Request, params: dict[str, str], rid: str) -> Response:
        name, qualifier, _ = self._qualified(req, params)
        self.ctx.registry.set_provisioned(name, qualifier, None)
        return no_content(rid)


def check_provisioned(registry: Registry, host: Host, name: str, qualifier: str, value: int) -> None:
    """Refuse ``value`` provisioned instances for ``name:qualifier`` past the function's
    reserved concurrency or the account's unreserved room (also autoscaling's check)."""
    fs = registry.settings[name]
    others = sum(n for q, n in fs.provisioned.items() if q != qualifier)
    if fs.reserved is not None and others + value > fs.reserved:
        raise invalid_parameter(f"Requested Provisioned Concurrency should not be greater than the "
                                f"reservedConcurrentExecution for function [{fs.reserved}].")
    if others + value > host.unreserved_total + (fs.reserved or 0) - rules.MIN_UNRESERVED:
        raise invalid_parameter("Requested Provisioned Concurrency exceeds the account's available "
                                "concurrency.")


__all__ = ["ConcurrencyAPI", "Target", "check_provisioned"]
