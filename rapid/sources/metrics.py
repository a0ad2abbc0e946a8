"""The event source mappings' figures in ``GET /metrics`` (Prometheus text), one series per
mapping, labelled by its UUID and function. Counters start at 0 with each daemon start.

========================================================  =====  ======================================
metric                                                    type   meaning
========================================================  =====  ======================================
``rapid_esm_batches_total{uuid,function}``                count  invocations with a batch
``rapid_esm_records_total{uuid,function}``                count  records in them
``rapid_esm_errors_total{uuid,function}``                 count  batches that failed, whole or in part
``rapid_esm_filtered_total{uuid,function}``               count  records FilterCriteria dropped
``rapid_esm_throttles_total{uuid,function}``              count  throttled submissions, waited out
``rapid_esm_given_up_total{uuid,function}``               count  Kinesis records sent to OnFailure
``rapid_esm_redelivered_total{uuid,function}``            count  sent again: the possible duplicates
``rapid_esm_oldest_message_age_seconds{uuid,function}``   gauge  SQS: oldest message of the last batch
``rapid_esm_iterator_age_seconds{uuid,function}``         gauge  Kinesis: behind the tip after a read
========================================================  =====  ======================================

The counters are kept in the registry's store (``rapid.sources.pollers`` writes them), so
they count across restarts, and ``offline`` renders the same page from a data dir with no
daemon running (``rapid queue --data-dir``).
"""

from __future__ import annotations

from collections.abc import Mapping as Map

import msgspec

from rapid.registry.mappings import Mapping
from rapid.sources.stats import Stats, decode

_SERIES = (
    ("batches", "rapid_esm_batches_total", "counter", "Invocations with a batch."),
    ("records", "rapid_esm_records_total", "counter", "Records in the batches."),
    ("errors", "rapid_esm_errors_total", "counter", "Batches that failed, whole or in part."),
    ("filtered", "rapid_esm_filtered_total", "counter", "Records the FilterCriteria dropped."),
    ("throttles", "rapid_esm_throttles_total", "counter", "Throttled batch submissions, waited out."),
    ("given_up", "rapid_esm_given_up_total", "counter", "Stream records given up (to OnFailure)."),
    ("redelivered", "rapid_esm_redelivered_total", "counter",
     "SQS messages received before, stream records read again after a restart: the possible duplicates."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(mappings: Map[str, Mapping], stats: Map[str, Stats]) -> str:
    rows = [(m, stats.get(uuid, Stats())) for uuid, m in sorted(mappings.items())]
    if not rows:
        return ""  # no mapping, no series: the page stays what it was without them
    out: list[str] = []

    def labels(m: Mapping) -> str:
        return f'uuid="{_label(m.uuid)}",function="{_label(m.function)}"'

    for attr, name, kind, help_ in _SERIES:
        out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
        out += [f"{name}{{{labels(m)}}} {getattr(s, attr)}" for m, s in rows]
    for attr, name, help_, kind in (
        ("oldest_age_ms", "rapid_esm_oldest_message_age_seconds", "SQS: age of the oldest message of the last "
                                                                  "batch.", "sqs"),
        ("iterator_age_ms", "rapid_esm_iterator_age_seconds", "Kinesis: how far behind the tip the last read "
                                                              "was.", "kinesis"),
    ):
        out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
        out += [f"{name}{{{labels(m)}}} {getattr(s, attr) / 1000:.3f}" for m, s in rows if m.kind == kind]
    return "\n".join(out) + "\n"


def offline(data_dir: str) -> str:
    """The mappings' page from the registry in ``data_dir``, read-only."""
    from rapid.registry.sqlite_store import read_records

    mappings: dict[str, Mapping] = {}
    for key, body in read_records(data_dir, "mapping"):
        try:
            mappings[key] = msgspec.json.decode(body, type=Mapping)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
    stats = {key: decode(body) for key, body in read_records(data_dir, "mapping-stats")}
    return render(mappings, stats)
