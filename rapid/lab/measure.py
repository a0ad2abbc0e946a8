"""``rapid bench``: what a runtime costs, under rapid's real host, round by round.

Each round runs every runtime in turn (A, B, C, then A, B, C again in the next round), so
slow drifts of the machine fall on all of them alike, and ratios are taken per round.
For each runtime, a round is:

1. **cold start**: no instance; one 100 B echo starts a fresh one. Figures: spawn to its
   first ``GET /next`` (``cold_next_ms``), and spawn to its first ``/response``
   (``cold_response_ms``). Spawn is the moment rapid forks it; what rapid does before
   (opening the instance's Runtime API, preparing its sandbox) is left out.
2. **warm echoes**: a few unmeasured invokes, then ``n`` of 100 B and ``m`` of 1 MB, one at
   a time. Latency is the **runtime's own**, read at rapid's Runtime API edge: from the
   moment rapid hands the event to the runtime's socket (the ``/next`` answer) to the
   moment it has parsed the runtime's whole ``/response``. rapid's own time per invoke
   (queueing, dispatch, settling, START/END/REPORT) is the rest of the end-to-end time and
   is reported apart (``host_us``), not subtracted by guesswork. What cannot be separated:
   the loopback copy of both bodies and rapid's parsing of the response while it arrives;
   they sit inside the runtime figures (the ``floor`` of ``python -m benchmarks`` measures
   them for rapid alone).
3. **CPU per invoke**: of the runtime's process tree, from ``/proc`` (scheduler run time of
   the live processes, plus what the runtime's reaped children used), over the measured
   invokes. rapid's own process is not in it; its CPU per invoke is ``host_cpu_us`` (it
   includes this driver, a few microseconds).
4. **peak memory**: the instance's peak as REPORT's ``Max Memory Used`` measures it (its
   memory cgroup's peak where rapid has one, else the runtime process's ``VmHWM``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rapid.lab import machine, stats
from rapid.lab.rig import Call, Rig, Spec

WARMUP = 5
SIZES = {"100 B": 100, "1 MB": 1024 * 1024}
FIGURES = [
    ("cold_next_ms", "cold: spawn to first /next", "ms"),
    ("cold_response_ms", "cold: spawn to first response", "ms"),
    ("small_p50_us", "100 B echo: p50", "us"),
    ("small_p99_us", "100 B echo: p99", "us"),
    ("small_cpu_us", "100 B echo: runtime CPU/invoke", "us"),
    ("small_return_us", "100 B echo: response to next /next", "us"),
    ("large_p50_us", "1 MB echo: p50", "us"),
    ("large_p99_us", "1 MB echo: p99", "us"),
    ("large_cpu_us", "1 MB echo: runtime CPU/invoke", "us"),
    ("peak_rss_mib", "peak RSS", "MiB"),
    ("small_host_us", "rapid's own time/invoke, 100 B (not above)", "us"),
    ("small_host_cpu_us", "rapid's own CPU/invoke, 100 B (not above)", "us"),
]


class BenchError(Exception):
    """A runtime did not answer as it must for the measurement (it fails the round)."""


@dataclass
class Plan:
    rounds: int = 3
    small: int = 300
    large: int = 60


def echo_event(total: int) -> bytes:
    head = b'{"op":"echo","data":""}'
    return head[:-2] + b"x" * max(0, total - len(head)) + head[-2:]


async def _one(rig: Rig, name: str, payload: bytes) -> Call:
    call = await rig.invoke(name, payload)
    if not call.ok or len(call.outcome.body) < len(payload) - 8:
        o = call.outcome
        text = o.body[:200].decode("utf-8", "replace")
        raise BenchError(f"{name}: the echo failed ({o.error_type or 'short response'}: {text})")
    return call


def _runtime_us(rig: Rig, call: Call) -> float:
    given, answer = rig.tap.delivery(call.request_id), rig.tap.answer(call.request_id)
    if given is None or answer is None:
        raise BenchError("the tap missed an exchange")
    return (answer.received - given.answered) * 1e6


async def _warm(rig: Rig, name: str, payload: bytes, n: int, tick: Callable[[], None]) -> dict[str, Any]:
    for _ in range(WARMUP):
        await _one(rig, name, payload)
    await rig.until_idle(name)
    fn = rig.function(name)
    inst = next(iter(fn.instances.values()))
    assert inst.process is not None
    pid = inst.process.pid
    own = os.getpid()
    cpu0 = machine.family_cpu(pid) + machine.reaped_cpu(pid)
    host0 = machine.cpu_seconds(own)
    runtime, host, back = [], [], []
    for _ in range(n):
        # Each invoke finds the runtime parked at /next (Rig.invoke waits for it), as a warm
        # Lambda invoke does; the time it took to get back there is measured apart.
        call = await _one(rig, name, payload)
        r = _runtime_us(rig, call)
        runtime.append(r)
        host.append((call.settled - call.submitted) * 1e6 - r)
        answer = rig.tap.answer(call.request_id)
        await rig.until_idle(name, timeout=30.0)
        again = rig.tap.exchanges[-1]
        if answer is not None and again.kind == "next" and again.received >= answer.received:
            back.append((again.received - answer.received) * 1e6)
        tick()
    await rig.until_idle(name)
    cpu1 = machine.family_cpu(pid) + machine.reaped_cpu(pid)
    host1 = machine.cpu_seconds(own)
    if len(fn.instances) != 1 or next(iter(fn.instances.values())) is not inst:
        raise BenchError(f"{name}: the runtime was replaced during the warm invokes")
    return {
        "p50_us": stats.percentile(runtime, 50), "p99_us": stats.percentile(runtime, 99),
        "cpu_us": (cpu1 - cpu0) / n * 1e6, "host_us": stats.median(host),
        "host_cpu_us": (host1 - host0) / n * 1e6, "return_us": stats.median(back),
        "samples_us": [round(x, 1) for x in runtime],
    }


async def one_round(rig: Rig, name: str, plan: Plan, tick: Callable[[], None]) -> dict[str, Any]:
    await rig.stop_instances(name)
    small, large = echo_event(SIZES["100 B"]), echo_event(SIZES["1 MB"])
    first = await _one(rig, name, small)
    inst = rig.instance_of(first.request_id)
    given, answer = rig.tap.delivery(first.request_id), rig.tap.answer(first.request_id)
    nexts = [e for e in rig.tap.of(name, inst.id if inst else None) if e.kind == "next"]
    if inst is None or given is None or answer is None or not nexts:
        raise BenchError(f"{name}: the cold start was not seen whole")
    out: dict[str, Any] = {
        "cold_next_ms": (nexts[0].received - inst.spawned_at) * 1000.0,
        "cold_response_ms": (answer.received - inst.spawned_at) * 1000.0,
    }
    tick()
    s = await _warm(rig, name, small, plan.small, tick)
    m = await _warm(rig, name, large, plan.large, tick)
    out.update({f"small_{k}": v for k, v in s.items()})
    out.update({f"large_{k}": v for k, v in m.items()})
    process = inst.process
    if process is not None:
        process.memory.sample()
        out["peak_rss_mib"] = process.memory.peak_kb / 1024.0
    return out


async def run(specs: list[Spec], task_root: str, plan: Plan, tick: Callable[[str | None], None]) -> dict[str, Any]:
    """Every round of every runtime; the raw figures, per round, and their summary."""
    rounds: list[list[dict[str, Any]]] = []
    async with Rig(shutdown_timeout=2.0) as rig:
        names = []
        for i, spec in enumerate(specs):
            name = f"runtime-{i + 1}"
            rig.add(name, spec, task_root)
            names.append(name)
        for r in range(plan.rounds):
            row = []
            for i, name in enumerate(names):
                tick(f"round {r + 1}/{plan.rounds}: {specs[i].describe()}")
                try:
                    row.append(await one_round(rig, name, plan, lambda: tick(None)))
                except (BenchError, asyncio.TimeoutError, TimeoutError) as exc:
                    row.append({"error": str(exc) or "no answer in time"})
                await rig.stop_instances(name)
            rounds.append(row)
    return {"rounds": rounds, "summary": summarise(rounds, len(specs))}


def summarise(rounds: list[list[dict[str, Any]]], count: int) -> list[dict[str, Any]]:
    """Per runtime: the median of each figure over its rounds and, for every runtime after
    the first, the per-round ratio to the first (median [min-max])."""
    out = []
    keys = [k for k, _label, _unit in FIGURES]
    for i in range(count):
        mine = [row[i] for row in rounds if "error" not in row[i]]
        entry: dict[str, Any] = {
            "figures": {k: stats.median([r[k] for r in mine if k in r]) for k in keys if any(k in r for r in mine)},
            "errors": [row[i]["error"] for row in rounds if "error" in row[i]],
        }
        if i:
            ratios = {}
            for k in keys:
                pairs = [row[i][k] / row[0][k] for row in rounds
                         if k in row[i] and k in row[0] and row[0][k] and "error" not in row[0]]
                if pairs:
                    ratios[k] = stats.spread(pairs)
            entry["ratios_to_first"] = ratios
        out.append(entry)
    return out


def table(labels: list[str], summary: list[dict[str, Any]]) -> str:
    """The terminal table: a column per runtime (medians over the rounds), and a ratio
    column per runtime after the first."""
    heads = [f"[{chr(65 + i)}]" for i in range(len(labels))]
    cols = ["figure", *heads, *[f"{h} / [A]" for h in heads[1:]]]
    rows = []
    for key, label, unit in FIGURES:
        cells = [f"{label} ({unit})"]
        for entry in summary:
            v = entry["figures"].get(key)
            cells.append("-" if v is None else (f"{v:,.1f}" if v < 100 else f"{v:,.0f}"))
        for entry in summary[1:]:
            cells.append(stats.ratio_text(entry.get("ratios_to_first", {}).get(key, {})))
        rows.append(cells)
    widths = [max(len(r[c]) for r in [cols, *rows]) for c in range(len(cols))]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths)))
             for r in [cols, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    legend = [f"  {h} {label}" for h, label in zip(heads, labels)]
    return "\n".join(legend + [""] + lines)
