"""The platform's log lines, byte for byte, and their JSON (Telemetry) envelopes."""

from __future__ import annotations

import json
import re

import pytest

from rapid.core import report
from rapid.core.report import Report

RID = "8f507cfc-xmpl-4697-b07a-ac58fc914c95"
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


# -- text ---------------------------------------------------------------------------------

def test_start_and_end() -> None:
    assert report.start_text(RID, "$LATEST") == f"START RequestId: {RID} Version: $LATEST"
    assert report.start_text(RID, "3") == f"START RequestId: {RID} Version: 3"
    assert report.end_text(RID) == f"END RequestId: {RID}"


def test_report_success_without_init() -> None:
    r = Report(RID, duration_ms=15.74, memory_size_mb=128, max_memory_used_mb=56)
    assert report.report_text(r) == (
        f"REPORT RequestId: {RID}\tDuration: 15.74 ms\tBilled Duration: 16 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 56 MB\t"
    )


def test_report_success_with_init_bills_init() -> None:
    # Observed on a custom runtime: 79.88 + 91.80 -> 172.
    r = Report(RID, duration_ms=79.88, memory_size_mb=128, max_memory_used_mb=31, init_duration_ms=91.8)
    assert report.report_text(r) == (
        f"REPORT RequestId: {RID}\tDuration: 79.88 ms\tBilled Duration: 172 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 31 MB\tInit Duration: 91.80 ms\t"
    )


def test_report_timeout() -> None:
    # AWS's own example: 3016.78 + 84.00 -> 3101.
    r = Report("527cb862", 3016.78, 128, 31, init_duration_ms=84.0, status="timeout")
    assert report.report_text(r) == (
        "REPORT RequestId: 527cb862\tDuration: 3016.78 ms\tBilled Duration: 3101 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 31 MB\tInit Duration: 84.00 ms\tStatus: timeout\t"
    )


def test_report_error() -> None:
    # AWS's own example: 133.61 + 80.00 -> 214.
    r = Report("5b866fb1", 133.61, 128, 31, init_duration_ms=80.0, status="error",
               error_type="Runtime.ExitError")
    assert report.report_text(r) == (
        "REPORT RequestId: 5b866fb1\tDuration: 133.61 ms\tBilled Duration: 214 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 31 MB\tInit Duration: 80.00 ms\t"
        "Status: error\tError Type: Runtime.ExitError\t"
    )
    no_init = Report("x", 1.0, 128, 9, status="error", error_type="Runtime.Unknown")
    assert report.report_text(no_init) == (
        "REPORT RequestId: x\tDuration: 1.00 ms\tBilled Duration: 1 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 9 MB\tStatus: error\tError Type: Runtime.Unknown\t"
    )


def test_success_never_shows_status_even_with_an_error_type() -> None:
    text = report.report_text(Report("x", 1.0, 128, 9, error_type="Runtime.Unknown"))
    assert "Status" not in text and "Error Type" not in text


@pytest.mark.parametrize(
    "duration, init, billed",
    [
        (27.55, None, 28),
        (0.0, None, 0),
        (0.01, None, 1),
        (16.0, None, 16),
        (1.5, 0.5, 2),
        (1233.96, 463.512, 1698),  # the JSON example in the docs
        (3004.92, 111.23, 3117),
        (0.004, None, 1),
    ],
)
def test_billed_duration_is_ceil_of_duration_plus_init(duration, init, billed) -> None:
    r = Report("x", duration, 128, 1, init_duration_ms=init)
    assert r.billed_ms == billed
    assert f"\tBilled Duration: {billed} ms\t" in report.report_text(r)


def test_two_decimals() -> None:
    text = report.report_text(Report("x", 2.0, 128, 1, init_duration_ms=0.126))
    assert "\tDuration: 2.00 ms\t" in text
    assert "\tInit Duration: 0.13 ms\t" in text
    assert "\tDuration: 1234.57 ms\t" in report.report_text(Report("x", 1234.5678, 128, 1))


def test_init_report_text() -> None:
    assert report.init_report_text(129.89, "invoke", "error", "Runtime.ImportModuleError") == (
        "INIT_REPORT Init Duration: 129.89 ms\tPhase: invoke\tStatus: error\t"
        "Error Type: Runtime.ImportModuleError"
    )
    assert report.init_report_text(1236.04, "init", "timeout", None) == (
        "INIT_REPORT Init Duration: 1236.04 ms\tPhase: init\tStatus: timeout"
    )


# -- JSON ---------------------------------------------------------------------------------

