"""CloudWatch Logs filter patterns for unstructured text, pure.

A pattern is terms separated by spaces; an event matches when it holds every term
(case-sensitive, as CloudWatch matches). ``"a phrase"`` is one term with its spaces.
``?term`` terms are alternatives: with any of them, an event matches when it holds at
least one. ``-term`` excludes events holding it. An empty pattern, ``""`` and ``" "``
match everything. JSON and space-delimited patterns (``{ $.level = "ERROR" }``,
``[ip, user, ...]``) are read as plain text between their brackets.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    required: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    def matches(self, text: str) -> bool:
        if any(t in text for t in self.excluded):
            return False
        if not all(t in text for t in self.required):
            return False
        return not self.any_of or any(t in text for t in self.any_of)


def parse(pattern: str | None) -> Pattern:
    text = (pattern or "").strip()
    if text.startswith(("{", "[")) and text.endswith(("}", "]")):
        text = text[1:-1]
    try:
        terms = shlex.split(text, posix=True)
    except ValueError:  # an unbalanced quote: take the words as they are
        terms = text.split()
    required, any_of, excluded = [], [], []
    for term in terms:
        if term.startswith("?") and len(term) > 1:
            any_of.append(term[1:])
        elif term.startswith("-") and len(term) > 1:
            excluded.append(term[1:])
        elif term:
            required.append(term)
    return Pattern(tuple(required), tuple(any_of), tuple(excluded))
