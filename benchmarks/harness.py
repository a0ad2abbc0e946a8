"""rapid's benchmark harness: every scenario of issue 4, one command.

    python -m benchmarks [--quick] [--only NAME[,NAME]] [--against 'CMD' | --against-rie [PATH]] [--rounds R]
                         [-n N] [--json PATH] [--plot DIR] [--runtime-python PATH]

Scenarios (``--only`` takes these names, comma-separated):

  sequential  (1) sequential 100 B echo: invokes/s, p50/p90/p99, CPU per invoke of the
              daemon, the runtime and the client
  scaling     (2) 8 concurrent clients over 1, 2, 4, 8 instances
  large       (3) 1 MB round trip: p50 and daemon CPU per invoke
  cold        (4) cold start of a fresh function against a bare start of the bootstrap
  idle        (5) daemon RSS with 100 idle instances and with 1,000 idle long-polls
  async       (6) Event invokes: accepts/s and end-to-end events/s (n/a until they work)
  handler     (7) the bundled Python runtime, 5 ms of CPU per invoke, 8 clients
  scale       daemon CPU per invoke with 1, 100, 1,000 instances of one function and with
              1, 100, 1,000 functions (per-invoke cost must not grow with the host)
  snapstart   a new SnapStart instance's first response (forked from the initialised
              template) and an on-demand one's, each over a bare start of the same
              bundled-runtime handler that imports boto3
  floor       the same load client against an echo server with no host in between, for
              the scenarios where that means something (sequential, scaling, large)
  relay       the relay floor (benchmarks/relay.py): the smallest host, one invoke port, one
              Runtime API port, one runtime, bodies forwarded with no bookkeeping
              (sequential, large; scaling with 4 runtimes, the row issue 10's
              8-client budget reads, to show what the floor itself reaches there)

``--against-rie [PATH]`` puts the AWS Runtime Interface Emulator (classic mode; default
../shared/peers/aws-lambda-rie beside the repo) and the relay floor beside rapid on the
sequential, large and cold scenarios (the concurrent row says RIE cannot take concurrent
load), alternating rapid, RIE, relay round by round (5 rounds unless --rounds), and shows
rapid / RIE and rapid / relay as the median and [min-max] of the per-round ratios, with
issue 10's budgets marked ok/over.

Every scenario runs against rapid; with ``--against 'CMD'`` also against another
Runtime-API host started by CMD, where ``{port}`` and ``{bootstrap}`` are filled in, e.g.
``aws-lambda-rie --runtime-interface-emulator-address 127.0.0.1:{port} {bootstrap}``; it is
invoked at /2015-03-31/functions/function/invocations. Targets alternate A B (floor) A B
over the rounds (default 1, 3 when comparing); tables show per-figure medians and, for the
other host, the median of the per-round ratios. A scenario the other host cannot do is
n/a. ``--against-rapid DIR`` compares with another rapid checkout on every scenario (what
an optimisation bought); ``--rapid-root DIR`` measures a checkout other than the installed
one. The summary holds rapid's headline figures next to the budget of issue 4.

The machine is at the top; a progress bar runs on stderr; the raw results go to JSON
(default benchmarks/results/<timestamp>.json); ``--plot DIR`` draws the latency
distributions and the scaling curve (needs matplotlib: pip install 'rapid[bench]').
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import machine, procs, report
from benchmarks.client import ProtocolError
from benchmarks.scale import Scale
from benchmarks.snapstart import SnapStart
from benchmarks.scenarios import SCENARIOS as BASE_SCENARIOS
from benchmarks.scenarios import Context, NotApplicable, Round, Scenario, Sizes, Target
from rapid.lab.progress import Progress

HERE = Path(__file__).resolve().parent
SCENARIOS = (*BASE_SCENARIOS, Scale(), SnapStart())
NAMES = [s.name for s in SCENARIOS] + ["floor", "relay"]
FLOOR_SCENARIOS = ("sequential", "scaling", "large")
RELAY_SCENARIOS = ("sequential", "scaling", "large")
RIE_SCENARIOS = ("sequential", "large", "cold")
RIE_NO_CONCURRENCY = ("RIE serves one invocation at a time: a second concurrent invoke makes it panic "
                      "(nil pointer dereference in rapidcore/server.go, upstream issues #97 and #131)")
DEFAULT_RIE = str(HERE.parent.parent / "shared" / "peers" / "aws-lambda-rie")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small workloads, for a fast look (figures are noisier)")
    p.add_argument("--only", help=f"comma-separated scenarios: {', '.join(NAMES)} (default: all)")
    p.add_argument("--against", metavar="CMD", help="another host's command, with {port} and {bootstrap}")
    p.add_argument("--against-rie", metavar="PATH", nargs="?", const=DEFAULT_RIE,
                   help="compare with the AWS Runtime Interface Emulator (default ../shared/peers/aws-lambda-rie "
                        "beside the repo) and the relay floor (benchmarks/relay.py), side by side on the "
                        "sequential, large and cold scenarios")
    p.add_argument("--against-rapid", metavar="DIR",
                   help="compare with the rapid checkout in DIR (every scenario, pools included), "
                        "e.g. a `git worktree` of the commit before an optimisation")
    p.add_argument("--rapid-root", metavar="DIR", help="measure the rapid checkout in DIR instead of the installed one")
    p.add_argument("--rounds", type=int, help="rounds per target (default 1; 3 with --against)")
    p.add_argument("-n", "--invokes", type=int, help="invokes of the sequential scenario (default 3000; quick 300)")
    p.add_argument("--json", metavar="PATH", help="raw results (default benchmarks/results/<timestamp>.json)")
    p.add_argument("--plot", metavar="DIR", help="draw PNGs into DIR (needs matplotlib)")
    p.add_argument("--replot", metavar="JSON", help="only draw --plot from an earlier run's JSON")
    p.add_argument("--runtime-python", metavar="PATH",
                   help="interpreter of the echo bootstrap (default /usr/bin/python3 if present, else this one)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (hosts' logs) and print it")
    p.add_argument("--rapid-env", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting for every rapid started (e.g. RAPID_FREEZE_WITH=cgroup); repeatable")
    args = p.parse_args(argv)
    for item in args.rapid_env:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--rapid-env {item!r}: expected KEY=VALUE")
        procs.RAPID_ENV[key] = value
    if args.only:
        wanted = [x.strip() for x in args.only.split(",") if x.strip()]
        unknown = [x for x in wanted if x not in NAMES]
        if unknown:
            p.error(f"--only: unknown scenario {', '.join(unknown)} (choose from {', '.join(NAMES)})")
        args.selected = wanted
    else:
        args.selected = list(NAMES)
    if sum(bool(x) for x in (args.against, args.against_rapid, args.against_rie)) > 1:
        p.error("--against, --against-rie and --against-rapid are exclusive")
    if args.against_rie:
        rie = Path(args.against_rie).resolve()
        if not os.access(rie, os.X_OK):
            p.error(f"--against-rie: {rie} is not an executable (build it as ../shared/peers/README.md says)")
        args.against_rie = str(rie)
        if not args.only:
            args.selected = ["sequential", "scaling", "large", "cold", "scale", "relay"]
        elif "relay" not in args.selected:
            args.selected.append("relay")
    for flag in ("against_rapid", "rapid_root"):
        folder = getattr(args, flag)
        if folder:
            if not Path(folder, "rapid", "__init__.py").is_file():
                p.error(f"--{flag.replace('_', '-')}: {folder} holds no rapid package (rapid/__init__.py)")
            setattr(args, flag, str(Path(folder).resolve()))
    args.comparing = bool(args.against or args.against_rapid)
    if args.rounds is None:
        args.rounds = 5 if args.against_rie else 3 if args.comparing else 1
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.invokes is not None and args.invokes < 1:
        p.error("-n must be at least 1")
    if args.replot and not args.plot:
        p.error("--replot needs --plot DIR")
    return args


def runtime_python(choice: str | None) -> str:
    if choice:
        return choice
    system = "/usr/bin/python3"
    return system if os.access(system, os.X_OK) else sys.executable


def make_function(workdir: str, python: str) -> tuple[str, str]:
    """The echo function: a folder any user may read, with an executable ``bootstrap``."""
    folder = Path(workdir, "echo")
    folder.mkdir(mode=0o755)
    source = (HERE / "echo_bootstrap.py").read_text().split("\n", 1)[1]
    bootstrap = folder / "bootstrap"
    bootstrap.write_text(f"#!{python}\n" + source)
    bootstrap.chmod(0o755)
    return str(folder), str(bootstrap)


def targets_for(sc: Scenario, specs: dict[str, Target]) -> list[tuple[str, str]]:
    """(target, why not) for each target shown in this scenario's table."""
    out = []
    for t, spec in specs.items():
        if spec.kind == "floor" and sc.name not in FLOOR_SCENARIOS:
            continue
        if spec.kind == "relay" and sc.name not in RELAY_SCENARIOS:
            continue
        if spec.kind == "rie":
            if sc.name == "scaling":
                out.append((t, RIE_NO_CONCURRENCY))
            elif sc.name in RIE_SCENARIOS:
                out.append((t, ""))
            continue
        why = sc.unsupported(spec.kind)
        if why is None:
            continue
        out.append((t, why))
    return out


