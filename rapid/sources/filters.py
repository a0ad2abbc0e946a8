"""FilterCriteria: Lambda's event-filtering pattern syntax, checked and matched. Pure.

A mapping has up to 5 filters, each a ``Pattern``: a JSON object whose keys follow the
record's fields and whose leaves are lists of rules; a record passes if any filter matches
it (filters are ORed), and a pattern matches if every key matches (keys are ANDed).

=========================================  =================================================
rule (an element of a leaf list)            matches a field whose value...
=========================================  =================================================
``"text"``, ``12``, ``true``, ``null``      equals it (numbers compared as numbers)
``{"prefix": "a"}``                         is a string starting with ``a``
``{"suffix": "z"}``                         is a string ending with ``z``
``{"equals-ignore-case": "Ab"}``            is a string equal to ``Ab`` ignoring case
``{"anything-but": v | [v...] | {...}}``    is present and none of those (or not prefixed...)
``{"numeric": [">", 0, "<=", 5]}``          is a number in the range (``=`` for one value)
``{"exists": true}`` / ``false``            is present / is absent
=========================================  =================================================

``{"$or": [pattern, pattern, ...]}`` inside a pattern matches if any of its patterns does.
A field holding an array matches if any element does. Data: for SQS the ``body`` is read as
JSON when the pattern's ``body`` is an object (a JSON pattern never matches a plain-string
body, and a plain-string pattern never matches a JSON body); for Kinesis the record's
``data`` is base64-decoded and read as JSON, and a pattern on ``data`` never matches data
that is not JSON. A malformed pattern is refused with ``FilterError`` in AWS's words.
"""

from __future__ import annotations

import json
from typing import Any

MAX_FILTERS = 5
MAX_PATTERN = 4096
_MISSING = object()
_NUMERIC_OPS = ("=", "<", "<=", ">", ">=")
INVALID = "Invalid filter pattern definition."


class FilterError(ValueError):
    """A pattern Lambda refuses (``InvalidParameterValueException``); ``reason`` says why,
    for logs (AWS's message itself is always ``INVALID``)."""

    def __init__(self, reason: str, message: str = INVALID) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


def parse_criteria(criteria: Any) -> list[dict[str, Any]]:
    """``FilterCriteria`` (``{"Filters": [{"Pattern": "..."}]}``) to the checked patterns."""
    if criteria is None:
        return []
    if not isinstance(criteria, dict) or not isinstance(criteria.get("Filters", []), list):
        raise FilterError("FilterCriteria must be an object with a Filters list")
    filters = criteria.get("Filters", [])
    if len(filters) > MAX_FILTERS:
        raise FilterError("too many filters",
                          f"The number of filters in FilterCriteria ({len(filters)}) exceeds the limit of {MAX_FILTERS}.")
    return [parse_pattern(f.get("Pattern") if isinstance(f, dict) else None) for f in filters]


