"""One router for every API on a port: routes by method and path template.

A template is a path with ``{name}`` segments (``/2015-03-31/functions/{name}/aliases``);
a segment matches up to the next ``/`` and reaches the handler percent-decoded. Routes
are tried in the order added, so the hottest (Invoke) goes first; one compiled regular
expression per route. ``*`` as the method takes any method (the handler decides).
A path that no route matches is ``None``; a path that matches with another method gives
the methods it has, so the caller can answer as AWS does.

The answers for the last few thousand (method, path) pairs are kept: an invoker calls the
same few paths over and over, and a kept answer costs one dict lookup instead of a regular
expression per route tried and the decoding of its parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

_SEGMENT = re.compile(r"\{(\w+)\}")
_KEPT = 4096  # answers kept, (method, path) pairs; past it, the memo starts again


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    handler: Callable[..., Any]
    management: bool  # a control-plane operation (guarded on a non-loopback address)
    pattern: re.Pattern[str]


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []
        self._memo: dict[tuple[str, str], tuple[Route, dict[str, str]] | list[str] | None] = {}

    def add(self, method: str, template: str, handler: Callable[..., Any], *, management: bool = True) -> None:
        regex = "^" + _SEGMENT.sub(lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(template).replace(r"\{", "{").replace(r"\}", "}")) + "/?$"
        self.routes.append(Route(method, template, handler, management, re.compile(regex)))
        self._memo.clear()

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | list[str] | None:
        """The route and its decoded parameters; else the methods the path has; else None."""
        key = (method, path)
        found = self._memo.get(key, self)
        if found is self:
            found = self._match(method, path)
            memo = self._memo
            if len(memo) >= _KEPT:
                memo.clear()
            memo[key] = found
        if found.__class__ is tuple:  # a fresh parameters dict each time: handlers may keep it
            return found[0], dict(found[1])  # type: ignore[index]
        return found[:] if found else found  # type: ignore[index,return-value]

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | list[str] | None:
        methods: list[str] = []
        for route in self.routes:
            m = route.pattern.match(path)
            if m is None:
                continue
            if route.method == method or route.method == "*":
                return route, {k: unquote(v) for k, v in m.groupdict().items()}
            methods.append(route.method)
        return methods or None

    def __repr__(self) -> str:
        return f"<Router {len(self.routes)} routes>"
