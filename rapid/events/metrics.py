"""The async queue's figures: Prometheus text for ``GET /metrics``, a table for ``rapid queue``.

Both come from one ``Snapshot`` of the store, so they always agree. Counters are durable
(kept in the store), so they survive restarts and ``rapid queue`` can read them offline.

=================================================  =====  ===============================================
metric                                             type   meaning
=================================================  =====  ===============================================
``rapid_async_queue_depth{function}``              gauge  events accepted and not completed
``rapid_async_running{function}``                  gauge  of those, attempts in flight now
``rapid_async_oldest_event_age_seconds{function}`` gauge  age of the oldest queued event
``rapid_async_accepted_total{function}``           count  events accepted (202), destination invokes too
``rapid_async_succeeded_total{function}``          count  events that ended in Success
``rapid_async_failed_total{function,condition}``   count  RetriesExhausted / EventAgeExceeded
``rapid_async_retries_total{function,reason}``     count  function_error / throttled / system_error
``rapid_async_dead_letters_total{function}``       count  failed events sent to the dead-letter target
``rapid_async_destination_delivered_total``        count  records (and dead letters) delivered
``rapid_async_destination_failures_total``         count  failed delivery attempts
``rapid_async_destination_dropped_total``          count  records given up on (not delivered)
``rapid_async_deliveries_pending{function}``       gauge  records waiting for a file/HTTP target
``rapid_async_redelivered_total{function}``        count  events running when a daemon died, run again:
                                                          the possible duplicates of at-least-once
``rapid_queue_messages{queue}``                    gauge  messages in a built-in queue
=================================================  =====  ===============================================
"""

from __future__ import annotations

import re

from rapid.events.store import Snapshot

_COUNTERS = (
    ("accepted", "rapid_async_accepted_total", "Events accepted for asynchronous invocation.", None),
    ("succeeded", "rapid_async_succeeded_total", "Events whose invocation succeeded.", None),
    ("failed:", "rapid_async_failed_total", "Events that failed for good, by condition.", "condition"),
    ("retries:", "rapid_async_retries_total", "Attempts retried, by reason.", "reason"),
    ("dead_letters", "rapid_async_dead_letters_total", "Failed events sent to the dead-letter target.", None),
    ("destination_delivered", "rapid_async_destination_delivered_total",
     "Records and dead letters delivered.", None),
    ("destination_failures", "rapid_async_destination_failures_total", "Failed delivery attempts.", None),
    ("destination_dropped", "rapid_async_destination_dropped_total", "Records given up on.", None),
    ("redelivered", "rapid_async_redelivered_total",
     "Events left running by a daemon that died and run again (possible duplicates).", None),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(snap: Snapshot) -> str:
    functions = sorted(
        set(snap.depth) | {f for f, _ in snap.counters} | set(snap.deliveries)
    )
    out: list[str] = []

    def gauge(name: str, help_: str, values: dict[str, float], fmt: str = "{:g}") -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} gauge")
        for f in functions:
            out.append(f'{name}{{function="{_label(f)}"}} {fmt.format(values.get(f, 0))}')

    gauge("rapid_async_queue_depth", "Events accepted and not yet completed.", snap.depth)  # type: ignore[arg-type]
    gauge("rapid_async_running", "Queued events with an attempt in flight.", snap.running)  # type: ignore[arg-type]
    ages = {f: max(0.0, snap.now - t) for f, t in snap.oldest.items()}
    gauge("rapid_async_oldest_event_age_seconds", "Age of the oldest queued event.", ages, "{:.3f}")
    gauge("rapid_async_deliveries_pending", "Records waiting for a file or HTTP destination.",
          snap.deliveries)  # type: ignore[arg-type]
    for key, name, help_, label in _COUNTERS:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} counter")
        if label is None:
            for f in functions:
                out.append(f'{name}{{function="{_label(f)}"}} {snap.counters.get((f, key), 0)}')
        else:
            for (f, n), v in sorted(snap.counters.items()):
                if n.startswith(key):
                    out.append(f'{name}{{function="{_label(f)}",{label}="{_label(n[len(key):])}"}} {v}')
    out.append("# HELP rapid_queue_messages Messages in a built-in queue.")
    out.append("# TYPE rapid_queue_messages gauge")
    for q, count in sorted(snap.queues.items()):
        out.append(f'rapid_queue_messages{{queue="{_label(q)}"}} {count}')
    return "\n".join(out) + "\n"


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text page (what ``render`` writes)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                  for k, v in _LABEL.findall(m[2] or "")}
        out.append((m[1], labels, float(m[3])))
    return out