def run(args: argparse.Namespace) -> int:
    started = datetime.now()
    t_start = time.monotonic()
    info = machine.machine_info(args.rapid_root)
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.invokes:
        sizes.sequential = args.invokes
        sizes.sequential_warm = min(sizes.sequential_warm, args.invokes)
    scenarios = [s for s in SCENARIOS if s.name in args.selected]
    specs = {"rapid": Target("rapid", root=args.rapid_root or "")}
    if args.against:
        specs["other"] = Target("command", command=args.against)
    elif args.against_rapid:
        specs["other"] = Target("rapid", root=args.against_rapid)
    elif args.against_rie:
        specs["rie"] = Target("rie", command=args.against_rie)
    if "relay" in args.selected:
        specs["relay"] = Target("relay")
    if "floor" in args.selected:
        specs["floor"] = Target("floor")
    targets = list(specs)
    hosts = {t: spec.describe() for t, spec in specs.items()}

    print(f"rapid benchmarks, {started:%Y-%m-%d %H:%M:%S}")
    print(machine.describe(info))
    if args.rapid_root:
        print(f"rapid: the checkout in {args.rapid_root}")
    if args.comparing:
        print(f"other: {hosts['other']}")
    for t in ("rie", "relay"):
        if t in hosts:
            print(f"{t}: {hosts[t]}")
    print(f"rounds: {args.rounds} per target{', quick workloads' if args.quick else ''}; "
          f"echo bootstrap on {runtime_python(args.runtime_python)}")
    print(flush=True)
    if not scenarios:
        print("nothing to run: --only names no scenario (floor and relay go with sequential, scaling or large)")
        return 2

    workdir = tempfile.mkdtemp(prefix="rapid-bench-")
    os.chmod(workdir, 0o755)  # runtimes that run under their own uid reach the function
    logs = os.path.join(workdir, "logs")
    os.mkdir(logs)
    function_dir, bootstrap = make_function(workdir, runtime_python(args.runtime_python))
    ctx = Context(sizes, workdir, logs, function_dir, bootstrap, str(HERE / "handler"), specs)

    plan = [(sc, targets_for(sc, specs)) for sc in scenarios]
    steps = sum(args.rounds * sum(1 for _t, why in tt if not why) for _sc, tt in plan)
    progress = Progress(steps)
    ctx.progress = progress.update
    out: dict[str, Any] = {
        "harness": "python -m benchmarks", "format": 1,
        "started": started.isoformat(timespec="seconds"), "argv": sys.argv[1:],
        "machine": info, "hosts": hosts,
        "settings": {"quick": args.quick, "rounds": args.rounds, "sizes": vars(sizes),
                     "targets": targets, "scenarios": [s.name for s in scenarios],
                     "echo_bootstrap_python": runtime_python(args.runtime_python)},
        "scenarios": {},
    }
    failed = False
    try:
        for sc, tts in plan:
            entry: dict[str, Any] = {
                "number": sc.number, "title": sc.title, "workload": sc.workload(ctx),
                "figures": list(sc.figures), "results": {},
            }
            out["scenarios"][sc.name] = entry
            for t, why in tts:
                entry["results"][t] = {"rounds": []} if not why else {"na": why, "rounds": []}
            for r in range(args.rounds):
                for t, why in tts:
                    if why:
                        continue
                    progress.step(f"{sc.name} - {t} - round {r + 1}/{args.rounds}")
                    result = entry["results"][t]
                    try:
                        rnd: Round = sc.run(ctx, t)
                        result["rounds"].append({"rows": rnd.rows, "samples": rnd.samples, "notes": rnd.notes})
                    except NotApplicable as exc:
                        result["na"] = str(exc)
                        result["rounds"].append({"error": f"n/a: {exc}"})
                    except (procs.HostError, ProtocolError, OSError, TimeoutError) as exc:
                        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, procs.HostError) else str(exc)
                        result["rounds"].append({"error": message})
                        if t == "other":
                            result.setdefault("na", message)
                        else:
                            failed = True
                    progress.finish_step()
            progress.clear()
            print(report.table(entry, sc.figures, args.rounds))
            print(flush=True)
        entries = report.summary(out["scenarios"], targets)
        out["summary"] = entries
        out["isolation"] = ctx.isolation
        out["wall_s"] = round(time.monotonic() - t_start, 1)
        out["load_after"] = [round(x, 2) for x in os.getloadavg()]
        progress.clear()
        print(report.summary_table(entries, targets))
        budgets = report.ratio_budgets(out["scenarios"])
        out["ratio_budgets"] = budgets
        if budgets:
            print()
            print(report.ratio_table(budgets))
        if ctx.isolation:
            print(f"    rapid ran with isolation: {ctx.isolation}")
        print(f"    wall time {out['wall_s']:.0f} s; load after {', '.join(f'{x:.2f}' for x in out['load_after'])}")
        path = Path(args.json) if args.json else HERE / "results" / f"{started:%Y%m%d-%H%M%S}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1))
        print(f"    raw results: {path}")
        if args.plot:
            draw(out, args.plot)
    finally:
        progress.clear()
        procs.cleanup_all()
        if args.keep:
            print(f"    scratch folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def draw(results: dict[str, Any], folder: str) -> None:
    try:
        from benchmarks.plot import plot_all
    except ImportError:
        print("    --plot: matplotlib is not installed; install it with: pip install 'rapid[bench]' "
              "(or pip install matplotlib)")
        return
    for f in plot_all(results, folder):
        print(f"    plot: {f}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.replot:
        draw(json.loads(Path(args.replot).read_text()), args.plot)
        return 0

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        return run(args)
    except KeyboardInterrupt:
        procs.cleanup_all()
        print("\ninterrupted; every process the harness started has been ended", file=sys.stderr)
        return 130
    finally:
        procs.cleanup_all()  # also after a crash of the harness itself
        signal.signal(signal.SIGTERM, old)
