"""One template function made real through the control plane, and the Lambda resources
of plain CloudFormation (``Version``, ``Alias``, ``EventSourceMapping``, ``Url``,
``EventInvokeConfig``).

``FunctionApplier.apply`` compares what the control plane holds with what the plan asks
for and calls only what differs: CreateFunction, or UpdateFunctionCode when the CodeSha256
changed and UpdateFunctionConfiguration with the fields that changed (a property removed
from the template goes back to Lambda's default, as CloudFormation does). Then reserved
concurrency, ``AutoPublishAlias`` (PublishVersion, which gives back the last version when
nothing changed, then the alias: created, moved, or handed to ``host.deployments.start``
for a ``DeploymentPreference``), provisioned concurrency on the alias,
``EventInvokeConfig``, ``FunctionUrlConfig``, and the ``SQS`` / ``Kinesis`` events as
event source mappings (a mapping the template no longer has is deleted).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

from rapid.template.control import Control, ControlError, path_of
from rapid.template.loader import Resource, Template
from rapid.template.packaging import b64_sha256, code_bytes, inline_zip
from rapid.template.plan import FunctionPlan
from rapid.template.refs import physical_name

STACK_TAG = "aws:cloudformation:stack-name"
LOGICAL_TAG = "aws:cloudformation:logical-id"
FN = "/2015-03-31/functions"
_SQS_KEYS = ("BatchSize", "Enabled", "FilterCriteria", "MaximumBatchingWindowInSeconds", "FunctionResponseTypes",
             "ScalingConfig")
_STREAM_KEYS = _SQS_KEYS[:-1] + ("StartingPosition", "StartingPositionTimestamp", "BisectBatchOnFunctionError",
                                 "MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "ParallelizationFactor",
                                 "TumblingWindowInSeconds", "DestinationConfig")
_FIXED = ("StartingPosition", "StartingPositionTimestamp")  # UpdateEventSourceMapping refuses these


def _desired(body: dict[str, Any]) -> dict[str, Any]:
    """Every setting the template decides, Lambda's default where it says nothing."""
    return {
        "Runtime": body.get("Runtime"), "Handler": body.get("Handler"), "Role": body.get("Role"),
        "MemorySize": body.get("MemorySize", 128), "Timeout": body.get("Timeout", 3),
        "Description": body.get("Description", ""),
        "Environment": {"Variables": (body.get("Environment") or {}).get("Variables", {})},
        "Layers": list(body.get("Layers", [])),
        "DeadLetterConfig": {"TargetArn": (body.get("DeadLetterConfig") or {}).get("TargetArn", "")},
        "TracingConfig": {"Mode": (body.get("TracingConfig") or {}).get("Mode", "PassThrough")},
        "EphemeralStorage": {"Size": (body.get("EphemeralStorage") or {}).get("Size", 512)},
    }


def _current(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "Runtime": cfg.get("Runtime"), "Handler": cfg.get("Handler"), "Role": cfg.get("Role"),
        "MemorySize": cfg.get("MemorySize"), "Timeout": cfg.get("Timeout"),
        "Description": cfg.get("Description", ""),
        "Environment": {"Variables": (cfg.get("Environment") or {}).get("Variables", {})},
        "Layers": [layer["Arn"] for layer in cfg.get("Layers", [])],
        "DeadLetterConfig": {"TargetArn": (cfg.get("DeadLetterConfig") or {}).get("TargetArn", "") or ""},
        "TracingConfig": {"Mode": (cfg.get("TracingConfig") or {}).get("Mode", "PassThrough")},
        "EphemeralStorage": {"Size": (cfg.get("EphemeralStorage") or {}).get("Size", 512)},
    }


