"""Input constraints worded as AWS words them (rapid.core.constraints)."""

from __future__ import annotations

import pytest

from rapid.core import constraints
from rapid.core.errors import ServiceError


def _error(call, *args):
    with pytest.raises(ServiceError) as info:
        call(*args)
    return info.value.status, info.value.code, info.value.message


def test_enum():
    assert constraints.enum("logType", "Tail", ("None", "Tail")) == "Tail"
    assert _error(constraints.enum, "logType", "tail", ("None", "Tail")) == (
        400, "ValidationException",
        "1 validation error detected: Value 'tail' at 'logType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [None, Tail]",
    )


@pytest.mark.parametrize("good", [None, "$LATEST", "1", "live", "blue_green-2", "a" * 128])
def test_good_qualifiers(good):
    assert constraints.qualifier(good) == good


@pytest.mark.parametrize("bad", ["v 1", "a.b", "prod!", "ä", "x:y"])
def test_a_qualifier_off_the_pattern(bad):
    assert _error(constraints.qualifier, bad) == (
        400, "ValidationException",
        f"1 validation error detected: Value '{bad}' at 'qualifier' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)",
    )


def test_a_qualifier_too_long():
    assert _error(constraints.qualifier, "a" * 129)[2].endswith("Member must have length less than or equal to 128")


@pytest.mark.parametrize(
    "body",
    [b"{}", b'"\\ud800"', b'{"s": "\\udfff and \\ud83d\\ude00"}', "{\"t\": \"caf\u00e9 \U0001f600\"}".encode(), b"[1, 2.5, null]"],
)
def test_valid_json_in_utf8_passes(body):
    constraints.json_payload(body)
    constraints.json_payload(bytearray(body))


@pytest.mark.parametrize(
    "body",
    [b'"\xff"', b'{"a": "\xc3"}', b'"\xed\xa0\x80"', b"{not json", b"\xff\xfe", b'"\\ud800', b"1 2"],
)
def test_invalid_utf8_or_json_is_refused(body):
    status, code, message = _error(constraints.json_payload, body)
    assert (status, code) == (400, "InvalidRequestContentException")
    assert message.startswith("Could not parse request body into json")
