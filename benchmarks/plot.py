"""PNG plots of a run's results (``--plot DIR``): latency distributions and the scaling curve.

Needs matplotlib (optional: ``pip install 'rapid[bench]'``); it is imported here only, so
the harness runs without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.report import TARGET_LABEL, medians


def plot_all(results: dict[str, Any], folder: str) -> list[str]:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, sc in results.get("scenarios", {}).items():
        f = latency(name, sc, out)
        if f:
            files.append(f)
    if "scaling" in results.get("scenarios", {}):
        f = scaling(results["scenarios"]["scaling"], out)
        if f:
            files.append(f)
    return files


def _samples(sc: dict[str, Any]) -> dict[str, list[float]]:
    """Per (row, target): every round's latency samples, in us."""
    series: dict[str, list[float]] = {}
    for target, res in sc["results"].items():
        for rnd in res.get("rounds", []):
            for row, values in rnd.get("samples", {}).items():
                label = f"{row} - {TARGET_LABEL[target]}" if row else TARGET_LABEL[target]
                series.setdefault(label, []).extend(values)
    return {k: v for k, v in series.items() if len(v) >= 2}


def latency(name: str, sc: dict[str, Any], out: Path) -> str | None:
    """The distribution of each series' latencies as a CDF on a log axis."""
    series = _samples(sc)
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for label, values in series.items():
        s = sorted(values)
        n = len(s)
        ax.plot([v / 1000 for v in s], [100 * (i + 1) / n for i in range(n)], label=f"{label} (n={n})")
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log)")
    ax.set_ylabel("percentile")
    ax.set_title(f"({sc['number']}) {sc['title']}: latency distribution", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, sc["workload"][:180], fontsize=6, alpha=0.7)
    path = out / f"latency-{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def scaling(sc: dict[str, Any], out: Path) -> str | None:
    """Throughput and CPU per invoke against the number of instances, per host."""
    meds = {t: medians(r) for t, r in sc["results"].items()}
    curves = {}
    for target, rows in meds.items():
        points = sorted((int(row.split()[0]), figs) for row, figs in rows.items() if row.split()[0].isdigit())
        if points:
            curves[target] = points
    if not curves:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    xs: list[int] = []
    for target, points in curves.items():
        xs = sorted({*xs, *(n for n, _ in points)})
        a.plot([n for n, _ in points], [f["invokes_per_s"] for _, f in points], "o-", label=TARGET_LABEL[target])
        for fig_name, marker, what in (("daemon_cpu_us", "o-", "daemon"), ("runtime_cpu_us", "s--", "runtimes"),
                                       ("client_cpu_us", "^:", "client")):
            b.plot([n for n, _ in points], [f[fig_name] for _, f in points], marker,
                   label=f"{TARGET_LABEL[target]}: {what}")
    floor = meds.get("floor", {}).get("no host")
    top = max(f["invokes_per_s"] for points in curves.values() for _, f in points)
    if floor and floor["invokes_per_s"] <= 3 * top:
        a.axhline(floor["invokes_per_s"], linestyle="--", color="gray", label="floor (no host)")
    elif floor:
        a.set_title(f"floor (no host): {floor['invokes_per_s']:,.0f} invokes/s, off the scale", fontsize=9)
    a.set_ylim(bottom=0)
    a.set_xlabel("instances (8 clients)")
    a.set_ylabel("invokes/s")
    a.set_xticks(xs)
    a.grid(True, alpha=0.3)
    a.legend(fontsize=8)
    b.axhline(250, linestyle=":", color="red", label="daemon budget at 4 instances (250 us)")
    b.set_ylim(bottom=0)
    b.set_xlabel("instances (8 clients)")
    b.set_ylabel("CPU us per invoke")
    b.set_xticks(xs)
    b.grid(True, alpha=0.3)
    b.legend(fontsize=7)
    fig.suptitle(f"(2) {sc['title']}", fontsize=11)
    path = out / "scaling.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return str(path)
