"""From resolved resources to what the applier asks the control plane for.

``function_plan`` reads an ``AWS::Serverless::Function`` or ``AWS::Lambda::Function`` into
a ``FunctionPlan``: the CreateFunction / UpdateFunctionConfiguration body, where the code
is, and the SAM extras (``AutoPublishAlias``, ``DeploymentPreference``, concurrency,
``EventInvokeConfig``, ``FunctionUrlConfig``, ``Events``). ``check`` runs every test a bad
template should fail before anything is changed, each error naming the resource and the
line of the property at fault: a missing CodeUri folder, an unknown runtime, a handler a
runtime needs, sizes out of range, a schedule expression EventBridge would refuse, an event
without its source.

Event types served: ``SQS``, ``Kinesis`` (event source mappings on the built-in queues and
streams), ``Schedule`` / ``ScheduleV2`` (``rapid.template.scheduler``), ``Api`` /
``HttpApi`` (``rapid.template.http_api``). Any other is listed, with every resource type
rapid does not serve, by ``unsupported``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from rapid.core import rules, schedules
from rapid.core.errors import ServiceError
from rapid.template.loader import Resource, Template, TemplateError
from rapid.template.refs import FUNCTIONS, physical_name

EVENT_TYPES = ("SQS", "Kinesis", "Schedule", "ScheduleV2", "Api", "HttpApi")
SERVED = frozenset({
    "AWS::Serverless::Function", "AWS::Serverless::LayerVersion", "AWS::Serverless::Api",
    "AWS::Serverless::HttpApi", "AWS::Lambda::Function", "AWS::Lambda::Version", "AWS::Lambda::Alias",
    "AWS::Lambda::LayerVersion", "AWS::Lambda::EventSourceMapping", "AWS::Lambda::Url",
    "AWS::Lambda::EventInvokeConfig", "AWS::SQS::Queue", "AWS::Kinesis::Stream",
})
# Accepted and without effect here: permissions, roles and log groups mean nothing locally;
# alarms have an effect only when a DeploymentPreference names them (see ``unsupported``).
NO_EFFECT = frozenset({"AWS::Lambda::Permission", "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::Logs::LogGroup",
                       "AWS::CloudWatch::Alarm", "AWS::SQS::QueuePolicy"})


@dataclass
class EventPlan:
    name: str  # the event's key under Events
    type: str
    properties: dict[str, Any]
    line: int


@dataclass
class FunctionPlan:
    resource: str
    name: str
    body: dict[str, Any]  # CreateFunction's fields, except Code
    code_path: str | None = None  # a folder or a .zip
    inline: str | None = None
    alias: str | None = None
    deployment: dict[str, Any] | None = None
    reserved: int | None = None
    provisioned: int | None = None
    event_invoke: dict[str, Any] | None = None
    url: dict[str, Any] | None = None
    events: list[EventPlan] = field(default_factory=list)
    sam: bool = True  # AWS::Serverless::Function: its Events own the function's mappings

    @property
    def qualifier(self) -> str | None:
        """What events, URLs and async settings target: the alias when there is one."""
        return self.alias


def _int(t: Template, r: Resource, key: str, value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise t.error(f"{key} must be a number, not {value!r}", r.name, r.line_of(key)) from None


def function_plan(t: Template, r: Resource) -> FunctionPlan:
    p = r.properties
    sam = r.type == "AWS::Serverless::Function"
    name = physical_name(t, r.name)
    if p.get("PackageType") == "Image" or p.get("ImageUri"):
        raise t.error("container images (PackageType Image) are not supported: give CodeUri a folder or a .zip",
                      r.name, r.line_of("PackageType" if "PackageType" in p else "ImageUri"))
    body: dict[str, Any] = {"FunctionName": name, "Role": p.get("Role") or
                            f"arn:aws:iam::{t.account}:role/{t.stack_name}-{r.name}Role"}
    if not isinstance(body["Role"], str) or not body["Role"].startswith("arn:"):
        body["Role"] = f"arn:aws:iam::{t.account}:role/{t.stack_name}-{r.name}Role"
    for key in ("Runtime", "Handler", "Description"):
        if p.get(key) is not None:
            body[key] = str(p[key])
    for key in ("MemorySize", "Timeout"):
        if p.get(key) is not None:
            body[key] = _int(t, r, key, p[key])
    env = (p.get("Environment") or {}).get("Variables")
    if env:
        body["Environment"] = {"Variables": {str(k): _text(v) for k, v in env.items()}}
    if p.get("Layers"):
        body["Layers"] = [str(a) for a in p["Layers"]]
    if p.get("Architectures"):
        body["Architectures"] = list(p["Architectures"])
    if isinstance(p.get("EphemeralStorage"), dict) and "Size" in p["EphemeralStorage"]:
        body["EphemeralStorage"] = {"Size": _int(t, r, "EphemeralStorage", p["EphemeralStorage"]["Size"])}
    tracing = p.get("Tracing") if sam else (p.get("TracingConfig") or {}).get("Mode")
    if tracing:
        body["TracingConfig"] = {"Mode": str(tracing)}
    if isinstance(p.get("LoggingConfig"), dict):
        body["LoggingConfig"] = dict(p["LoggingConfig"])
    dlq = p.get("DeadLetterQueue") if sam else p.get("DeadLetterConfig")
    if isinstance(dlq, dict) and dlq.get("TargetArn"):
        body["DeadLetterConfig"] = {"TargetArn": str(dlq["TargetArn"])}
    plan = FunctionPlan(r.name, name, body, sam=sam)
    if sam:
        code = p.get("CodeUri")
        if isinstance(code, dict):
            raise t.error("CodeUri in S3 (Bucket/Key) is not supported: give a folder or a .zip", r.name,
                          r.line_of("CodeUri"))
        if p.get("InlineCode") is not None:
            plan.inline = str(p["InlineCode"])
        else:
            plan.code_path = os.path.normpath(os.path.join(t.root, str(code if code is not None else ".")))
        plan.alias = str(p["AutoPublishAlias"]) if p.get("AutoPublishAlias") else None
        if isinstance(p.get("DeploymentPreference"), dict):
            plan.deployment = dict(p["DeploymentPreference"])
        plan.reserved = _int(t, r, "ReservedConcurrentExecutions", p.get("ReservedConcurrentExecutions"))
        pc = p.get("ProvisionedConcurrencyConfig")
        if isinstance(pc, dict):
            plan.provisioned = _int(t, r, "ProvisionedConcurrencyConfig", pc.get("ProvisionedConcurrentExecutions"))
        plan.event_invoke = p.get("EventInvokeConfig") if isinstance(p.get("EventInvokeConfig"), dict) else None
        plan.url = p.get("FunctionUrlConfig") if isinstance(p.get("FunctionUrlConfig"), dict) else None
        events = p.get("Events") or {}
        lines = getattr((r.raw.get("Properties") or {}).get("Events"), "key_lines", {})
        for key, ev in events.items():
            if isinstance(ev, dict):
                plan.events.append(EventPlan(key, str(ev.get("Type")), dict(ev.get("Properties") or {}),
                                             lines.get(key, r.line_of("Events"))))
    else:
        code = p.get("Code") or {}
        if isinstance(code, str):  # a local path, as `aws cloudformation package` takes it
            plan.code_path = os.path.normpath(os.path.join(t.root, code))
        elif not isinstance(code, dict):
            raise t.error("Code must be a mapping or a local path", r.name, r.line_of("Code"))
        elif code.get("ZipFile") is not None:
            plan.inline = str(code["ZipFile"])
        elif code.get("S3Bucket") or code.get("ImageUri"):
            raise t.error("Code in S3 or an image is not supported: give Code a local folder or .zip (rapid reads "
                          "Code as a path when it is a string, as `aws cloudformation package` takes it)",
                          r.name, r.line_of("Code"))
        else:
            raise t.error("Code needs ZipFile, or give a path: Code: ./src", r.name, r.line_of("Code"))
        plan.reserved = _int(t, r, "ReservedConcurrentExecutions", p.get("ReservedConcurrentExecutions"))
    return plan


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def check(t: Template) -> list[FunctionPlan]:
    """Every function's plan, or the first ``TemplateError`` a bad template has."""
    plans = []
    for r in t.of_type(*FUNCTIONS):
        plan = function_plan(t, r)
        _check_function(t, r, plan)
        plans.append(plan)
    _point_hooks_here(t, plans)
    for r in t.of_type("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
        key = "ContentUri" if r.type == "AWS::Serverless::LayerVersion" else "Content"
        content = r.properties.get(key)
        if not isinstance(content, str):
            raise t.error(f"{key} must be a local folder or .zip (S3 is not supported)", r.name, r.line_of(key))
        path = os.path.join(t.root, content)
        if not os.path.exists(path):
            raise t.error(f"{key} {content!r}: no such folder or .zip ({path})", r.name, r.line_of(key))
    return plans


def _point_hooks_here(t: Template, plans: list[FunctionPlan]) -> None:
    """A DeploymentPreference's hook functions report to CodeDeploy through boto3, as SAM's
    examples do: give them ``AWS_ENDPOINT_URL_CODEDEPLOY`` (boto3 reads it) naming rapid,
    unless the template sets it, so a hook written for AWS reaches rapid's CodeDeploy."""
    hooks = {str(h) for plan in plans for h in ((plan.deployment or {}).get("Hooks") or {}).values()}
    for plan in plans:
        if plan.name in hooks or plan.resource in hooks:
            env = plan.body.setdefault("Environment", {"Variables": {}}).setdefault("Variables", {})
            env.setdefault("AWS_ENDPOINT_URL_CODEDEPLOY", t.endpoint)


def _check_function(t: Template, r: Resource, plan: FunctionPlan) -> None:
    body = plan.body
    try:
        rules.check_runtime(body.get("Runtime"))
    except ServiceError as exc:
        raise t.error(exc.message, r.name, r.line_of("Runtime")) from None
    try:
        rules.check_handler(body["Runtime"], body.get("Handler"))
    except ServiceError as exc:
        raise t.error(exc.message, r.name, r.line_of("Handler")) from None
    for key, low, high in (("MemorySize", rules.MIN_MEMORY, rules.MAX_MEMORY),
                           ("Timeout", rules.MIN_TIMEOUT, rules.MAX_TIMEOUT)):
        value = body.get(key)
        if value is not None and not low <= value <= high:
            raise t.error(f"{key} {value} is outside {low}-{high}", r.name, r.line_of(key))
    if plan.code_path is not None:
        key = "CodeUri" if r.type == "AWS::Serverless::Function" else "Code"
        if not os.path.exists(plan.code_path):
            raise t.error(f"{key} {r.properties.get(key, '.')!r}: no such folder or .zip "
                          f"({plan.code_path})", r.name, r.line_of(key))
        if os.path.isfile(plan.code_path) and not plan.code_path.endswith(".zip"):
            raise t.error(f"CodeUri {plan.code_path} is neither a folder nor a .zip", r.name, r.line_of(key))
    if plan.deployment is not None and plan.alias is None:
        raise t.error("DeploymentPreference needs AutoPublishAlias", r.name, r.line_of("DeploymentPreference"))
    if plan.provisioned is not None and plan.alias is None:
        raise t.error("ProvisionedConcurrencyConfig needs AutoPublishAlias", r.name,
                      r.line_of("ProvisionedConcurrencyConfig"))
    for ev in plan.events:
        p = ev.properties
        if ev.type == "SQS" and not p.get("Queue"):
            raise t.error(f"event {ev.name}: an SQS event needs Queue", r.name, ev.line)
        if ev.type == "Kinesis" and not p.get("Stream"):
            raise t.error(f"event {ev.name}: a Kinesis event needs Stream", r.name, ev.line)
        if ev.type in ("Schedule", "ScheduleV2"):
            expr = p.get("Schedule") if ev.type == "Schedule" else p.get("ScheduleExpression")
            try:
                schedules.parse(str(expr or ""), str(p.get("ScheduleExpressionTimezone") or "UTC"))
            except ValueError as exc:
                raise t.error(f"event {ev.name}: {exc}", r.name, ev.line) from None
        if ev.type in ("Api", "HttpApi"):
            path, method = p.get("Path"), p.get("Method")
            if ev.type == "Api" and (not path or not method):
                raise t.error(f"event {ev.name}: an Api event needs Path and Method", r.name, ev.line)
            if path is not None and not str(path).startswith("/"):
                raise t.error(f"event {ev.name}: Path {path!r} must start with /", r.name, ev.line)


def unsupported(t: Template, plans: list[FunctionPlan]) -> tuple[list[str], list[str]]:
    """(not served, served without effect): one entry per resource or event, to say once."""
    missing, no_effect = [], []
    watched = {str(a) for plan in plans for a in (plan.deployment or {}).get("Alarms") or () if isinstance(a, str)}
    for r in t.resources.values():
        if r.type == "AWS::CloudWatch::Alarm" and watched & {r.name, str(r.properties.get("AlarmName", ""))}:
            continue  # a gradual deployment's alarm: evaluated by rapid from its own invocations
        if r.type in NO_EFFECT:
            no_effect.append(f"{r.name} ({r.type})")
        elif r.type not in SERVED:
            missing.append(f"{r.name} ({r.type}, line {r.line})")
    for plan in plans:
        for ev in plan.events:
            if ev.type not in EVENT_TYPES:
                missing.append(f"{plan.resource} event {ev.name} (type {ev.type}, line {ev.line})")
    return missing, no_effect


def template_error(t: Template, resource: str, message: str, key: str | None = None) -> TemplateError:
    r = t.resources.get(resource)
    return t.error(message, resource, r.line_of(key) if r is not None and key else None)
