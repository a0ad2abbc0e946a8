"""Load a SAM or CloudFormation template into plain resource values.

Theory of operation
-------------------
``load_template(path, overrides)`` reads the file (``rapid.template.yaml_source``: YAML with
the short-form intrinsics, or JSON; every value remembers its line), takes the parameter
values (defaults, then ``overrides``, checked against ``AllowedValues``, patterns, lengths
and ranges), evaluates ``Conditions``, merges ``Globals`` into the SAM resources (maps
merged, lists appended, scalars replaced, as SAM does), drops resources whose condition is
false, and resolves every intrinsic in every resource's properties
(``rapid.template.intrinsics``). A reference to a resource resolves to what
CloudFormation would give locally: a function's name and ARN, a queue's URL and ARN, a
stream's name and ARN, a layer version's ARN, and so on (``refs.py``).

Some values exist only once the template is applied (the number a layer version gets when
published). ``Template.known`` holds them: the applier sets them and asks
``Template.properties(name)`` again, which resolves afresh.

Every problem is a ``TemplateError`` naming the file, the line and the resource.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rapid.template import refs
from rapid.template.intrinsics import IntrinsicError, Resolver
from rapid.template.yaml_source import Node, SourceError, parse

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
_GLOBAL_SECTIONS = {"Function": "AWS::Serverless::Function", "Api": "AWS::Serverless::Api",
                    "HttpApi": "AWS::Serverless::HttpApi", "LayerVersion": "AWS::Serverless::LayerVersion",
                    "SimpleTable": "AWS::Serverless::SimpleTable"}
_LOGICAL_ID = re.compile(r"^[A-Za-z0-9]+$")


class TemplateError(ValueError):
    """A template rapid cannot serve: ``file:line: resource: message``."""

    def __init__(self, message: str, *, file: str = "", line: int | None = None, resource: str | None = None):
        self.message, self.file, self.line, self.resource = message, file, line, resource
        where = file + (f":{line}" if line else "")
        parts = [p for p in (where, f"resource {resource}" if resource else "", message) if p]
        super().__init__(": ".join(parts))


@dataclass
class Resource:
    name: str  # the logical id
    type: str
    line: int
    raw: Node  # the resource's mapping, Globals merged in, intrinsics unresolved
    properties: dict[str, Any] = field(default_factory=dict)  # resolved
    depends_on: tuple[str, ...] = ()

    def line_of(self, key: str) -> int:
        props = self.raw.get("Properties")
        return props.line_of(key) if isinstance(props, Node) else self.line

    def __repr__(self) -> str:
        return f"<Resource {self.name} {self.type} line {self.line}>"


@dataclass
class Template:
    path: str
    root: str  # the template's folder: CodeUri and ContentUri are relative to it
    parameters: dict[str, Any]
    resources: dict[str, Resource]
    region: str
    account: str
    stack_name: str
    endpoint: str  # rapid's address, for queue URLs
    mappings: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    known: dict[tuple[str, str], Any] = field(default_factory=dict)  # (logical id, "Ref"/attribute) -> value
    transforms: tuple[str, ...] = ()
    _conditions: Mapping[str, Any] = field(default_factory=dict, repr=False)
    _condition_values: dict[str, bool] = field(default_factory=dict, repr=False)

    # -- what callers read --------------------------------------------------------------

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type in types]

    @property
    def alarms(self) -> dict[str, dict[str, Any]]:
        """``AWS::CloudWatch::Alarm`` resources, resolved (read by gradual deployments)."""
        return {r.name: r.properties for r in self.of_type("AWS::CloudWatch::Alarm")}

    def properties(self, name: str) -> dict[str, Any]:
        """A resource's properties resolved again, with what ``known`` holds now."""
        r = self.resources[name]
        r.properties = self._resolve(r.raw.get("Properties") or {}, r)
        return r.properties

    def error(self, message: str, resource: str | None = None, line: int | None = None) -> TemplateError:
        if line is None and resource in self.resources:
            line = self.resources[resource].line
        return TemplateError(message, file=self.path, line=line, resource=resource)

    # -- resolution -----------------------------------------------------------------------

    def resolver(self, resource: Resource | None) -> Resolver:
        pseudo = {"AWS::Region": self.region, "AWS::AccountId": self.account, "AWS::StackName": self.stack_name,
                  "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.stack_name}/"
                                  "00000000-0000-0000-0000-000000000000",
                  "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
                  "AWS::NotificationARNs": []}
        return Resolver(self.parameters, pseudo, self.mappings, self.condition,
                        lambda n, line: refs.ref(self, n, line), lambda n, a, line: refs.attribute(self, n, a, line))

    def _resolve(self, value: Any, resource: Resource | None) -> Any:
        try:
            return self.resolver(resource).value(value, resource.line if resource else None)
        except IntrinsicError as exc:
            raise self.error(str(exc), resource.name if resource else None, exc.line) from None

    def condition(self, name: str, line: int | None = None) -> bool:
        if name in self._condition_values:
            return self._condition_values[name]
        if name not in self._conditions:
            raise IntrinsicError(f"Template format error: Unresolved condition dependency {name}", line)
        self._condition_values[name] = False  # a cycle ends here instead of recursing
        value = self.resolver(None).value(self._conditions[name], line)
        if not isinstance(value, bool):
            raise IntrinsicError(f"condition {name} is not a condition function", line)
        self._condition_values[name] = value
        return value