class FunctionApplier:
    def __init__(self, control: Control, host: Any, say: Callable[[str], None]) -> None:
        self.control = control
        self.host = host
        self.say = say
        self._provisioned: dict[tuple[str, str], int] = {}

    # -- the function ---------------------------------------------------------------------

    async def apply(self, t: Template, plan: FunctionPlan) -> bool:
        """Make the function what ``plan`` says; True if its code or configuration changed."""
        c, name = self.control, plan.name
        if plan.inline is not None:
            data = inline_zip(plan.inline, plan.body.get("Runtime", ""), plan.body.get("Handler", ""))
        else:
            assert plan.code_path is not None
            data = await asyncio.get_running_loop().run_in_executor(None, code_bytes, plan.code_path)
        zipped = base64.b64encode(data).decode()
        current = await c.call("GET", f"{FN}/{path_of(name)}", missing_ok=True)
        changed = False
        tags = {STACK_TAG: t.stack_name, LOGICAL_TAG: plan.resource}
        if current is None:
            await c.call("POST", FN, {**plan.body, "Code": {"ZipFile": zipped}, "Tags": tags})
            changed = True
        else:
            if current.get("Tags", {}).get(STACK_TAG) not in (None, t.stack_name):
                raise ControlError(409, "ResourceConflictException",
                                   f"Function {name} belongs to stack {current['Tags'][STACK_TAG]}")
            cfg = current["Configuration"]
            if cfg.get("CodeSha256") != b64_sha256(data):
                await c.call("PUT", f"{FN}/{path_of(name)}/code", {"ZipFile": zipped})
                changed = True
            want, have = _desired(plan.body), _current(cfg)
            diff = {k: v for k, v in want.items() if v != have.get(k) and v is not None}
            if diff:
                await c.call("PUT", f"{FN}/{path_of(name)}/configuration", diff)
                changed = True
            if current.get("Tags", {}).get(STACK_TAG) is None:
                arn = f"arn:aws:lambda:{t.region}:{t.account}:function:{name}"
                await c.call("POST", f"/2017-03-31/tags/{path_of(arn)}", {"Tags": tags})
        reserved = (current or {}).get("Concurrency", {}).get("ReservedConcurrentExecutions")
        if plan.reserved != reserved:
            if plan.reserved is None:
                await c.call("DELETE", f"/2017-10-31/functions/{path_of(name)}/concurrency")
            else:
                await c.call("PUT", f"/2017-10-31/functions/{path_of(name)}/concurrency",
                             {"ReservedConcurrentExecutions": plan.reserved})
        if plan.alias:
            await self._auto_publish(plan)
        await self._provisioned_config(plan)
        if plan.event_invoke is not None:
            await self._invoke_config(name, plan.qualifier, plan.event_invoke)
        if plan.url is not None:
            await self._url(name, plan.qualifier, plan.url)
        await self._event_mappings(plan)
        return changed

    async def _auto_publish(self, plan: FunctionPlan) -> None:
        c, name, alias = self.control, plan.name, plan.alias
        assert alias is not None
        version = (await c.call("POST", f"{FN}/{path_of(name)}/versions", {}))["Version"]
        current = await c.call("GET", f"{FN}/{path_of(name)}/aliases/{path_of(alias)}", missing_ok=True)
        if current is None:
            await c.call("POST", f"{FN}/{path_of(name)}/aliases", {"Name": alias, "FunctionVersion": version})
            return
        old = current["FunctionVersion"]
        if old == version:
            return
        deployments = getattr(self.host, "deployments", None)
        if plan.deployment is not None and deployments is not None:
            await deployments.start(function_name=name, alias=alias, from_version=old, to_version=version,
                                    preference=plan.deployment)
            return
        if plan.deployment is not None:
            self.say(f"template: {plan.resource}: gradual deployments are not available here; alias {alias} "
                     f"moves from version {old} to {version} at once")
        await c.call("PUT", f"{FN}/{path_of(name)}/aliases/{path_of(alias)}",
                     {"FunctionVersion": version, "RoutingConfig": {"AdditionalVersionWeights": {}}})

    async def _provisioned_config(self, plan: FunctionPlan) -> None:
        if plan.alias is None:
            return
        key = (plan.name, plan.alias)
        path = f"/2019-09-30/functions/{path_of(plan.name)}/provisioned-concurrency"
        if plan.provisioned is not None and self._provisioned.get(key) != plan.provisioned:
            await self.control.call("PUT", path, {"ProvisionedConcurrentExecutions": plan.provisioned},
                                    {"Qualifier": plan.alias})
            self._provisioned[key] = plan.provisioned
        elif plan.provisioned is None and key in self._provisioned:
            await self.control.call("DELETE", path, None, {"Qualifier": plan.alias})
            del self._provisioned[key]

    async def _invoke_config(self, name: str, qualifier: str | None, p: dict[str, Any]) -> None:
        body: dict[str, Any] = {}
        for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
            if p.get(key) is not None:
                body[key] = int(p[key])
        dest = p.get("DestinationConfig") or {}
        if dest:
            body["DestinationConfig"] = {
                slot: {"Destination": (dest.get(slot) or {}).get("Destination")}
                for slot in ("OnSuccess", "OnFailure") if (dest.get(slot) or {}).get("Destination")}
        if body:
            await self.control.call("PUT", f"/2019-09-25/functions/{path_of(name)}/event-invoke-config", body,
                                    {"Qualifier": qualifier or "$LATEST"})

    async def _url(self, name: str, qualifier: str | None, p: dict[str, Any]) -> None:
        body = {k: p[k] for k in ("AuthType", "Cors", "InvokeMode") if p.get(k) is not None}
        body.setdefault("AuthType", "NONE")
        query = {"Qualifier": qualifier} if qualifier else None
        path = f"/2021-10-31/functions/{path_of(name)}/url"
        current = await self.control.call("GET", path, None, query, missing_ok=True)
        if current is None:
            await self.control.call("POST", path, body, query)
        elif any(current.get(k) != v for k, v in body.items()):
            await self.control.call("PUT", path, body, query)

    # -- event source mappings --------------------------------------------------------------

    async def _event_mappings(self, plan: FunctionPlan) -> None:
        wanted = []
        for ev in plan.events:
            if ev.type == "SQS":
                body = {k: ev.properties[k] for k in _SQS_KEYS if k in ev.properties}
                body["EventSourceArn"] = ev.properties["Queue"]
            elif ev.type == "Kinesis":
                body = {k: ev.properties[k] for k in _STREAM_KEYS if k in ev.properties}
                body["EventSourceArn"] = ev.properties["Stream"]
            else:
                continue
            wanted.append(body)
        if plan.sam or wanted:  # a plain function's mappings are AWS::Lambda::EventSourceMapping resources
            await self.mappings(plan.name, plan.qualifier, wanted, prune=plan.sam)

    async def mappings(self, name: str, qualifier: str | None, wanted: list[dict[str, Any]], *, prune: bool) -> None:
        c = self.control
        target = f"{name}:{qualifier}" if qualifier else name
        listed = await c.call("GET", "/2015-03-31/event-source-mappings", None, {"FunctionName": name})
        existing = {}
        for m in listed.get("EventSourceMappings", []):
            q = m["FunctionArn"].rsplit(":function:", 1)[-1].partition(":")[2] or None
            existing[(q, m["EventSourceArn"])] = m
        for body in wanted:
            found = existing.pop((qualifier, body["EventSourceArn"]), None)
            if found is None:
                await c.call("POST", "/2015-03-31/event-source-mappings", {**body, "FunctionName": target})
                continue
            update = {k: v for k, v in body.items() if k not in _FIXED and k != "EventSourceArn"}
            if "Enabled" in update:
                same = (found["State"] in ("Enabled", "Enabling", "Creating")) == bool(update["Enabled"])
                if same:
                    update.pop("Enabled")
            update = {k: v for k, v in update.items() if k == "Enabled" or found.get(k) != v}
            if update and found["State"] in ("Enabled", "Disabled"):
                await c.call("PUT", f"/2015-03-31/event-source-mappings/{found['UUID']}", update)
        if prune:
            for (q, _arn), m in existing.items():
                if q == qualifier or q is None or qualifier is None:
                    await c.call("DELETE", f"/2015-03-31/event-source-mappings/{m['UUID']}", missing_ok=True)

    # -- functions the template no longer has ---------------------------------------------

    async def remove_others(self, t: Template, names: set[str]) -> None:
        listed = await self.control.call("GET", FN)
        for cfg in listed.get("Functions", []):
            name = cfg["FunctionName"]
            if name in names:
                continue
            got = await self.control.call("GET", f"{FN}/{path_of(name)}", missing_ok=True)
            if got and got.get("Tags", {}).get(STACK_TAG) == t.stack_name:
                await self.control.call("DELETE", f"{FN}/{path_of(name)}", missing_ok=True)
                self.say(f"template: function {name} is no longer in the template: deleted")

    # -- what the scheduler and the local API serve -----------------------------------------

    def schedules(self, t: Template, plans: list[FunctionPlan]) -> list[Any]:
        from rapid.template.scheduler import Job

        jobs = []
        for plan in plans:
            for ev in plan.events:
                if ev.type not in ("Schedule", "ScheduleV2"):
                    continue
                p = ev.properties
                v2 = ev.type == "ScheduleV2"
                enabled = p.get("State", "ENABLED") != "DISABLED" if v2 or "State" in p else p.get("Enabled", True)
                if not enabled or enabled == "false":
                    continue
                jobs.append(Job(
                    rule=str(p.get("Name") or f"{t.stack_name}-{plan.resource}{ev.name}"),
                    function=plan.name, qualifier=plan.qualifier,
                    expression=str(p["ScheduleExpression"] if v2 else p["Schedule"]),
                    timezone=str(p.get("ScheduleExpressionTimezone") or "UTC"),
                    input=p.get("Input"), scheduler=v2))
        return jobs

    def routes(self, t: Template, plans: list[FunctionPlan]) -> list[Any]:
        from rapid.template.http_api import Route

        out = []
        for plan in plans:
            for ev in plan.events:
                if ev.type not in ("Api", "HttpApi"):
                    continue
                p = ev.properties
                api = p.get("RestApiId") if ev.type == "Api" else p.get("ApiId")
                api_name = str(api) if api else ("ServerlessRestApi" if ev.type == "Api" else "ServerlessHttpApi")
                api_props = t.resources[api].properties if isinstance(api, str) and api in t.resources else {}
                version = str(p.get("PayloadFormatVersion") or api_props.get("PayloadFormatVersion") or
                              ("1.0" if ev.type == "Api" else "2.0"))
                stage = str(api_props.get("StageName") or ("Prod" if ev.type == "Api" else "$default"))
                out.append(Route(method=str(p.get("Method") or "ANY").upper(), path=str(p.get("Path") or "$default"),
                                 function=plan.name, qualifier=plan.qualifier, payload=version, api=api_name,
                                 stage=stage, rest=ev.type == "Api"))
        return out

    # -- plain CloudFormation ---------------------------------------------------------------

    async def version_resource(self, t: Template, r: Resource, p: dict[str, Any]) -> None:
        name = _name(p.get("FunctionName"))
        got = await self.control.call("POST", f"{FN}/{path_of(name)}/versions",
                                      {"Description": p.get("Description", "")})
        t.known[(r.name, "Ref")] = got["FunctionArn"]
        t.known[(r.name, "Version")] = got["Version"]

    async def alias_resource(self, t: Template, r: Resource, p: dict[str, Any]) -> None:
        name, alias = _name(p.get("FunctionName")), str(p.get("Name"))
        body: dict[str, Any] = {"FunctionVersion": str(p.get("FunctionVersion")),
                                "Description": p.get("Description", "")}
        weights = (p.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or []
        body["RoutingConfig"] = {"AdditionalVersionWeights": {
            str(w["FunctionVersion"]): float(w["FunctionWeight"]) for w in weights}}
        current = await self.control.call("GET", f"{FN}/{path_of(name)}/aliases/{path_of(alias)}", missing_ok=True)
        if current is None:
            got = await self.control.call("POST", f"{FN}/{path_of(name)}/aliases", {"Name": alias, **body})
        elif (current["FunctionVersion"], current.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})) != (
                body["FunctionVersion"], body["RoutingConfig"]["AdditionalVersionWeights"]):
            got = await self.control.call("PUT", f"{FN}/{path_of(name)}/aliases/{path_of(alias)}", body)
        else:
            got = current
        t.known[(r.name, "Ref")] = got["AliasArn"]
        pc = (p.get("ProvisionedConcurrencyConfig") or {}).get("ProvisionedConcurrentExecutions")
        if pc is not None:
            await self.control.call("PUT", f"/2019-09-30/functions/{path_of(name)}/provisioned-concurrency",
                                    {"ProvisionedConcurrentExecutions": int(pc)}, {"Qualifier": alias})

    async def mapping_resource(self, t: Template, r: Resource, p: dict[str, Any]) -> None:
        raw = str(p.get("FunctionName"))
        name = _name(raw)
        tail = raw.rsplit(":function:", 1)[-1]
        qualifier = tail.partition(":")[2] or None
        body = {k: v for k, v in p.items() if k in _STREAM_KEYS or k == "EventSourceArn"}
        await self.mappings(name, qualifier, [body], prune=False)

    async def url_resource(self, t: Template, r: Resource, p: dict[str, Any]) -> None:
        name = _name(p.get("TargetFunctionArn"))
        await self._url(name, p.get("Qualifier"), p)
        got = await self.control.call("GET", f"/2021-10-31/functions/{path_of(name)}/url", None,
                                      {"Qualifier": p["Qualifier"]} if p.get("Qualifier") else None)
        t.known[(r.name, "FunctionUrl")] = got.get("FunctionUrl", "")

    async def invoke_config_resource(self, t: Template, r: Resource, p: dict[str, Any]) -> None:
        q = p.get("Qualifier")
        await self._invoke_config(_name(p.get("FunctionName")), None if q in (None, "$LATEST") else str(q), p)

    def __repr__(self) -> str:
        return f"<FunctionApplier provisioned={len(self._provisioned)}>"


def _name(raw: Any) -> str:
    """A function name from a name, a partial ARN or an ARN (qualifier dropped)."""
    text = str(raw or "")
    return text.rsplit(":function:", 1)[-1].split(":")[0]


__all__ = ["FunctionApplier", "STACK_TAG", "physical_name"]
