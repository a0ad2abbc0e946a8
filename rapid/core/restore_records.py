"""The Telemetry API's records of a SnapStart restore, in AWS's shapes (pure).

A restored instance (``rapid.host.instance_restore``) has no init of its own: the init
ran once, in the template. In its place the platform reports the restore phase:

- ``platform.restoreStart`` at the fork: ``functionName``, ``functionVersion``,
  ``instanceId``, ``instanceMaxMemory``, ``runtimeVersion``, ``runtimeVersionArn``;
- ``platform.restoreRuntimeDone`` when the restore ends: ``status`` (``success`` at the
  runtime's first ``/next``, ``error`` from ``/restore/error``, ``timeout`` past the
  limit), with ``errorType`` when it failed;
- ``platform.restoreReport`` right after: the same status, and ``metrics.durationMs``.

The JSON log format writes the same ``platform.restoreReport`` record where the text
format writes ``RESTORE_REPORT``.
"""

from __future__ import annotations

from rapid.core import report


def restore_start_record(function_name: str, version: str, instance_id: str, memory_mb: int) -> dict[str, object]:
    return {
        "functionName": function_name, "functionVersion": version, "instanceId": instance_id,
        "instanceMaxMemory": memory_mb, "runtimeVersion": "rapid", "runtimeVersionArn": "arn:aws:lambda:::runtime:rapid",
    }


def restore_runtime_done_record(status: str, error_type: str | None) -> dict[str, object]:
    record: dict[str, object] = {"status": status}
    if error_type:
        record["errorType"] = error_type
    return record


def restore_report_record(duration_ms: float, status: str, error_type: str | None) -> dict[str, object]:
    record: dict[str, object] = {"status": status, "metrics": {"durationMs": round(duration_ms, 3)}}
    if error_type:
        record["errorType"] = error_type
    return record


def restore_report_json(duration_ms: float, status: str, error_type: str | None) -> str:
    return report.encode("platform.restoreReport", restore_report_record(duration_ms, status, error_type)).decode()
