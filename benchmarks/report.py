"""Tables: medians over rounds, ratios paired per round, the floor difference, the summary
with the budget of issue 4.

The results of one scenario, as kept in the JSON, are
``{"results": {target: {"rounds": [{"rows": {row: {figure: value}}, "samples": ..., "notes": [...]}
| {"error": "..."}], "na": "reason"}}}``.
"""

from __future__ import annotations

import statistics
from typing import Any

TARGET_LABEL = {"rapid": "rapid", "other": "other", "floor": "floor (no host)", "rie": "RIE", "relay": "relay floor"}
RATIO_TARGETS = (("rie", "rapid / RIE"), ("relay", "rapid / relay"))

HEADERS = {
    "invokes_per_s": "invokes/s",
    "p50_us": "p50 us", "p90_us": "p90 us", "p99_us": "p99 us",
    "p50_ms": "p50 ms", "p90_ms": "p90 ms", "p99_ms": "p99 ms",
    "daemon_cpu_us": "daemon CPU us/inv", "runtime_cpu_us": "runtime CPU us/inv", "client_cpu_us": "client CPU us/inv",
    "daemon_cpu_ms": "daemon CPU ms/inv", "runtime_cpu_ms": "runtime CPU ms/inv", "client_cpu_ms": "client CPU ms/inv",
    "client_busy_pct": "client busy %",
    "mb_per_s": "MiB/s",
    "instances": "instances",
    "first_ms": "first response ms", "bare_next_ms": "bare /next ms", "bare_response_ms": "bare response ms",
    "overhead_ms": "overhead ms", "overhead_next_ms": "overhead vs /next ms", "host_start_ms": "host start ms",
    "rss_mb": "daemon RSS MiB", "per_extra_kb": "per extra KiB", "runtimes": "runtimes", "sockets": "sockets",
    "runtimes_rss_mb": "runtimes RSS MiB",
    "accepts_per_s": "accepts/s", "accept_p50_us": "accept p50 us", "accept_p99_us": "accept p99 us",
    "events_per_s": "events/s", "processed": "processed", "data_dir_kb": "data dir KiB",
    "functions": "functions",
    "bare_ms": "bare start ms", "over_bare_x": "over bare (x)",
}


def fmt(figure: str, value: float | None) -> str:
    if value is None:
        return "-"
    if figure.endswith(("_ms", "_mb")):
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"
    if figure.endswith("_pct"):
        return f"{value:.0f}"
    if figure.endswith("_x"):  # a ratio
        return f"{value:.2f}x"
    return f"{value:,.0f}"


