"""PNGs of a ``rapid bench`` run (``--plot DIR``): the warm latency distributions (100 B
and 1 MB echo, every round's samples) and the cold starts, one series per runtime.
Needs matplotlib (``pip install 'rapid[bench]'``); importing this module without it raises
ImportError, which the command reports."""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_all(results: dict[str, Any], folder: str) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    labels = [f"[{chr(65 + i)}] {r['label'][:60]}" for i, r in enumerate(results["runtimes"])]
    rounds = results["rounds"]
    files = []
    for key, title in (("small_samples_us", "100 B echo"), ("large_samples_us", "1 MB echo")):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for i, label in enumerate(labels):
            samples = sorted(x for row in rounds if key in row[i] for x in row[i][key])
            if samples:
                ax.plot(samples, [(k + 1) / len(samples) for k in range(len(samples))], label=label)
        ax.set_xscale("log")
        ax.set_xlabel("runtime latency per invoke (us, log scale)")
        ax.set_ylabel("fraction of invokes")
        ax.set_title(f"{title}: the runtime's own latency, every round")
        ax.legend(fontsize=7)
        path = os.path.join(folder, f"latency-{key.split('_')[0]}.png")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        for j, key in enumerate(("cold_next_ms", "cold_response_ms")):
            values = [row[i][key] for row in rounds if key in row[i]]
            ax.scatter([j + (i - (len(labels) - 1) / 2) * width] * len(values), values, label=label if j == 0 else None,
                       color=f"C{i}")
    ax.set_xticks([0, 1], ["spawn to first /next", "spawn to first response"])
    ax.set_ylabel("ms (every round)")
    ax.set_title("cold start")
    ax.legend(fontsize=7)
    path = os.path.join(folder, "cold-start.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path)
    return files
