"""A template's text as plain values that remember their line: YAML (with CloudFormation's
short-form intrinsics) and JSON.

Mappings become ``Node`` (a dict with ``line``, the line of the mapping, and
``key_lines``, the line of each key); lists become ``Items`` (a list with ``line``);
everything else is a plain value. ``!Ref X`` becomes ``{"Ref": "X"}``, ``!GetAtt A.B``
``{"Fn::GetAtt": ["A", "B"]}``, and every other ``!Fn`` ``{"Fn::Fn": ...}``, as the long
form would have been written. Dates stay strings (CloudFormation reads
``AWSTemplateFormatVersion: 2010-09-09`` as text), and so does ``yes``/``no`` (YAML 1.2's
booleans only). PyYAML parses; JSON is YAML's flow style, so one loader reads both, and a
JSON file PyYAML refuses (tabs) is read by ``json`` without lines.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml


class Node(dict):  # type: ignore[type-arg]
    """A mapping that knows where it and each of its keys start (1-based lines)."""

    line: int = 0
    key_lines: dict[str, int]

    def __init__(self, *args: Any, line: int = 0, key_lines: dict[str, int] | None = None) -> None:
        super().__init__(*args)
        self.line = line
        self.key_lines = key_lines or {}

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class Items(list):  # type: ignore[type-arg]
    line: int = 0

    def __init__(self, *args: Any, line: int = 0) -> None:
        super().__init__(*args)
        self.line = line


class SourceError(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


_SHORT = ("Ref", "Condition", "Base64", "Cidr", "FindInMap", "GetAtt", "GetAZs", "ImportValue", "Join",
          "Select", "Split", "Sub", "Transform", "And", "Equals", "If", "Not", "Or", "Length", "ToJsonString")


class _Loader(yaml.SafeLoader):
    pass


# YAML 1.2 core schema booleans (true/false only) and no timestamps, as CloudFormation reads YAML.
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Node:
    out = Node(line=node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)):
            raise SourceError("a mapping key must be a plain value", key_node.start_mark.line + 1)
        key = str(key)
        if key in out:
            raise SourceError(f"duplicate key {key!r}", key_node.start_mark.line + 1)
        out.key_lines[key] = key_node.start_mark.line + 1
        out[key] = loader.construct_object(value_node, deep=True)
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> Items:
    return Items((loader.construct_object(n, deep=True) for n in node.value), line=node.start_mark.line + 1)


def _short_form(name: str) -> Any:
    long_name = name if name in ("Ref", "Condition") else f"Fn::{name}"

    def construct(loader: _Loader, node: yaml.Node) -> Node:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "GetAtt" and isinstance(value, str):
                head, dot, tail = value.partition(".")
                value = Items([head, tail], line=line) if dot else value
        elif isinstance(node, yaml.SequenceNode):
            value = _sequence(loader, node)
        else:
            value = _mapping(loader, node)
        return Node({long_name: value}, line=line, key_lines={long_name: line})

    return construct


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)
for _name in _SHORT:
    _Loader.add_constructor(f"!{_name}", _short_form(_name))


def parse(text: str) -> Any:
    """The document in ``text``; raises ``SourceError`` with the line of a syntax error."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except SourceError:
        raise
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        problem = exc.problem or "unknown"
        if "could not determine a constructor for the tag" in problem:
            problem = f"unknown tag {exc.problem.split()[-1] if exc.problem else ''}".strip()
        raise SourceError(problem, mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        if text.lstrip().startswith("{"):
            try:
                return json.loads(text)
            except json.JSONDecodeError as jexc:
                raise SourceError(f"not valid JSON: {jexc.msg}", jexc.lineno) from None
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SourceError(f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
