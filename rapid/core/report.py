"""The platform's log lines, in Lambda's text format and its JSON (Telemetry) format.

Text lines are exactly Lambda's, TAB separated with a trailing TAB on REPORT::

    START RequestId: <id> Version: $LATEST
    END RequestId: <id>
    REPORT RequestId: <id>\\tDuration: 1.23 ms\\tBilled Duration: 2 ms\\tMemory Size: 128 MB\\tMax Memory Used: 31 MB\\t[Init Duration: 80.00 ms\\t]

Failures append the new-style ``Status: …`` and ``Error Type: …`` fields. Billed duration is
the duration plus any init duration on the line, rounded up to the millisecond (AWS bills
init for custom runtimes).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import msgspec

_json = msgspec.json.Encoder()


@dataclass(slots=True)
class Report:  # (not frozen: a frozen dataclass's __init__ costs twice as much, once per invoke)
    request_id: str
    duration_ms: float
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    restore_duration_ms: float | None = None  # SnapStart: the first invoke of a forked instance
    status: str = "success"  # success | error | timeout
    error_type: str | None = None

    @property
    def billed_ms(self) -> int:
        return math.ceil(self.duration_ms + (self.init_duration_ms or 0.0))


def iso_now(now: float | None = None) -> str:
    t = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


# -- text ---------------------------------------------------------------------------------

def start_text(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end_text(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def report_text(r: Report) -> str:
    parts = [
        f"REPORT RequestId: {r.request_id}",
        f"Duration: {r.duration_ms:.2f} ms",
        f"Billed Duration: {r.billed_ms} ms",
        f"Memory Size: {r.memory_size_mb} MB",
        f"Max Memory Used: {r.max_memory_used_mb} MB",
    ]
    if r.init_duration_ms is not None:
        parts.append(f"Init Duration: {r.init_duration_ms:.2f} ms")
    if r.restore_duration_ms is not None:  # SnapStart, as Lambda writes it
        parts.append(f"Restore Duration: {r.restore_duration_ms:.2f} ms")
        parts.append(f"Billed Restore Duration: {math.ceil(r.restore_duration_ms)} ms")
    if r.status != "success":
        parts.append(f"Status: {r.status}")
        if r.error_type:
            parts.append(f"Error Type: {r.error_type}")
    return "\t".join(parts) + "\t"


def restore_report_text(duration_ms: float, status: str, error_type: str | None) -> str:
    parts = [f"RESTORE_REPORT Restore Duration: {duration_ms:.2f} ms", f"Status: {status}"]
    if error_type:
        parts.append(f"Error Type: {error_type}")
    return "\t".join(parts)


def init_report_text(duration_ms: float, phase: str, status: str, error_type: str | None) -> str:
    parts = [f"INIT_REPORT Init Duration: {duration_ms:.2f} ms", f"Phase: {phase}", f"Status: {status}"]
    if error_type:
        parts.append(f"Error Type: {error_type}")
    return "\t".join(parts)


# -- records: the Telemetry API's, and the JSON log format's (one source for both) ---------

def envelope(kind: str, record: object, now: float | None = None) -> dict[str, object]:
    return {"time": iso_now(now), "type": kind, "record": record}


def encode(kind: str, record: object, now: float | None = None) -> bytes:
    return _json.encode(envelope(kind, record, now))


def _envelope(kind: str, record: object, now: float | None = None) -> str:
    return encode(kind, record, now).decode()


def start_record(request_id: str, version: str, function_arn: str, trace_id: str | None = None) -> dict[str, object]:
    record: dict[str, object] = {"requestId": request_id, "functionArn": function_arn, "version": version}
    if trace_id:
        record["tracing"] = {"type": "X-Amzn-Trace-Id", "value": trace_id}
    return record


def report_record(r: Report) -> dict[str, object]:
    metrics: dict[str, float | int] = {
        "durationMs": round(r.duration_ms, 3),
        "billedDurationMs": r.billed_ms,
        "memorySizeMB": r.memory_size_mb,
        "maxMemoryUsedMB": r.max_memory_used_mb,
    }
    if r.init_duration_ms is not None:
        metrics["initDurationMs"] = round(r.init_duration_ms, 3)
    if r.restore_duration_ms is not None:
        metrics["restoreDurationMs"] = round(r.restore_duration_ms, 3)
    record: dict[str, object] = {"requestId": r.request_id, "metrics": metrics, "status": r.status}
    if r.error_type:
        record["errorType"] = r.error_type
    return record


def init_report_record(
    duration_ms: float, phase: str, status: str, error_type: str | None, init_type: str
) -> dict[str, object]:
    record: dict[str, object] = {
        "initializationType": init_type,
        "phase": phase,
        "status": status,
        "metrics": {"durationMs": round(duration_ms, 3)},
    }
    if error_type:
        record["errorType"] = error_type
    return record


def init_start_record(init_type: str, phase: str, function_name: str, version: str, instance_id: str,
                      memory_mb: int) -> dict[str, object]:
    return {
        "initializationType": init_type, "phase": phase, "functionName": function_name,
        "functionVersion": version, "instanceId": instance_id, "instanceMaxMemory": memory_mb,
        "runtimeVersion": "rapid", "runtimeVersionArn": "arn:aws:lambda:::runtime:rapid",
    }


def init_runtime_done_record(init_type: str, phase: str, status: str, error_type: str | None) -> dict[str, object]:
    record: dict[str, object] = {"initializationType": init_type, "phase": phase, "status": status}
    if error_type:
        record["errorType"] = error_type
    return record


def runtime_done_record(request_id: str, status: str, error_type: str | None, duration_ms: float,
                        produced_bytes: int) -> dict[str, object]:
    record: dict[str, object] = {
        "requestId": request_id, "status": status,
        "metrics": {"durationMs": round(duration_ms, 3), "producedBytes": produced_bytes},
    }
    if error_type:
        record["errorType"] = error_type
    return record


def extension_record(name: str, state: str, events: list[str]) -> dict[str, object]:
    return {"name": name, "state": state, "events": events}


def subscription_record(name: str, types: list[str]) -> dict[str, object]:
    return {"name": name, "state": "Subscribed", "types": types}


def logs_dropped_record(records: int, size: int, reason: str) -> dict[str, object]:
    return {"droppedBytes": size, "droppedRecords": records, "reason": reason}


# -- JSON log lines (the Telemetry API envelope, as CloudWatch shows it in JSON log format)

def start_json(request_id: str, version: str, function_arn: str) -> str:
    return _envelope("platform.start", start_record(request_id, version, function_arn))


def report_json(r: Report) -> str:
    return _envelope("platform.report", report_record(r))


def init_report_json(duration_ms: float, phase: str, status: str, error_type: str | None, init_type: str) -> str:
    return _envelope("platform.initReport", init_report_record(duration_ms, phase, status, error_type, init_type))


def extension_json(name: str, state: str, events: list[str]) -> str:
    return _envelope("platform.extension", extension_record(name, state, events))


def function_line_json(line: str, request_id: str | None) -> str:
    """A function's own output line in JSON log format: JSON objects pass through as they
    are; anything else is wrapped the way Lambda wraps plain text."""
    if line.startswith("{") and line.endswith("}"):
        try:
            msgspec.json.decode(line)
            return line
        except msgspec.DecodeError:
            pass
    record = {"timestamp": iso_now(), "level": "INFO", "requestId": request_id, "message": line}
    return _json.encode(record).decode()
