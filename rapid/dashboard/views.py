"""The host as the dashboard sees it: plain JSON-ready dicts, read on demand.

Nothing here runs on the invoke path: a view is built when a page or a script asks for it
(a few times a second at most), from the host's own objects.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rapid.host.function import Function
    from rapid.host.host import Host
    from rapid.host.instance import Instance

_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def instance_state(inst: Instance) -> str:
    """The lifecycle state a person would name: starting, initialising, idle, frozen,
    busy, draining or dead."""
    if inst.dead:
        return "dead"
    if not inst.initialized:
        return "initialising" if inst.process is not None else "starting"
    if inst.running or inst.bound is not None:
        return "draining" if inst.retiring else "busy"
    if inst.retiring:
        return "draining"
    return "frozen" if inst.frozen else "idle"


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return round(int(f.read().split()[1]) * _PAGE_KB / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None


def instance_view(inst: Instance, now: float) -> dict[str, Any]:
    process = inst.process
    return {
        "id": inst.hex,
        "state": instance_state(inst),
        "provisioned": inst.provisioned,
        "uid": inst.uid,
        "pid": process.pid if process is not None else None,
        "memoryMB": _rss_mb(process.pid) if process is not None and process.alive else None,
        "peakMB": round(process.memory.peak_kb / 1024, 1) if process is not None else None,
        "ageSeconds": round(now - inst.born, 1),
        "invocations": inst.invokes,
        "running": list(inst.running),
    }


def function_view(fn: Function, pools: list[Function], now: float) -> dict[str, Any]:
    """A function by its ``$LATEST`` (or declared) pool, with the instances of every pool
    of its versions."""
    cfg = fn.config
    return {
        "name": fn.name,
        "arn": fn.arn,
        "version": fn.version,
        "runtime": cfg.runtime,
        "handler": cfg.handler,
        "memoryMB": fn.memory,
        "timeout": fn.timeout,
        "reservedConcurrency": fn.reserved,
        "provisionedConcurrency": fn.provisioned,
        "perInstanceConcurrency": fn.per_instance,
        "queued": sum(len(p.queue) for p in pools),
        "instances": [{**instance_view(i, now), "version": p.version} for p in pools for i in p.instances.values()],
    }


def host_view(host: Host) -> dict[str, Any]:
    now = time.monotonic()
    return {
        "region": host.region,
        "isolation": host.sandbox.describe(),
        "maxConcurrency": host.max_concurrency,
        "unreservedAvailable": host.unreserved_room(),
        "functions": [
            function_view(fn, host.pools_of(name) + [r for r in host.retired if r.name == name], now)
            for name, fn in sorted(host.functions.items())
        ],
    }