def medians(target_result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per row, per figure: the median over the rounds that have it."""
    rounds = [r for r in target_result.get("rounds", []) if "rows" in r]
    rows: dict[str, dict[str, list[float]]] = {}
    for r in rounds:
        for row, figures in r["rows"].items():
            for fig, v in figures.items():
                rows.setdefault(row, {}).setdefault(fig, []).append(v)
    return {row: {fig: statistics.median(vs) for fig, vs in figs.items()} for row, figs in rows.items()}


def paired_ratios(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per row, per figure: the median over rounds of b / a, paired round by round."""
    out: dict[str, dict[str, list[float]]] = {}
    for ra, rb in zip(a.get("rounds", []), b.get("rounds", [])):
        if "rows" not in ra or "rows" not in rb:
            continue
        for row, fa in ra["rows"].items():
            fb = rb["rows"].get(row)
            if fb is None:
                continue
            for fig, va in fa.items():
                vb = fb.get(fig)
                if vb is not None and va:
                    out.setdefault(row, {}).setdefault(fig, []).append(vb / va)
    return {row: {fig: statistics.median(v) for fig, v in figs.items()} for row, figs in out.items()}


def round_ratios(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Per row, per figure: a / b for each round both have, in round order."""
    out: dict[str, dict[str, list[float]]] = {}
    for ra, rb in zip(a.get("rounds", []), b.get("rounds", [])):
        if "rows" not in ra or "rows" not in rb:
            continue
        for row, fa in ra["rows"].items():
            fb = rb["rows"].get(row)
            if fb is None:
                continue
            for fig, va in fa.items():
                vb = fb.get(fig)
                if vb:
                    out.setdefault(row, {}).setdefault(fig, []).append(va / vb)
    return out


def spread(values: list[float], unit: str = "x") -> str:
    """``0.71x [0.65-0.80]``: the median and the range of per-round ratios (or, with
    ``unit`` "ms", of per-round figures: ``+2.10ms [1.50-3.20]``)."""
    if not values:
        return "-"
    med = statistics.median(values)
    sign = "+" if unit == "ms" and med >= 0 else ""
    if len(values) == 1:
        return f"{sign}{med:.2f}{unit}"
    return f"{sign}{med:.2f}{unit} [{min(values):.2f}-{max(values):.2f}]"


def _na(target_result: dict[str, Any]) -> str | None:
    if target_result.get("na"):
        return f"n/a: {target_result['na']}"
    rounds = target_result.get("rounds", [])
    if rounds and all("rows" not in r for r in rounds):
        return f"failed: {rounds[0].get('error', '?')}"
    return None


def table(scenario: dict[str, Any], figures: tuple[str, ...], rounds: int) -> str:
    """One scenario's table, rows x targets, with the ratio and floor lines."""
    results = scenario["results"]
    lines = [f"({scenario['number']}) {scenario['title']}  [median of {rounds} round{'s' * (rounds > 1)}]",
             f"    workload: {scenario['workload']}"]
    meds = {t: medians(r) for t, r in results.items()}
    row_names: list[str] = []
    for t in results:
        for row in meds[t]:
            if row not in row_names:
                row_names.append(row)
    multi = max((len(r) for r in row_names), default=0) if len(row_names) > 1 else 0
    body: list[tuple[str, list[str]]] = []
    for row in row_names:
        for t in results:
            if row in meds[t]:
                body.append((_label(row, TARGET_LABEL[t], multi), [fmt(f, meds[t][row].get(f)) for f in figures]))
        if "floor" in meds and row in meds["floor"] and row in meds.get("rapid", {}):
            diff = [_diff(f, meds["rapid"][row].get(f), meds["floor"][row].get(f)) for f in figures]
            body.append((_label(row, "rapid - floor", multi), diff))
        if "other" in results and row in meds.get("other", {}) and row in meds.get("rapid", {}):
            ratios = paired_ratios(results["rapid"], results["other"]).get(row, {})
            body.append((_label(row, "other / rapid", multi),
                         [f"{ratios[f]:.2f}x" if f in ratios else "-" for f in figures]))
        for t, label in RATIO_TARGETS:
            if t in results and row in meds.get(t, {}) and row in meds.get("rapid", {}):
                per = round_ratios(results["rapid"], results[t]).get(row, {})
                body.append((_label(row, label, multi), [spread(per.get(f, [])) for f in figures]))
    for t, r in results.items():
        why = _na(r)
        if why:
            body.append((TARGET_LABEL[t], [why]))
    first = max([len(label) for label, _ in body] + [8])
    heads = [HEADERS.get(f, f) for f in figures]
    widths = [max(len(h), 9) for h in heads]
    for _label_, cells in body:
        if len(cells) == len(widths):
            widths = [max(w, len(c)) for w, c in zip(widths, cells)]
    lines.append("    " + " " * first + "".join(f"  {h:>{w}}" for h, w in zip(heads, widths)))
    for label, cells in body:
        if len(cells) == len(widths):
            lines.append("    " + f"{label:<{first}}" + "".join(f"  {c:>{w}}" for c, w in zip(cells, widths)))
        else:
            lines.append("    " + f"{label:<{first}}  {cells[0]}")
    notes = [n for r in results.values() for rd in r.get("rounds", []) for n in rd.get("notes", [])]
    errors = [f"round {i + 1} {t}: {rd['error']}" for t, r in results.items()
              for i, rd in enumerate(r.get("rounds", [])) if "error" in rd and _na(r) is None]
    for note in dict.fromkeys(notes + errors):
        lines.append(f"    note: {note}")
    return "\n".join(lines)


def _label(row: str, target: str, width: int) -> str:
    return f"{row:<{width}}  {target}" if width else target


def _diff(figure: str, a: float | None, b: float | None) -> str:
    if a is None or b is None or figure.endswith("_per_s") or figure in ("instances", "functions", "client_busy_pct"):
        return "-"
    return ("+" if a - b >= 0 else "") + fmt(figure, a - b)


# -- the summary ------------------------------------------------------------------------------

# scenario, row, figure, label, budget, aim (lower is better; None: no budget, shown only)
HEADLINES: tuple[tuple[str, str, str, str, float | None, float | None], ...] = (
    ("sequential", "100 B", "daemon_cpu_us", "sequential 100 B: daemon CPU us/invoke", 400, 250),
    ("sequential", "100 B", "invokes_per_s", "sequential 100 B: invokes/s", None, None),
    ("sequential", "100 B", "p50_us", "sequential 100 B: p50 us", None, None),
    ("scaling", "1 instance", "invokes_per_s", "8 clients / 1 instance: invokes/s", None, None),
    ("scaling", "2 instances", "invokes_per_s", "8 clients / 2 instances: invokes/s", None, None),
    ("scaling", "4 instances", "invokes_per_s", "8 clients / 4 instances: invokes/s", None, None),
    ("scaling", "8 instances", "invokes_per_s", "8 clients / 8 instances: invokes/s", None, None),
    ("scaling", "4 instances", "daemon_cpu_us", "8 clients / 4 instances: daemon CPU us/invoke", 250, 150),
    ("scaling", "no host", "invokes_per_s", "8 clients, no host: invokes/s", None, None),
    ("large", "1 MB", "daemon_cpu_ms", "1 MB round trip: daemon CPU ms/invoke", 3, 2),
    ("large", "1 MB", "p50_ms", "1 MB round trip: p50 ms", 8, None),
    ("cold", "fresh function", "overhead_ms", "cold start: overhead over bare ms", 20, 5),
    ("cold", "fresh function", "first_ms", "cold start: invoke -> first response ms", None, None),
    ("cold", "fresh function", "bare_response_ms", "cold start: bare spawn -> response ms", None, None),
    ("cold", "new instance, running daemon", "overhead_ms", "cold start in a running daemon: overhead ms",
     None, None),
    ("idle", "@instances", "rss_mb", "idle: daemon RSS MiB, @n idle instances", None, None),
    ("idle", "@instances", "per_extra_kb", "idle: daemon KiB per extra idle instance", None, None),
    ("idle", "@polls", "rss_mb", "idle: daemon RSS MiB, @n idle long-polls", None, None),
    ("idle", "@polls", "per_extra_kb", "idle: daemon KiB per extra long-poll", None, None),
    ("async", "Event", "accepts_per_s", "async: accepts/s", None, None),
    ("async", "Event", "events_per_s", "async: end-to-end events/s", None, None),
    ("handler", "8 clients", "invokes_per_s", "handler (5 ms CPU), 8 clients: invokes/s", None, None),
    ("handler", "8 clients", "p50_ms", "handler (5 ms CPU), 8 clients: p50 ms", None, None),
    ("handler", "8 clients", "daemon_cpu_us", "handler (5 ms CPU), 8 clients: daemon CPU us/invoke", None, None),
)


def _resolve_row(rows: dict[str, dict[str, float]], row: str) -> tuple[str | None, str]:
    """Idle rows are named after their sizes; '@instances' and '@polls' find them."""
    if row == "@instances":
        for name in rows:
            if name.endswith("idle instances"):
                return name, name.split()[0]
        return None, ""
    if row == "@polls":
        for name in rows:
            if "long-polls" in name:
                return name, name.split()[0]
        return None, ""
    return (row if row in rows else None), ""


def summary(scenarios: dict[str, dict[str, Any]], targets: list[str]) -> list[dict[str, Any]]:
    out = []
    for name, row, fig, label, budget, aim in HEADLINES:
        sc = scenarios.get(name)
        if sc is None:
            continue
        values: dict[str, float | None] = {}
        n = ""
        for t in targets:
            meds = medians(sc["results"].get(t, {}))
            found, size = _resolve_row(meds, row)
            n = n or size
            values[t] = meds[found].get(fig) if found else None
        if row == "no host":
            values = {"floor": values.get("floor")}
        elif all(v is None for v in values.values()):
            continue
        verdict = ""
        rapid = values.get("rapid")
        if budget is not None:
            if rapid is None:
                verdict = "n/a"
            elif rapid <= budget:
                verdict = "ok (aim met)" if aim is not None and rapid <= aim else "ok"
            else:
                verdict = "over"
        out.append({"scenario": name, "row": row, "figure": fig, "label": label.replace("@n", n),
                    "values": values, "budget": budget, "aim": aim, "verdict": verdict})
    return out


def summary_table(entries: list[dict[str, Any]], targets: list[str]) -> str:
    cols = [t for t in targets if any(e["values"].get(t) is not None for e in entries)] or ["rapid"]
    rows = []
    for e in entries:
        cells = [fmt(e["figure"], e["values"].get(t)) if e["values"].get(t) is not None else "" for t in cols]
        budget = f"<= {e['budget']:g}" if e["budget"] is not None else ""
        aim = f"<= {e['aim']:g}" if e["aim"] is not None else ""
        rows.append([e["label"], *cells, budget, aim, e["verdict"]])
    heads = ["", *[TARGET_LABEL[t] for t in cols], "budget", "aim", "status"]
    widths = [max(len(str(r[i])) for r in [heads, *rows]) for i in range(len(heads))]
    lines = ["SUMMARY (medians; budget and aim from issue 4, daemon CPU on this machine)"]
    fmt_row = (lambda r: "    " + f"{r[0]:<{widths[0]}}" + "".join(f"  {c:>{w}}" for c, w in zip(r[1:], widths[1:])))
    lines.append(fmt_row(heads))
    lines += [fmt_row(r) for r in rows]
    return "\n".join(lines)


# -- issue 10's budgets: ratios from one run ----------------------------------------------

# label, scenario, row, figure, against (a target, or "rapid:SCENARIO:ROW:FIGURE" for rapid's
# own figure; "relay:...": the same for the relay floor, over its own figure), budget, higher
# is better
RATIO_BUDGETS: tuple[tuple[str, str, str, str, str, float, bool], ...] = (
    ("sequential 100 B: daemon CPU, rapid / RIE", "sequential", "100 B", "daemon_cpu_us", "rie", 0.5, False),
    ("sequential 100 B: invokes/s, rapid / RIE", "sequential", "100 B", "invokes_per_s", "rie", 1.25, True),
    ("sequential 100 B: p99, rapid / RIE", "sequential", "100 B", "p99_us", "rie", 0.6, False),
    ("sequential 100 B: daemon CPU, rapid / relay", "sequential", "100 B", "daemon_cpu_us", "relay", 2.0, False),
    ("1 MB: daemon CPU, rapid / RIE", "large", "1 MB", "daemon_cpu_ms", "rie", 0.15, False),
    ("8 clients / 4 instances: daemon CPU, over rapid's sequential", "scaling", "4 instances", "daemon_cpu_us",
     "rapid:sequential:100 B:daemon_cpu_us", 0.6, False),
    ("  the same for the relay floor (4 runtimes), over its own sequential", "scaling", "4 instances",
     "daemon_cpu_us", "relay:sequential:100 B:daemon_cpu_us", 0.6, False),
    ("cold: first invoke after a daemon start, rapid / RIE", "cold", "fresh function", "first_ms", "rie", 1.0,
     False),
    ("cold: the same, each over the bare start beside it, rapid / RIE", "cold", "fresh function", "over_bare_x",
     "rie", 1.0, False),
    # "ms": rapid's own figure per round (a difference already), not a ratio
    ("cold: a new instance's first response over a bare start, ms", "cold", "new instance, running daemon",
     "overhead_ms", "ms", 3.0, False),
    ("scale: 1,000 instances, daemon CPU over 1 instance", "scale", "1000 instances", "daemon_cpu_us",
     "rapid:scale:1 instance:daemon_cpu_us", 1.1, False),
    ("scale: 1,000 functions, daemon CPU over 1 function", "scale", "1000 functions", "daemon_cpu_us",
     "rapid:scale:1 function:daemon_cpu_us", 1.1, False),
    ("snapstart: a new SnapStart instance's first response over a bare start", "snapstart", "SnapStart instance",
     "first_ms", "rapid:snapstart:SnapStart instance:bare_ms", 1.0, False),
    ("snapstart, own uids (template and forks unprivileged): the same", "snapstart", "SnapStart, own uids",
     "first_ms", "rapid:snapstart:SnapStart, own uids:bare_ms", 1.0, False),
)


def ratio_budgets(scenarios: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each budget of issue 10 that this run measured: the per-round ratios and a verdict
    on their median."""
    out = []
    for label, name, row, fig, against, budget, higher in RATIO_BUDGETS:
        sc = scenarios.get(name)
        own = against.partition(":")[0] if ":" in against else "rapid"  # whose figures these are
        if sc is None or own not in sc["results"]:
            continue
        rapid = sc["results"][own]
        if against == "ms":
            values = [r["rows"][row][fig] for r in rapid.get("rounds", []) if fig in r.get("rows", {}).get(row, {})]
        elif ":" in against:
            _, other_sc, other_row, other_fig = against.split(":")
            base = scenarios.get(other_sc, {}).get("results", {}).get(own)
            if base is None:
                continue
            values = []
            for ra, rb in zip(rapid.get("rounds", []), base.get("rounds", [])):
                va = ra.get("rows", {}).get(row, {}).get(fig)
                vb = rb.get("rows", {}).get(other_row, {}).get(other_fig)
                if va is not None and vb:
                    values.append(va / vb)
        else:
            if against not in sc["results"]:
                continue
            values = round_ratios(rapid, sc["results"][against]).get(row, {}).get(fig, [])
        if not values:
            continue
        med = statistics.median(values)
        ok = med >= budget if higher else med <= budget
        out.append({"label": label, "ratios": values, "median": med, "budget": budget, "higher": higher,
                    "verdict": "ok" if ok else "over", "unit": "ms" if against == "ms" else "x"})
    return out


def ratio_table(entries: list[dict[str, Any]]) -> str:
    lines = ["BUDGETS (issue 10; median [min-max] of per-round ratios from this run)"]
    width = max(len(e["label"]) for e in entries)
    cells = [spread(e["ratios"], e.get("unit", "x")) for e in entries]
    cw = max(len(c) for c in cells)
    for e, cell in zip(entries, cells):
        budget = (">= " if e["higher"] else "<= ") + f"{e['budget']:g}"
        verdict = e["verdict"] if e["verdict"] == "ok" else ("under" if e["higher"] else "over")
        lines.append(f"    {e['label']:<{width}}  {cell:>{cw}}  {budget:>7}  {verdict}")
    return "\n".join(lines)
