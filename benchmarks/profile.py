"""Where the daemon's time goes per invoke: the sequential 100 B load under cProfile.

    python -m benchmarks.profile [-n 3000] [--top 30] [--sort tottime|cumtime] [--callers NAME]
                                 [--clients C --instances K] [--rapid-env KEY=VALUE ...]

It starts ``rapid serve -- <echo bootstrap>`` (drop-in mode, as the sequential scenario
does, every isolation feature as configured) with a profiler that is off until the daemon
gets SIGUSR1 and dumps what it saw on the next SIGUSR1 (the daemon keeps SIGUSR2 for its stack
dump), so start-up and warm-up are not counted.
Then it sends warm-up invokes, switches the profiler on, sends ``-n`` invokes on one
keep-alive connection, switches it off and prints the top functions with their *calls per
invoke* and *microseconds per invoke* (own time and cumulative). With ``--clients C
--instances K`` the load is the scaling scenario's instead: C closed-loop clients over
exactly K instances (``--function echo=... --concurrency K --overflow queue``).

The profiler counts each thread's CPU time (``time.thread_time``), not wall time, so a
write that wakes the peer on this core is not charged with the peer's run;
``PROFILE_CLOCK=wall`` counts wall time instead (less overhead per call).

cProfile's own overhead inflates every figure (a call costs about a microsecond more), so
the absolute microseconds are not the daemon's real CPU: read them as a ranking, and the
calls per invoke as exact. The real CPU per invoke (from /proc, unprofiled) is measured
first, on its own daemon, and printed on top for scale.
"""

from __future__ import annotations

import argparse
import os
import pstats
import signal
import sys
import tempfile
import time

from benchmarks import procs
from benchmarks.client import ConcurrentClient, Connection, request
from benchmarks.harness import make_function, runtime_python
from benchmarks.scenarios import echo_event


def _child(out: str, argv: list[str]) -> int:
    """In the daemon's process: the profiler, switched by signals, around rapid's CLI."""
    import cProfile

    from rapid.cli import main

    # CPU time, not wall time: a write that wakes the peer on this core would otherwise be
    # charged with the peer's run (the preemption, not the daemon's work).
    prof = cProfile.Profile(time.thread_time_ns, 1e-9) if os.environ.get("PROFILE_CLOCK") != "wall" else cProfile.Profile()

    profiling = False

    def toggle(_s: int, _f: object) -> None:  # on, then off and dump
        nonlocal profiling
        profiling = not profiling
        if profiling:
            prof.enable()
        else:
            prof.disable()
            prof.dump_stats(out)

    signal.signal(signal.SIGUSR1, toggle)
    return main(argv)


def _wait_file(path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) or os.path.getsize(path) == 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"profile: no stats written to {path}")
        time.sleep(0.05)
    time.sleep(0.2)  # the dump may still be going on


def _drive(server: procs.Server, n: int, warm: int, before=None, after=None) -> float:
    payload = echo_event(100)
    with Connection(server.port) as conn:
        req = request(server.path(), payload)
        for _ in range(warm):
            conn.roundtrip(req)
        if before:
            before()
        cpu0 = server.cpu()
        for _ in range(n):
            status, body, _ = conn.roundtrip(req)
            if status != 200:
                raise SystemExit(f"profile: invoke answered {status}: {body[:200]!r}")
        cpu1 = server.cpu()
        if after:
            after()
    return (cpu1 - cpu0) / n * 1e6


