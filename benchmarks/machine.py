"""What the figures were measured on, and CPU time of a process and its children."""

from __future__ import annotations

import os
import platform
import sys


def describe() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    model = "unknown cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"machine: {os.cpu_count()} cores ({model}), load {load}, "
        f"Linux {platform.release()}, Python {sys.version.split()[0]}"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` itself (not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out


def tree_cpu(pid: int) -> float:
    total = 0.0
    for child in children(pid):
        try:
            total += cpu_seconds(child) + tree_cpu(child)
        except OSError:
            pass
    return total
