"""What the figures were measured on, and what a process costs: CPU, memory, sockets.

Everything is read from ``/proc`` (Linux): CPU time from the scheduler's per-thread run
time (``/proc/PID/task/TID/schedstat``, nanoseconds), RSS from ``/proc/PID/status``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def rapid_version(root: str | None = None) -> str:
    """rapid's version (of the checkout at ``root``, else the importable one) and, in a git
    checkout, the commit it was measured at."""
    import re

    where = Path(root) if root else None
    version = "not importable"
    try:
        if where is None:
            import rapid

            version = rapid.__version__
            where = Path(rapid.__file__).resolve().parent.parent
        else:
            found = re.search(r'__version__ = "([^"]+)"', (where / "rapid" / "__init__.py").read_text())
            version = found.group(1) if found else "unknown"
    except (ImportError, OSError):
        pass  # the harness also measures other hosts without rapid
    rev = ""
    if where is not None:
        try:
            rev = subprocess.run(
                ["git", "-C", str(where), "describe", "--always", "--dirty"],
                check=False, capture_output=True, text=True, timeout=5,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return f"{version} (git {rev})" if rev else version


def machine_info(rapid_root: str | None = None) -> dict[str, object]:
    return {
        "cores": os.cpu_count(),
        "model": cpu_model(),
        "load": [round(x, 2) for x in os.getloadavg()],
        "kernel": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "rapid": rapid_version(rapid_root),
    }


def describe(info: dict[str, object] | None = None) -> str:
    m = info or machine_info()
    load = ", ".join(f"{x:.2f}" for x in m["load"])  # type: ignore[attr-defined]
    return (
        f"machine: {m['cores']} cores ({m['model']}), load {load}, {m['kernel']}, "
        f"Python {m['python']}, rapid {m['rapid']}"
    )


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` itself (all its live threads, not its children), in seconds.

    Read from ``/proc/PID/task/*/schedstat`` (the scheduler's run time, in nanoseconds),
    since ``/proc/PID/stat`` counts in 10 ms clock ticks, too coarse for a few hundred
    microseconds per invoke; falls back to ``stat`` where schedstat is missing."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tids = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return _stat_cpu(pid)
    if not tids:
        return _stat_cpu(pid)
    return total / 1e9


def _stat_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (tells a process from a later one with its pid)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            return None
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def tree_cpu(pid: int) -> float:
    """CPU of every live descendant of ``pid`` (the runtimes a host supervises)."""
    total = 0.0
    for child in descendants(pid):
        try:
            total += cpu_seconds(child)
        except OSError:
            pass
    return total


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def sockets(pid: int) -> int:
    """How many sockets ``pid`` holds open (listeners and connections)."""
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    n += 1
            except OSError:
                continue
    except OSError:
        pass
    return n


def is_runtime(pid: int) -> bool:
    """Whether ``pid`` is a runtime process: it was given ``AWS_LAMBDA_RUNTIME_API``."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return b"AWS_LAMBDA_RUNTIME_API=" in f.read()
    except OSError:
        return False


def runtimes(pid: int) -> list[int]:
    """The live runtime processes under a host (its guardian and helpers left out); a
    runtime's own children are not counted twice."""
    found = [p for p in descendants(pid) if start_time(p) is not None and is_runtime(p)]
    tops = set(found)
    return [p for p in found if _ppid(p) not in tops]


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def family(pid: int) -> list[int]:
    """``pid`` and every live descendant: a runtime's whole process tree."""
    return [pid, *descendants(pid)]


def family_cpu(pid: int) -> float:
    """CPU seconds of a runtime's process tree, the runtime itself included (the CPU of
    children that have already exited is not counted: /proc keeps it only once reaped)."""
    total = 0.0
    for p in family(pid):
        try:
            total += cpu_seconds(p)
        except OSError:
            pass
    return total


def family_rss_kb(pid: int) -> int:
    """Resident memory of a runtime's process tree now, in KiB."""
    return sum(_status_kb(p, "VmRSS:") for p in family(pid))


def family_peak_kb(pid: int) -> int:
    """The sum of each live process's peak resident memory (``VmHWM``), in KiB."""
    return sum(_status_kb(p, "VmHWM:") for p in family(pid))


def family_pss_kb(pid: int) -> int:
    """Proportional resident memory (``Pss`` of ``/proc/PID/smaps_rollup``) of a runtime's
    process tree, in KiB: pages a fork shares with its parent count once in all, where a
    sum of RSS would count them in both. Falls back to RSS where smaps_rollup is missing."""
    total = 0
    for p in family(pid):
        pss = _rollup_kb(p, "Pss:")
        total += pss if pss is not None else _status_kb(p, "VmRSS:")
    return total


def _rollup_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def reaped_cpu(pid: int) -> float:
    """CPU seconds of the children ``pid`` has already waited for (``cutime + cstime`` of
    ``/proc/PID/stat``): what a shell runtime's short-lived curl processes cost, which no
    live process holds any more. Counted in clock ticks (10 ms), summed by the kernel."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0