def _drive_concurrent(server: procs.Server, clients: int, n: int, warm: int, before=None, after=None) -> float:
    with ConcurrentClient(server.port, clients) as load:
        req = request(server.path(), echo_event(100))
        load.run(req, warm)
        if before:
            before()
        cpu0 = server.cpu()
        res = load.run(req, n)
        cpu1 = server.cpu()
        if after:
            after()
    bad = [s for s in getattr(res, "statuses", []) if s != 200]
    if bad:
        raise SystemExit(f"profile: {len(bad)} invokes were not answered 200")
    return (cpu1 - cpu0) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--child":
        return _child(sys.argv[2], sys.argv[3:])
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--invokes", type=int, default=3000)
    p.add_argument("--warm", type=int, default=300)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--sort", choices=("tottime", "cumtime"), default="tottime")
    p.add_argument("--callers", metavar="NAME", help="also print who calls functions matching NAME")
    p.add_argument("--clients", type=int, default=0, help="closed-loop clients (default: one connection)")
    p.add_argument("--instances", type=int, default=4, help="with --clients: instances serving them")
    p.add_argument("--rapid-env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--keep", metavar="PATH", help="keep the raw pstats file at PATH")
    args = p.parse_args(argv)
    env = dict(item.partition("=")[::2] for item in args.rapid_env)
    work = tempfile.mkdtemp(prefix="rapid-profile-")
    try:
        folder, bootstrap = make_function(work, runtime_python(None))
        logs = os.path.join(work, "logs")
        os.mkdir(logs)
        if args.clients:
            serve = ["--function", f"echo={folder}", "--concurrency", str(args.instances), "--overflow", "queue"]
            function = "echo"

            def drive(server: procs.Server, before=None, after=None) -> float:
                return _drive_concurrent(server, args.clients, args.invokes, args.warm, before, after)
            load = f"{args.clients} clients over {args.instances} instances"
        else:
            serve, function = ["--", bootstrap], "function"

            def drive(server: procs.Server, before=None, after=None) -> float:
                return _drive(server, args.invokes, args.warm, before, after)
            load = "sequential, one connection"
        # Unprofiled first: the real daemon CPU per invoke, for scale.
        server = procs.launch_rapid(serve, cwd=folder, logs=logs, tag="plain", env=env, function=function)
        try:
            real = drive(server)
        finally:
            server.stop()
        stats_path = args.keep or os.path.join(work, "daemon.prof")
        port = procs.free_port()
        argv_ = [sys.executable, "-m", "benchmarks.profile", "--child", stats_path,
                 "serve", "--port", str(port), *serve]
        server = procs.launch(argv_, port, cwd=folder, logs=logs, tag="profiled",
                              env={**procs.RAPID_ENV, **env, "PYTHONPATH": os.getcwd()}, function=function)
        try:
            profiled = drive(server, before=lambda: os.kill(server.pid, signal.SIGUSR1),
                             after=lambda: os.kill(server.pid, signal.SIGUSR1))
            _wait_file(stats_path)
        finally:
            server.stop()
        print(f"daemon CPU per invoke: {real:.0f} us unprofiled, {profiled:.0f} us under cProfile "
              f"({args.invokes} invokes of 100 B, {load})")
        _print(stats_path, args.invokes, args.top, args.sort, args.callers)
    finally:
        procs.cleanup_all()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    return 0


def _print(path: str, n: int, top: int, sort: str, callers: str | None) -> None:
    st = pstats.Stats(path)
    rows = []
    total_calls = 0
    total_time = 0.0
    for (file, line, name), (cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        total_calls += nc
        total_time += tt
        rows.append((tt if sort == "tottime" else ct, nc, tt, ct, _short(file, line, name)))
    rows.sort(reverse=True)
    print(f"{total_calls / n:.0f} Python-level calls and {total_time / n * 1e6:.0f} us of profiled time per invoke")
    print(f"{'calls/inv':>9} {'own us':>7} {'cum us':>7}  function")
    for _key, nc, tt, ct, where in rows[:top]:
        print(f"{nc / n:9.2f} {tt / n * 1e6:7.1f} {ct / n * 1e6:7.1f}  {where}")
    if callers:
        st.sort_stats("tottime").print_callers(callers)


def _short(file: str, line: int, name: str) -> str:
    if file == "~":
        return name
    for marker in ("/rapid/", "/site-packages/", "/lib/python3"):
        i = file.rfind(marker)
        if i >= 0:
            file = file[i + 1:]
            break
    return f"{file}:{line} {name}"


if __name__ == "__main__":
    raise SystemExit(main())
