"""The Telemetry API's restore records, against the shapes of AWS's schema reference
(PlatformRestoreStart, PlatformRestoreRuntimeDone, PlatformRestoreReport)."""

import json

from rapid.core.restore_records import (
    restore_report_json,
    restore_report_record,
    restore_runtime_done_record,
    restore_start_record,
)


def test_restore_start_has_the_function_and_the_instance():
    record = restore_start_record("fn", "3", "ab12", 512)
    assert record == {"functionName": "fn", "functionVersion": "3", "instanceId": "ab12", "instanceMaxMemory": 512,
                      "runtimeVersion": "rapid", "runtimeVersionArn": "arn:aws:lambda:::runtime:rapid"}


def test_runtime_done_and_report_carry_the_error_type_only_when_failed():
    assert restore_runtime_done_record("success", None) == {"status": "success"}
    assert restore_runtime_done_record("error", "ValueError") == {"status": "error", "errorType": "ValueError"}
    assert restore_report_record(15.1904, "success", None) == {"status": "success", "metrics": {"durationMs": 15.19}}
    assert restore_report_record(10000.0, "timeout", None) == {"status": "timeout", "metrics": {"durationMs": 10000.0}}
    assert restore_report_record(3.0, "error", "E")["errorType"] == "E"


def test_the_json_log_line_is_a_telemetry_event():
    event = json.loads(restore_report_json(12.5, "timeout", None))
    assert set(event) == {"time", "type", "record"} and event["time"].endswith("Z")
    assert event["type"] == "platform.restoreReport"
    assert event["record"] == {"status": "timeout", "metrics": {"durationMs": 12.5}}