_COLUMNS = (
    ("depth", "rapid_async_queue_depth"),
    ("running", "rapid_async_running"),
    ("oldest_s", "rapid_async_oldest_event_age_seconds"),
    ("accepted", "rapid_async_accepted_total"),
    ("ok", "rapid_async_succeeded_total"),
    ("failed", "rapid_async_failed_total"),
    ("retries", "rapid_async_retries_total"),
    ("dlq", "rapid_async_dead_letters_total"),
    ("dest_fail", "rapid_async_destination_failures_total"),
    ("dest_drop", "rapid_async_destination_dropped_total"),
    ("pending_dlv", "rapid_async_deliveries_pending"),
    ("redelivered", "rapid_async_redelivered_total"),
)


def table(samples: list[tuple[str, dict[str, str], float]]) -> str:
    """The per-function figures as a table (labelled counters summed), then the queues."""
    rows: dict[str, dict[str, float]] = {}
    queues: dict[str, float] = {}
    mappings: dict[tuple[str, str], dict[str, float]] = {}
    for name, labels, value in samples:
        if name.startswith("rapid_esm_"):  # the event source mappings' pollers (rapid.sources.metrics)
            mappings.setdefault((labels.get("uuid", ""), labels.get("function", "")), {})[name] = value
        elif name == "rapid_queue_messages":
            queues[labels.get("queue", "")] = value
        elif "function" in labels:
            row = rows.setdefault(labels["function"], {})
            row[name] = row.get(name, 0.0) + value
    head = ["function"] + [c for c, _ in _COLUMNS]
    lines = [head]
    for f in sorted(rows):
        cells = [f]
        for col, metric in _COLUMNS:
            v = rows[f].get(metric, 0.0)
            cells.append(f"{v:.1f}" if col == "oldest_s" else f"{int(v)}")
        lines.append(cells)
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    text = "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in lines)
    if queues:
        width = max(len("queue"), *(len(q) for q in queues))
        text += f"\n\n{'queue'.ljust(width)}  messages\n" + "\n".join(
            f"{q.ljust(width)}  {int(n):>8}" for q, n in sorted(queues.items()))
    if mappings:
        text += "\n\n" + _mapping_table(mappings)
    return text + "\n"


_MAPPING_COLUMNS = (("batches", "rapid_esm_batches_total"), ("records", "rapid_esm_records_total"),
                    ("errors", "rapid_esm_errors_total"), ("filtered", "rapid_esm_filtered_total"),
                    ("throttles", "rapid_esm_throttles_total"), ("redelivered", "rapid_esm_redelivered_total"),
                    ("given_up", "rapid_esm_given_up_total"))


def _mapping_table(mappings: dict[tuple[str, str], dict[str, float]]) -> str:
    """One line per event source mapping; age_s is the oldest message's (SQS) or the
    iterator's (Kinesis)."""
    lines = [["mapping", "function", *(c for c, _ in _MAPPING_COLUMNS), "age_s"]]
    for (uuid, function), row in sorted(mappings.items()):
        age = row.get("rapid_esm_oldest_message_age_seconds", row.get("rapid_esm_iterator_age_seconds", 0.0))
        lines.append([uuid, function, *(str(int(row.get(m, 0))) for _, m in _MAPPING_COLUMNS), f"{age:.1f}"])
    widths = [max(len(r[i]) for r in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in lines)