def load_template(
    path: str,
    overrides: Mapping[str, str] | None = None,
    *,
    region: str = "us-east-1",
    account: str = "000000000000",
    stack_name: str | None = None,
    endpoint: str = "http://127.0.0.1:8080",
) -> Template:
    """The template at ``path`` with its parameters, conditions and Globals applied and its
    intrinsics resolved. Raises ``TemplateError``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise TemplateError(f"cannot read the template: {exc.strerror}", file=path) from None
    try:
        doc = parse(text)
    except SourceError as exc:
        raise TemplateError(str(exc), file=path, line=exc.line) from None
    if not isinstance(doc, dict):
        raise TemplateError("a template is a mapping with a Resources section", file=path)
    doc = doc if isinstance(doc, Node) else _as_node(doc)
    resources = doc.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateError("Template format error: At least one Resources member must be defined.",
                            file=path, line=doc.line_of("Resources"))
    transform = doc.get("Transform") or ()
    transforms = tuple([transform] if isinstance(transform, str) else transform)
    template = Template(
        path=path, root=os.path.dirname(os.path.abspath(path)), parameters={}, resources={},
        region=region, account=account,
        stack_name=stack_name or _stack_name(path), endpoint=endpoint.rstrip("/"),
        mappings=dict(doc.get("Mappings") or {}), transforms=transforms,
        _conditions=doc.get("Conditions") or {},
    )
    template.parameters = _parameters(template, doc.get("Parameters") or Node(), dict(overrides or {}),
                                      doc.line_of("Parameters"))
    globals_ = doc.get("Globals") or {}
    for name, body in resources.items():
        line = resources.line_of(name) if isinstance(resources, Node) else 0
        if not _LOGICAL_ID.match(name):
            raise template.error(f"Template format error: Resource name {name} is non alphanumeric.", name, line)
        if not isinstance(body, dict) or not isinstance(body.get("Type"), str):
            raise template.error("a resource needs a Type", name, line)
        body = body if isinstance(body, Node) else _as_node(body)
        props = body.get("Properties")
        if props is not None and not isinstance(props, dict):
            raise template.error("Properties must be a mapping", name, body.line_of("Properties"))
        section = next((s for s, t in _GLOBAL_SECTIONS.items() if t == body["Type"]), None)
        if section and isinstance(globals_.get(section), dict):
            merged = _merge(globals_[section], props or Node(line=line))
            body = Node({**body, "Properties": merged}, line=body.line, key_lines=body.key_lines)
        depends = body.get("DependsOn") or ()
        template.resources[name] = Resource(name, body["Type"], line, body,
                                            depends_on=tuple([depends] if isinstance(depends, str) else depends))
    for name, r in list(template.resources.items()):
        cond = r.raw.get("Condition")
        if cond is not None:
            try:
                keep = template.condition(str(cond), r.raw.line_of("Condition"))
            except IntrinsicError as exc:
                raise template.error(str(exc), name, exc.line) from None
            if not keep:
                del template.resources[name]
    for r in template.resources.values():
        for dep in r.depends_on:
            if dep not in resources:
                raise template.error(f"Template format error: Unresolved resource dependencies [{dep}] in the "
                                     "Resources block of the template", r.name, r.raw.line_of("DependsOn"))
    for name in template.resources:
        template.properties(name)
    template.outputs = template._resolve(doc.get("Outputs") or {}, None) if doc.get("Outputs") else {}
    return template


def _stack_name(path: str) -> str:
    folder = os.path.basename(os.path.dirname(os.path.abspath(path))) or "rapid"
    name = re.sub(r"[^A-Za-z0-9-]", "-", folder).strip("-") or "rapid"
    return name if name[0].isalpha() else "s-" + name


def _as_node(d: dict[str, Any]) -> Node:
    return Node({k: (_as_node(v) if isinstance(v, dict) and not isinstance(v, Node) else v) for k, v in d.items()})


def _merge(glob: Any, local: Any) -> Any:
    """SAM's Globals rule: maps merge (the resource's keys win), lists append, scalars replace."""
    if isinstance(glob, dict) and isinstance(local, dict):
        if len(local) == 1 and next(iter(local)).startswith(("Fn::", "Ref")):
            return local  # an intrinsic replaces whatever Globals says
        out = Node(glob, line=getattr(local, "line", 0),
                   key_lines={**getattr(glob, "key_lines", {}), **getattr(local, "key_lines", {})})
        for key, value in local.items():
            out[key] = _merge(glob[key], value) if key in glob else value
        return out
    if isinstance(glob, list) and isinstance(local, list):
        return type(local)(list(glob) + list(local))
    return local


def _parameters(template: Template, declared: Mapping[str, Any], overrides: dict[str, str],
                section_line: int) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise template.error(f"Parameters: [{', '.join(unknown)}] do not exist in the template", line=section_line)
    out: dict[str, Any] = {}
    missing = []
    for name, spec in declared.items():
        line = declared.line_of(name) if isinstance(declared, Node) else section_line
        if not isinstance(spec, dict):
            raise template.error(f"parameter {name} must be a mapping with a Type", line=line)
        kind = str(spec.get("Type", "String"))
        if name in overrides:
            value: Any = overrides[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            missing.append(name)
            continue
        out[name] = _parameter_value(template, name, kind, spec, value, line)
    if missing:
        raise template.error(f"Parameters: [{', '.join(missing)}] must have values", line=section_line)
    return out


def _parameter_value(template: Template, name: str, kind: str, spec: Mapping[str, Any], value: Any,
                     line: int) -> Any:
    def bad(why: str) -> TemplateError:
        return template.error(f"Parameter '{name}' {why}", line=line)

    listed = kind in ("CommaDelimitedList", "List<Number>") or kind.startswith("List<")
    if listed:
        items = value if isinstance(value, list) else [v.strip() for v in str(value).split(",")]
        values = [str(v) for v in items]
    else:
        values = [value if isinstance(value, str) else _scalar_text(value)]
    for v in values:
        if kind in ("Number", "List<Number>"):
            try:
                number = float(v)
            except ValueError:
                raise bad(f"must be a number not {v}") from None
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise bad(f"must be a number greater than or equal to {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise bad(f"must be a number less than or equal to {spec['MaxValue']}")
        allowed = spec.get("AllowedValues")
        if allowed is not None and v not in [_scalar_text(a) for a in allowed]:
            raise bad(f"must be one of AllowedValues")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(str(pattern), v):
            raise bad(f"must match pattern {pattern}")
        if "MinLength" in spec and len(v) < int(spec["MinLength"]):
            raise bad(f"must contain at least {spec['MinLength']} characters")
        if "MaxLength" in spec and len(v) > int(spec["MaxLength"]):
            raise bad(f"must contain at most {spec['MaxLength']} characters")
    return values if listed else values[0]


def _scalar_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
