"""Which version an invocation runs: qualifier resolution and alias weighted routing.

Pure: the caller passes the function's published versions, its aliases and, for weighted
aliases, a number drawn uniformly from [0, 1) (``random.random()`` in the daemon, a fixed
value in tests). Nothing here reads a clock, a file or a random source.

A qualifier is one of:

- none or ``$LATEST``: the mutable version;
- digits: a published version (it must exist);
- anything else: an alias name (it must exist), which names a primary version and at most
  one additional version with a weight in [0, 1). A draw below the weight picks the
  additional version, any other the primary: over many invocations the additional version
  gets ``weight`` of them.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

LATEST = "$LATEST"


@dataclass(frozen=True, slots=True)
class Route:
    """An alias's target as routing needs it."""

    version: str
    additional: tuple[tuple[str, float], ...] = ()


class UnknownQualifier(Exception):
    """The qualifier names no version or alias of the function."""


def is_version(qualifier: str) -> bool:
    return qualifier == LATEST or qualifier.isdigit()


def choose(route: Route, draw: float) -> str:
    """The version one invocation through ``route`` runs, for a draw in [0, 1)."""
    acc = 0.0
    for version, weight in route.additional:
        acc += weight
        if draw < acc:
            return version
    return route.version


def resolve(
    qualifier: str | None, versions: Container[str], aliases: Mapping[str, Route], draw: float
) -> tuple[str, str | None]:
    """``(version, alias)`` for an invocation with ``qualifier``; ``alias`` is None when
    the qualifier is a version. Raises ``UnknownQualifier``."""
    if qualifier is None or qualifier == LATEST:
        return LATEST, None
    if qualifier.isdigit():
        if qualifier not in versions:
            raise UnknownQualifier(qualifier)
        return qualifier, None
    route = aliases.get(qualifier)
    if route is None:
        raise UnknownQualifier(qualifier)
    return choose(route, draw), qualifier