def test_iso_now() -> None:
    assert report.iso_now(0) == "1970-01-01T00:00:00.000Z"
    assert report.iso_now(1709572958.5) == "2024-03-04T17:22:38.500Z"
    assert ISO_RE.match(report.iso_now())


def _envelope(line: str, kind: str) -> dict:
    assert "\n" not in line
    env = json.loads(line)
    assert set(env) == {"time", "type", "record"}
    assert env["type"] == kind
    assert ISO_RE.match(env["time"]), env["time"]
    return env["record"]


def test_report_json_success_with_init() -> None:
    r = Report(RID, 1233.96, 256, 123, init_duration_ms=463.512)
    record = _envelope(report.report_json(r), "platform.report")
    assert record == {
        "requestId": RID,
        "metrics": {
            "durationMs": 1233.96,
            "billedDurationMs": 1698,
            "memorySizeMB": 256,
            "maxMemoryUsedMB": 123,
            "initDurationMs": 463.512,
        },
        "status": "success",
    }


def test_report_json_failure_without_init() -> None:
    r = Report(RID, 3000.1234, 128, 40, status="timeout")
    record = _envelope(report.report_json(r), "platform.report")
    assert record["status"] == "timeout"
    assert "errorType" not in record
    assert set(record["metrics"]) == {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB"}
    assert record["metrics"]["durationMs"] == 3000.123
    assert record["metrics"]["billedDurationMs"] == 3001
    r = Report(RID, 5.0, 128, 40, status="error", error_type="Runtime.ExitError")
    record = _envelope(report.report_json(r), "platform.report")
    assert (record["status"], record["errorType"]) == ("error", "Runtime.ExitError")


def test_start_json() -> None:
    arn = "arn:aws:lambda:us-east-1:000000000000:function:fn"
    record = _envelope(report.start_json(RID, "$LATEST", arn), "platform.start")
    assert record == {"requestId": RID, "functionArn": arn, "version": "$LATEST"}


def test_init_report_json() -> None:
    record = _envelope(
        report.init_report_json(129.891, "invoke", "error", "Runtime.ImportModuleError", "on-demand"),
        "platform.initReport",
    )
    assert record == {
        "initializationType": "on-demand",
        "phase": "invoke",
        "status": "error",
        "metrics": {"durationMs": 129.891},
        "errorType": "Runtime.ImportModuleError",
    }
    record = _envelope(report.init_report_json(5, "init", "timeout", None, "on-demand"), "platform.initReport")
    assert "errorType" not in record


@pytest.mark.parametrize(
    "line",
    [
        '{"timestamp":"2024-01-01T00:00:00Z","level":"ERROR","message":"boom"}',
        '{"level": "DEBUG",   "x": [1, 2]}',
        "{}",
    ],
)
def test_function_line_json_passes_json_objects_through(line: str) -> None:
    assert report.function_line_json(line, "rid") == line


@pytest.mark.parametrize(
    "line",
    ["hello world", "", "{not json}", "[1, 2]", '"a string"', "42", '{"a": 1} trailing', "\ttabbed"],
)
def test_function_line_json_wraps_plain_text(line: str) -> None:
    out = report.function_line_json(line, "rid-1")
    record = json.loads(out)
    assert set(record) == {"timestamp", "level", "requestId", "message"}
    assert record["level"] == "INFO"
    assert record["requestId"] == "rid-1"
    assert record["message"] == line
    assert ISO_RE.match(record["timestamp"])
    assert "\n" not in out


def test_function_line_json_outside_an_invocation() -> None:
    assert json.loads(report.function_line_json("init output", None))["requestId"] is None


def test_json_durations_keep_three_decimals() -> None:
    r = Report(request_id="r", duration_ms=1.23456, memory_size_mb=128, max_memory_used_mb=20,
               init_duration_ms=7.65432, status="success", error_type=None)
    metrics = json.loads(report.report_json(r))["record"]["metrics"]
    assert (metrics["durationMs"], metrics["initDurationMs"]) == (1.235, 7.654)
    init = json.loads(report.init_report_json(2.34567, "init", "success", None, "on-demand"))
    assert init["record"]["metrics"] == {"durationMs": 2.346}


def test_a_json_looking_line_that_is_not_an_object_line_is_wrapped() -> None:
    # Only a line that is a JSON object from its first character to its last passes through.
    for line in (' {"a": 1}', '{"a": 1} ', "{not json}"):
        wrapped = json.loads(report.function_line_json(line, "rid"))
        assert (wrapped["message"], wrapped["requestId"], wrapped["level"]) == (line, "rid", "INFO")
    assert report.function_line_json('{"a": 1}', "rid") == '{"a": 1}'
