"""Apply a loaded template through the control plane, and again whenever it changes.

Theory of operation
-------------------
``Applier.apply(template)`` first checks the whole template (``rapid.template.plan.check``),
so a bad one changes nothing. Then, in dependency order, it makes the control plane hold
what the template says, through the same API calls a deployer would make
(``rapid.template.control``):

1. queues (``AWS::SQS::Queue``, dead-letter queues first) and streams on the built-in
   SQS and Kinesis; layer versions, published only when their content changed, their
   ARNs then known to the template;
2. functions (``rapid.template.functions``): created, or updated where the code's
   CodeSha256 or the configuration differs; tagged with the stack and logical id as
   CloudFormation tags them, so a function the template no longer has is deleted;
   ``AutoPublishAlias`` publishes a version and moves the alias (or hands the move to
   ``host.deployments`` when a ``DeploymentPreference`` asks for a gradual one);
   concurrency, ``EventInvokeConfig``, ``FunctionUrlConfig``; ``SQS`` and ``Kinesis``
   events as event source mappings;
3. ``AWS::Lambda::Version``, ``::Alias``, ``::EventSourceMapping``, ``::Url``,
   ``::EventInvokeConfig``;
4. the ``Schedule`` events (``rapid.template.scheduler``) and the ``Api`` / ``HttpApi``
   routes (``rapid.template.http_api``) are replaced as a whole.

Applying twice with nothing changed calls no changing API. Unsupported resource and event
types are said once, at the first apply.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable
from typing import Any

from rapid.template.control import Control, ControlError, path_of
from rapid.template.functions import FunctionApplier, STACK_TAG
from rapid.template.loader import Template, TemplateError
from rapid.template.packaging import b64_sha256, code_bytes
from rapid.template.plan import FunctionPlan, check, function_plan, unsupported
from rapid.template.refs import FUNCTIONS, LAYERS, physical_name

_QUEUE_ATTRIBUTES = ("DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
                     "VisibilityTimeout", "FifoQueue", "ContentBasedDeduplication", "RedrivePolicy",
                     "KmsMasterKeyId", "SqsManagedSseEnabled", "DeduplicationScope", "FifoThroughputLimit")


class Applier:
    def __init__(self, control: Control, host: Any, say: Callable[[str], None], *,
                 scheduler: Any = None, api: Any = None) -> None:
        self.control = control
        self.host = host
        self.say = say
        self.scheduler = scheduler  # rapid.template.scheduler.Scheduler, or None
        self.api = api  # rapid.template.http_api.LocalApi, or None
        self.functions = FunctionApplier(control, host, say)
        self.applied = 0  # how many times a template was applied
        self._lock = asyncio.Lock()

    async def apply(self, t: Template) -> list[FunctionPlan]:
        async with self._lock:
            plans = check(t)
            if self.applied == 0:
                missing, no_effect = unsupported(t, plans)
                if missing:
                    self.say(f"template: not served (ignored): {', '.join(missing)}")
                if no_effect:
                    self.say(f"template: accepted, without effect locally: {', '.join(no_effect)}")
            await self._queues(t)
            await self._streams(t)
            await self._layers(t)
            plans = [function_plan(t, t.resources[p.resource]) for p in plans]  # layers known now
            changed = []
            for plan in plans:
                try:
                    if await self.functions.apply(t, plan):
                        changed.append(plan.name)
                except ControlError as exc:
                    raise t.error(f"{exc.code}: {exc.message}", plan.resource) from None
            await self.functions.remove_others(t, {p.name for p in plans})
            await self._lambda_resources(t)
            if self.scheduler is not None:
                self.scheduler.replace(self.functions.schedules(t, plans))
            if self.api is not None:
                self.api.replace(self.functions.routes(t, plans))
            self.applied += 1
            what = f"{len(plans)} function{'s' if len(plans) != 1 else ''}"
            self.say(f"template: {t.path} applied ({what}; changed: {', '.join(changed) or 'none'})")
            return plans

    # -- queues, streams, layers ----------------------------------------------------------

    async def _queues(self, t: Template) -> None:
        queues = t.of_type("AWS::SQS::Queue")
        queues.sort(key=lambda r: "RedrivePolicy" in r.properties)  # dead-letter queues first
        for r in queues:
            name = physical_name(t, r.name)
            attrs = {}
            for key in _QUEUE_ATTRIBUTES:
                if key in r.properties:
                    v = r.properties[key]
                    attrs[key] = json.dumps(v) if isinstance(v, dict) else (
                        str(v).lower() if isinstance(v, bool) else str(v))
            if attrs.get("FifoQueue") == "true" and not name.endswith(".fifo"):
                raise t.error("a FIFO queue's QueueName must end with .fifo", r.name, r.line_of("FifoQueue"))
            try:
                try:
                    url = (await self.control.target("AmazonSQS", "GetQueueUrl", {"QueueName": name}))["QueueUrl"]
                except ControlError:
                    await self.control.target("AmazonSQS", "CreateQueue", {"QueueName": name, "Attributes": attrs})
                    continue
                attrs.pop("FifoQueue", None)
                if attrs:
                    await self.control.target("AmazonSQS", "SetQueueAttributes", {"QueueUrl": url, "Attributes": attrs})
            except ControlError as exc:
                raise t.error(f"{exc.code}: {exc.message}", r.name) from None

    async def _streams(self, t: Template) -> None:
        for r in t.of_type("AWS::Kinesis::Stream"):
            name = physical_name(t, r.name)
            try:
                await self.control.target("Kinesis_20131202", "DescribeStreamSummary", {"StreamName": name})
                continue
            except ControlError:
                pass
            body: dict[str, Any] = {"StreamName": name}
            mode = (r.properties.get("StreamModeDetails") or {}).get("StreamMode")
            if mode == "ON_DEMAND":
                body["StreamModeDetails"] = {"StreamMode": "ON_DEMAND"}
            else:
                body["ShardCount"] = int(r.properties.get("ShardCount") or 1)
            try:
                await self.control.target("Kinesis_20131202", "CreateStream", body)
            except ControlError as exc:
                raise t.error(f"{exc.code}: {exc.message}", r.name) from None

    async def _layers(self, t: Template) -> None:
        loop = asyncio.get_running_loop()
        for r in t.of_type(*LAYERS):
            key = "ContentUri" if r.type == "AWS::Serverless::LayerVersion" else "Content"
            path = os.path.join(t.root, str(r.properties[key]))
            data = await loop.run_in_executor(None, code_bytes, path)
            name = physical_name(t, r.name)
            base = f"/2018-10-31/layers/{path_of(name)}/versions"
            listed = await self.control.call("GET", base, missing_ok=True) or {}
            versions = sorted(listed.get("LayerVersions", []), key=lambda v: v["Version"])
            arn = None
            if versions:
                last = await self.control.call("GET", f"{base}/{versions[-1]['Version']}")
                if last.get("Content", {}).get("CodeSha256") == b64_sha256(data):
                    arn = last["LayerVersionArn"]
            if arn is None:
                body: dict[str, Any] = {"Content": {"ZipFile": base64.b64encode(data).decode()}}
                for field in ("CompatibleRuntimes", "Description", "LicenseInfo", "CompatibleArchitectures"):
                    if r.properties.get(field) is not None:
                        body[field] = r.properties[field]
                try:
                    arn = (await self.control.call("POST", base, body))["LayerVersionArn"]
                except ControlError as exc:
                    raise t.error(f"{exc.code}: {exc.message}", r.name) from None
            t.known[(r.name, "Ref")] = arn
            t.known[(r.name, "Arn")] = arn
        for r in t.of_type(*FUNCTIONS):
            t.properties(r.name)  # their Layers resolve to the versions just published

    # -- the Lambda resources of plain CloudFormation ---------------------------------------

    async def _lambda_resources(self, t: Template) -> None:
        f = self.functions
        for kind, step in (("AWS::Lambda::Version", f.version_resource), ("AWS::Lambda::Alias", f.alias_resource),
                           ("AWS::Lambda::EventSourceMapping", f.mapping_resource),
                           ("AWS::Lambda::Url", f.url_resource),
                           ("AWS::Lambda::EventInvokeConfig", f.invoke_config_resource)):
            for r in t.of_type(kind):
                props = t.properties(r.name)
                try:
                    await step(t, r, props)
                except ControlError as exc:
                    raise t.error(f"{exc.code}: {exc.message}", r.name) from None

    def __repr__(self) -> str:
        return f"<Applier applied={self.applied} scheduler={self.scheduler!r} api={self.api!r}>"


__all__ = ["Applier", "STACK_TAG", "TemplateError"]
