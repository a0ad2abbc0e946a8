"""``rapid bench``: what a runtime costs, measured under rapid's host (``rapid.lab.measure``).

    rapid bench [options] -- CMD [ARGS...]        [--against 'CMD ARGS']...
    rapid bench --runtime python|node|shell        [--against 'CMD ARGS']...

Prints the machine, then a table: a column per runtime (medians over the rounds) and, for
each ``--against`` runtime, its per-round ratio to the first (median [min-max]). A progress
bar runs on stderr when it is a terminal. ``--json PATH`` writes the raw rounds and the
summary; ``--plot DIR`` draws PNGs (needs matplotlib: ``pip install 'rapid[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rapid.cli.check import absolute_command, add_runtime_options, spec_from


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    b = sub.add_parser(
        "bench",
        help="measure a runtime: cold start, warm latency and CPU per invoke, memory",
        usage="rapid bench [options] [--against 'CMD ARGS']... [-- CMD [ARGS...]]",
        description="Measure a runtime under rapid: cold start (spawn to first /next and to first response), "
        "warm 100 B and 1 MB echo p50/p99 and runtime CPU per invoke, peak RSS; with --against, other runtimes "
        "side by side in alternating rounds, with per-round ratios.",
    )
    add_runtime_options(b)
    b.add_argument("--against", action="append", default=[], metavar="'CMD ARGS'",
                   help="another runtime command to measure beside it (same task root and handler); repeatable")
    b.add_argument("--rounds", type=int, default=3, help="rounds per runtime (default 3)")
    b.add_argument("-n", "--invokes", type=int, default=300, help="warm 100 B echoes per round (default 300)")
    b.add_argument("--large", type=int, default=None, help="warm 1 MB echoes per round (default n / 5)")
    b.add_argument("--json", metavar="PATH", help="write the raw results here")
    b.add_argument("--plot", metavar="DIR", help="draw PNGs into DIR (needs matplotlib)")


def run(ns: argparse.Namespace, command: list[str] | None) -> int:
    from rapid.lab import machine, measure
    from rapid.lab.progress import Progress
    from rapid.lab.rig import Spec, task_root_with_handlers
    from rapid.lab.session import cleanup_task_root

    if ns.rounds < 1 or ns.invokes < 1 or (ns.large is not None and ns.large < 1):
        print("rapid bench: error: --rounds, -n and --large must be at least 1", file=sys.stderr)
        return 2
    plan = measure.Plan(rounds=ns.rounds, small=ns.invokes, large=ns.large or max(1, ns.invokes // 5))
    scratch = task_root_with_handlers()
    try:
        first, root = spec_from(ns, command, scratch)
        specs = [first]
        for text in ns.against:
            argv = shlex.split(text)
            if not argv:
                print("rapid bench: error: --against needs a command", file=sys.stderr)
                return 2
            specs.append(Spec(command=absolute_command(argv), handler=first.handler,
                              environment=dict(first.environment), memory=first.memory))
        started = datetime.now()
        info = machine.machine_info()
        labels = [s.describe() for s in specs]
        print(f"rapid bench, {started:%Y-%m-%d %H:%M:%S}")
        print(machine.describe(info))
        print(f"rounds: {plan.rounds}, alternating; per round {plan.small} x 100 B and {plan.large} x 1 MB warm "
              f"echoes after a cold start; memory size {first.memory} MB", flush=True)
        per_round = 1 + plan.small + plan.large
        progress = Progress(plan.rounds * len(specs), lines_off_tty=False)
        state = {"n": 0}

        def tick(label: str | None) -> None:
            if label is not None:
                if state["n"]:
                    progress.finish_step()
                state["n"] = 0
                progress.step(label)
            else:
                state["n"] += 1
                progress.update(state["n"] / per_round)

        import uvloop

        try:
            result = uvloop.run(measure.run(specs, root, plan, tick))
        except KeyboardInterrupt:
            progress.clear()
            print("rapid bench: interrupted", file=sys.stderr)
            return 130
        progress.finish_step()
        progress.clear()
        print()
        print(measure.table(labels, result["summary"]))
        print()
        print("  Latency and CPU are the runtime's own: read at rapid's Runtime API edge, from the event handed to its")
        print("  socket to its whole response parsed; rapid's own time and CPU per invoke are the last two rows, not")
        print("  in the others. Not separable: loopback copies and rapid's parse of the response as it arrives.")
        failed = False
        for label, entry in zip(labels, result["summary"]):
            for err in entry["errors"]:
                failed = True
                print(f"  error: {label}: {err}")
        out: dict[str, Any] = {
            "tool": "rapid bench", "format": 1, "started": started.isoformat(timespec="seconds"),
            "machine": info,
            "settings": {"rounds": plan.rounds, "invokes": {"100 B": plan.small, "1 MB": plan.large},
                         "memory_mb": first.memory, "handler": first.handler},
            "runtimes": [{"label": label, "command": s.command, "path": s.path, "runtime": s.runtime}
                         for label, s in zip(labels, specs)],
            "figures": {key: {"label": label, "unit": unit} for key, label, unit in measure.FIGURES},
            **result,
        }
        if ns.json:
            Path(ns.json).parent.mkdir(parents=True, exist_ok=True)
            Path(ns.json).write_text(json.dumps(out, indent=1))
            print(f"  raw results: {ns.json}")
        if ns.plot:
            try:
                from rapid.lab.plot import plot_all
            except ImportError:
                print("  --plot: matplotlib is not installed; pip install 'rapid[bench]' (or matplotlib)")
            else:
                for f in plot_all(out, ns.plot):
                    print(f"  plot: {f}")
        return 1 if failed else 0
    finally:
        cleanup_task_root(scratch)