def parse_pattern(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text.strip():
        raise FilterError("a filter needs a Pattern")
    if len(text) > MAX_PATTERN:
        raise FilterError(f"the pattern is over {MAX_PATTERN} characters")
    try:
        pattern = json.loads(text)
    except ValueError as exc:
        raise FilterError(f"the pattern is not JSON: {exc}") from None
    if not isinstance(pattern, dict) or not pattern:
        raise FilterError("a pattern is a non-empty JSON object")
    _check_object(pattern)
    return pattern


def _check_object(pattern: dict[str, Any]) -> None:
    for key, value in pattern.items():
        if key == "$or":
            if not isinstance(value, list) or len(value) < 2 or not all(isinstance(p, dict) and p for p in value):
                raise FilterError("$or takes a list of at least two patterns")
            for p in value:
                _check_object(p)
        elif isinstance(value, dict):
            if not value:
                raise FilterError(f"{key}: an empty object")
            _check_object(value)
        elif isinstance(value, list):
            if not value:
                raise FilterError(f"{key}: an empty list of rules")
            for rule in value:
                _check_rule(key, rule)
        else:
            raise FilterError(f"{key}: a value in a pattern must be an object or a list of rules")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_rule(key: str, rule: Any) -> None:
    if rule is None or isinstance(rule, (str, bool)) or _number(rule):
        return
    if not isinstance(rule, dict) or len(rule) != 1:
        raise FilterError(f"{key}: a rule is a value or an object with one operator")
    op, arg = next(iter(rule.items()))
    if op in ("prefix", "suffix"):
        if isinstance(arg, dict) and list(arg) == ["equals-ignore-case"] and isinstance(arg["equals-ignore-case"], str):
            return
        if not isinstance(arg, str):
            raise FilterError(f"{key}: {op} takes a string")
    elif op == "equals-ignore-case":
        if not isinstance(arg, str):
            raise FilterError(f"{key}: equals-ignore-case takes a string")
    elif op == "exists":
        if not isinstance(arg, bool):
            raise FilterError(f"{key}: exists takes true or false")
    elif op == "anything-but":
        if isinstance(arg, dict):
            if len(arg) != 1 or next(iter(arg)) not in ("prefix", "suffix", "equals-ignore-case") \
                    or not isinstance(next(iter(arg.values())), str):
                raise FilterError(f"{key}: anything-but takes values, or prefix/suffix/equals-ignore-case")
        elif isinstance(arg, list):
            if not arg or not all(isinstance(v, str) or _number(v) for v in arg):
                raise FilterError(f"{key}: anything-but takes strings or numbers")
        elif not (isinstance(arg, str) or _number(arg)):
            raise FilterError(f"{key}: anything-but takes strings or numbers")
    elif op == "numeric":
        _check_numeric(key, arg)
    else:
        raise FilterError(f"{key}: unknown operator {op!r}")


def _check_numeric(key: str, arg: Any) -> None:
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise FilterError(f"{key}: numeric takes [op, number] or [lower op, number, upper op, number]")
    pairs = [(arg[i], arg[i + 1]) for i in range(0, len(arg), 2)]
    for op, n in pairs:
        if op not in _NUMERIC_OPS or not _number(n):
            raise FilterError(f"{key}: numeric takes operators {', '.join(_NUMERIC_OPS)} with numbers")
    if len(pairs) == 2:
        (lo_op, lo), (hi_op, hi) = pairs
        if lo_op not in (">", ">=") or hi_op not in ("<", "<=") or lo > hi:
            raise FilterError(f"{key}: a numeric range is a lower bound (> or >=) then a higher upper bound (< or <=)")


# -- matching -------------------------------------------------------------------------------


def matches_any(patterns: list[dict[str, Any]], view: dict[str, Any]) -> bool:
    """Whether a record (its filterable view, see ``sqs_view``/``kinesis_view``) passes."""
    return not patterns or any(matches(p, view) for p in patterns)


def matches(pattern: dict[str, Any], event: Any) -> bool:
    for key, rules in pattern.items():
        if key == "$or":
            if not any(matches(p, event) for p in rules):
                return False
            continue
        value = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(rules, dict):
            if not isinstance(value, dict) or not matches(rules, value):
                return False
        elif not _leaf(rules, value):
            return False
    return True


def _leaf(rules: list[Any], value: Any) -> bool:
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule:
            if rule["exists"] == (value is not _MISSING):
                return True
            continue
        if value is _MISSING or isinstance(value, _Opaque):
            continue
        values = value if isinstance(value, list) else [value]
        if any(_rule(rule, v) for v in values):
            return True
    return False


def _equal(a: Any, b: Any) -> bool:
    if _number(a) and _number(b):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _rule(rule: Any, v: Any) -> bool:
    if not isinstance(rule, dict):
        return _equal(rule, v)
    op, arg = next(iter(rule.items()))
    if op in ("prefix", "suffix"):
        if not isinstance(v, str):
            return False
        text, s = (arg["equals-ignore-case"].lower(), v.lower()) if isinstance(arg, dict) else (arg, v)
        return s.startswith(text) if op == "prefix" else s.endswith(text)
    if op == "equals-ignore-case":
        return isinstance(v, str) and v.lower() == arg.lower()
    if op == "anything-but":
        if isinstance(arg, dict):
            inner = {"prefix": "prefix", "suffix": "suffix", "equals-ignore-case": "equals-ignore-case"}
            (k, a), = arg.items()
            return isinstance(v, str) and not _rule({inner[k]: a}, v)
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_equal(x, v) for x in excluded)
    if op == "numeric":
        if not _number(v):
            return False
        for i in range(0, len(arg), 2):
            o, n = arg[i], arg[i + 1]
            ok = {"=": v == n, "<": v < n, "<=": v <= n, ">": v > n, ">=": v >= n}[o]
            if not ok:
                return False
        return True
    return False


# -- what a pattern sees of a record ---------------------------------------------------------


def _json_or_none(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return _MISSING


def sqs_view(record: dict[str, Any], patterns: list[dict[str, Any]]) -> dict[str, Any]:
    """The SQS record as the patterns see it: ``body`` parsed as JSON for patterns that
    filter on its fields; a plain-string pattern sees the body as a string only if the body
    is not JSON (AWS's table: a JSON pattern drops a plain-string body, and the reverse)."""
    body = record.get("body", "")
    parsed = _json_or_none(body)
    view = dict(record)
    wants_json = any(isinstance(p.get("body"), dict) for p in patterns)
    if wants_json:
        view["body"] = parsed if isinstance(parsed, dict) else _MISSING_BODY
    elif parsed is not _MISSING and not isinstance(parsed, str):
        view["body"] = _MISSING_BODY  # a plain-string rule never matches a JSON body
    return view


class _Opaque:
    """A body no rule matches (exists still sees it)."""

    def __repr__(self) -> str:
        return "<no match>"


_MISSING_BODY = _Opaque()


def kinesis_view(record: dict[str, Any]) -> dict[str, Any]:
    """A Kinesis record's ``kinesis`` part, ``data`` decoded from base64 and read as JSON
    (data that is not JSON matches no pattern on ``data``)."""
    import base64

    k = dict(record.get("kinesis", {}))
    try:
        parsed = _json_or_none(base64.b64decode(k.get("data", "")))
    except ValueError:
        parsed = _MISSING
    k["data"] = parsed if parsed is not _MISSING else _MISSING_BODY
    return k
