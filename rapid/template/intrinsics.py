"""CloudFormation's intrinsic functions, evaluated over plain values.

``Resolver.value(v)`` walks a value and replaces every ``{"Ref": ...}`` and ``{"Fn::X": ...}``
with what it stands for: parameters and pseudo parameters (``AWS::Region``,
``AWS::AccountId``, ``AWS::StackName``, ``AWS::Partition``, ``AWS::URLSuffix``,
``AWS::NoValue``), resources (through the ``ref`` and ``attribute`` callables the template
passes in), ``Fn::Sub`` (both forms, ``${!Literal}``), ``Fn::Join``, ``Fn::Select``,
``Fn::Split``, ``Fn::FindInMap``, ``Fn::If``, the condition functions (``Fn::Equals``,
``Fn::And``, ``Fn::Or``, ``Fn::Not``, ``Condition``), ``Fn::Base64``, ``Fn::GetAZs``,
``Fn::Length`` and ``Fn::ToJsonString``. ``AWS::NoValue`` removes the key or item it is in.

A malformed call, an unknown name or an unsupported function raises ``IntrinsicError`` with
the line of the call (values from ``rapid.template.yaml_source`` remember their lines).
Pure: no I/O.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from rapid.template.yaml_source import Items, Node


class IntrinsicError(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()
_SUB = re.compile(r"\$\{([^}]*)\}")


def _line(v: Any, default: int | None) -> int | None:
    return getattr(v, "line", None) or default


class Resolver:
    def __init__(
        self,
        parameters: Mapping[str, Any],
        pseudo: Mapping[str, Any],
        mappings: Mapping[str, Any],
        conditions: Callable[[str, int | None], bool],
        ref: Callable[[str, int | None], Any],
        attribute: Callable[[str, str, int | None], Any],
    ) -> None:
        self.parameters = parameters
        self.pseudo = pseudo
        self.mappings = mappings
        self.condition = conditions
        self.ref = ref
        self.attribute = attribute

    def value(self, v: Any, line: int | None = None) -> Any:
        if isinstance(v, dict):
            here = _line(v, line)
            if len(v) == 1:
                (key, arg), = v.items()
                if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
                    where = v.line_of(key) if isinstance(v, Node) else here
                    return self._call(key, arg, where)
            out = {}
            for k, item in v.items():
                at = v.line_of(k) if isinstance(v, Node) else here
                resolved = self.value(item, at)
                if resolved is not NO_VALUE:
                    out[k] = resolved
            return out
        if isinstance(v, list):
            here = _line(v, line)
            resolved_items = [self.value(item, here) for item in v]
            return [r for r in resolved_items if r is not NO_VALUE]
        return v

    # -- the functions --------------------------------------------------------------------

    def _call(self, key: str, arg: Any, line: int | None) -> Any:
        fn = _FUNCTIONS.get(key)
        if fn is None:
            raise IntrinsicError(f"{key} is not supported by rapid", line)
        return fn(self, arg, line)

    def _ref(self, arg: Any, line: int | None) -> Any:
        if not isinstance(arg, str):
            arg = self.value(arg, line)
            if not isinstance(arg, str):
                raise IntrinsicError("Ref takes the name of a parameter or resource", line)
        if arg == "AWS::NoValue":
            return NO_VALUE
        if arg in self.pseudo:
            return self.pseudo[arg]
        if arg in self.parameters:
            return self.parameters[arg]
        return self.ref(arg, line)

    def _getatt(self, arg: Any, line: int | None) -> Any:
        if isinstance(arg, str):
            name, dot, attr = arg.partition(".")
            if not dot:
                raise IntrinsicError(f"Fn::GetAtt {arg!r} needs a resource and an attribute", line)
        elif isinstance(arg, list) and len(arg) == 2:
            name, attr = arg[0], self.value(arg[1], line)
        else:
            raise IntrinsicError("Fn::GetAtt takes [resource, attribute] or 'resource.attribute'", line)
        if not isinstance(name, str) or not isinstance(attr, str):
            raise IntrinsicError("Fn::GetAtt takes a resource name and an attribute name", line)
        return self.attribute(name, attr, line)

    def _sub(self, arg: Any, line: int | None) -> str:
        variables: dict[str, Any] = {}
        if isinstance(arg, list):
            if len(arg) != 2 or not isinstance(arg[1], dict):
                raise IntrinsicError("Fn::Sub takes a string or [string, {variables}]", line)
            text = self.value(arg[0], line)
            variables = {k: self.value(v, line) for k, v in arg[1].items()}
        else:
            text = arg
        if not isinstance(text, str):
            raise IntrinsicError("Fn::Sub takes a string or [string, {variables}]", line)

        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            name = name.strip()
            if name in variables:
                found = variables[name]
            elif "." in name and name.split(".", 1)[0] not in self.parameters:
                res, attr = name.split(".", 1)
                found = self.attribute(res, attr, line)
            else:
                found = self._ref(name, line)
            if isinstance(found, list):
                raise IntrinsicError(f"Fn::Sub: ${{{name}}} is a list, not a string", line)
            return _text(found)

        return _SUB.sub(one, text)

    def _join(self, arg: Any, line: int | None) -> str:
        if not isinstance(arg, list) or len(arg) != 2:
            raise IntrinsicError("Fn::Join takes [delimiter, [values]]", line)
        sep, items = self.value(arg[0], line), self.value(arg[1], line)
        if not isinstance(sep, str) or not isinstance(items, list):
            raise IntrinsicError("Fn::Join takes [delimiter, [values]]", line)
        return sep.join(_text(i) for i in items)

    def _select(self, arg: Any, line: int | None) -> Any:
        if not isinstance(arg, list) or len(arg) != 2:
            raise IntrinsicError("Fn::Select takes [index, [values]]", line)
        index, items = self.value(arg[0], line), self.value(arg[1], line)
        try:
            index = int(index)
        except (TypeError, ValueError):
            raise IntrinsicError(f"Fn::Select: the index {index!r} is not a number", line) from None
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise IntrinsicError(f"Fn::Select: index {index} is out of bounds", line)
        return items[index]

    def _split(self, arg: Any, line: int | None) -> list[str]:
        if not isinstance(arg, list) or len(arg) != 2:
            raise IntrinsicError("Fn::Split takes [delimiter, string]", line)
        sep, text = self.value(arg[0], line), self.value(arg[1], line)
        if not isinstance(sep, str) or not sep or not isinstance(text, str):
            raise IntrinsicError("Fn::Split takes [delimiter, string]", line)
        return text.split(sep)

    def _find_in_map(self, arg: Any, line: int | None) -> Any:
        if not isinstance(arg, list) or len(arg) not in (3, 4):
            raise IntrinsicError("Fn::FindInMap takes [map, top-level key, second-level key]", line)
        keys = [self.value(a, line) for a in arg[:3]]
        found: Any = self.mappings
        for key in keys:
            if not isinstance(found, dict) or str(key) not in found:
                if len(arg) == 4:  # the language extension's DefaultValue
                    return self.value(arg[3], line).get("DefaultValue") if isinstance(arg[3], dict) else None
                raise IntrinsicError(f"Fn::FindInMap: no {key!r} in {'.'.join(map(str, keys))}", line)
            found = found[str(key)]
        return self.value(found, line)

    def _if(self, arg: Any, line: int | None) -> Any:
        if not isinstance(arg, list) or len(arg) != 3 or not isinstance(arg[0], str):
            raise IntrinsicError("Fn::If takes [condition, value if true, value if false]", line)
        return self.value(arg[1] if self.condition(arg[0], line) else arg[2], line)

    def _equals(self, arg: Any, line: int | None) -> bool:
        if not isinstance(arg, list) or len(arg) != 2:
            raise IntrinsicError("Fn::Equals takes [value, value]", line)
        a, b = (self.value(x, line) for x in arg)
        return _text(a) == _text(b) if not isinstance(a, list) else a == b

    def _bools(self, name: str, arg: Any, line: int | None) -> list[bool]:
        if not isinstance(arg, list) or not 1 <= len(arg) <= 10:
            raise IntrinsicError(f"{name} takes a list of 1 to 10 conditions", line)
        out = []
        for item in arg:
            v = self.value(item, line)
            if not isinstance(v, bool):
                raise IntrinsicError(f"{name}: {item!r} is not a condition", line)
            out.append(v)
        return out

    def _and(self, arg: Any, line: int | None) -> bool:
        return all(self._bools("Fn::And", arg, line))

    def _or(self, arg: Any, line: int | None) -> bool:
        return any(self._bools("Fn::Or", arg, line))

    def _not(self, arg: Any, line: int | None) -> bool:
        values = self._bools("Fn::Not", arg, line)
        if len(values) != 1:
            raise IntrinsicError("Fn::Not takes a list of one condition", line)
        return not values[0]

    def _condition(self, arg: Any, line: int | None) -> bool:
        if not isinstance(arg, str):
            raise IntrinsicError("Condition takes a condition's name", line)
        return self.condition(arg, line)

    def _base64(self, arg: Any, line: int | None) -> str:
        return base64.b64encode(_text(self.value(arg, line)).encode()).decode()

    def _azs(self, arg: Any, line: int | None) -> list[str]:
        region = self.value(arg, line) or self.pseudo["AWS::Region"]
        return [f"{region}{z}" for z in "abc"]

    def _length(self, arg: Any, line: int | None) -> int:
        v = self.value(arg, line)
        if not isinstance(v, list):
            raise IntrinsicError("Fn::Length takes a list", line)
        return len(v)

    def _json(self, arg: Any, line: int | None) -> str:
        return json.dumps(self.value(arg, line), separators=(",", ":"))


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        raise IntrinsicError(f"expected a string, got {type(v).__name__} {v!r}", None)
    return str(v)


_FUNCTIONS: dict[str, Callable[[Resolver, Any, int | None], Any]] = {
    "Ref": Resolver._ref,
    "Condition": Resolver._condition,
    "Fn::GetAtt": Resolver._getatt,
    "Fn::Sub": Resolver._sub,
    "Fn::Join": Resolver._join,
    "Fn::Select": Resolver._select,
    "Fn::Split": Resolver._split,
    "Fn::FindInMap": Resolver._find_in_map,
    "Fn::If": Resolver._if,
    "Fn::Equals": Resolver._equals,
    "Fn::And": Resolver._and,
    "Fn::Or": Resolver._or,
    "Fn::Not": Resolver._not,
    "Fn::Base64": Resolver._base64,
    "Fn::GetAZs": Resolver._azs,
    "Fn::Length": Resolver._length,
    "Fn::ToJsonString": Resolver._json,
}

__all__ = ["IntrinsicError", "Items", "NO_VALUE", "Node", "Resolver"]
