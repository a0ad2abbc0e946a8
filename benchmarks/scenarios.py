"""The scenarios: each a fixed, documented workload run against one target per call.

A target is ``rapid``, ``other`` (the ``--against`` command, or another rapid checkout
with ``--against-rapid``) or ``floor`` (the echo server with no host). ``Scenario.run``
starts what it needs, measures, ends everything it started and returns one ``Round``: rows
of figures (``{"1 instance": {"invokes_per_s": ...}}``) and the latency samples behind
them. A scenario a kind of target cannot do says why in ``unsupported`` (shown as n/a);
``None`` from it means that kind has no counterpart there and is left out.

Figure names carry their unit: ``_us``, ``_ms``, ``_per_s``, ``_mb``, ``_kb``; CPU figures
are per invoke (or per event): ``daemon_cpu`` is the host process itself, ``runtime_cpu``
its descendants (the runtimes), ``client_cpu`` the harness's load client.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.client import ConcurrentClient, Connection, LoadResult, fire, request
from benchmarks.procs import (
    HostError,
    Server,
    bare_start,
    launch_command,
    launch_floor,
    launch_rapid,
    launch_relay,
    launch_rie,
)

HERE = Path(__file__).resolve().parent
Rows = dict[str, dict[str, float]]


@dataclass
class Sizes:
    """The workload sizes; ``--quick`` uses the small ones."""

    sequential: int = 3000
    sequential_warm: int = 300
    scaling: int = 3000
    scaling_warm: int = 400
    large: int = 200
    large_warm: int = 10
    cold: int = 10
    idle_instances: int = 100
    idle_pollers: int = 10
    async_events: int = 2000
    handler: int = 1000
    handler_warm: int = 100
    scale: int = 2000

    @classmethod
    def quick(cls) -> Sizes:
        return cls(sequential=300, sequential_warm=50, scaling=300, scaling_warm=80, large=20, large_warm=3,
                   cold=3, idle_instances=20, idle_pollers=10, async_events=200, handler=100, handler_warm=24, scale=300)


@dataclass
class Target:
    """What a target is: ``rapid`` (this checkout, or the one at ``root``), ``command``
    (another host, from a command with {port} and {bootstrap}), ``rie`` (the AWS Runtime
    Interface Emulator at ``command``), ``relay`` (benchmarks/relay.py) or ``floor``."""

    kind: str
    command: str = ""
    root: str = ""  # a rapid checkout to run instead of the installed one

    def describe(self) -> str:
        if self.kind == "rie":
            return (f"{shlex.quote(self.command)} --runtime-interface-emulator-address 127.0.0.1:{{port}} "
                    "--runtime-api-address 127.0.0.1:{free port} {bootstrap}  (default logging)")
        if self.kind == "relay":
            return f"{shlex.quote(sys.executable)} {HERE / 'relay.py'} {{port}} {{bootstrap}}"
        if self.kind == "rapid":
            where = f"PYTHONPATH={shlex.quote(self.root)} " if self.root else ""
            return f"{where}{shlex.quote(sys.executable)} -m rapid serve --port {{port}} ..."
        if self.kind == "floor":
            return f"{shlex.quote(sys.executable)} {HERE / 'floor_server.py'} {{port}}"
        return self.command


@dataclass
class Context:
    sizes: Sizes
    workdir: str  # this run's scratch folder: functions, logs, data dirs
    logs: str
    function_dir: str  # the echo function: a folder with an executable ``bootstrap``
    bootstrap: str
    handler_dir: str
    targets: dict[str, Target]
    progress: Callable[[float], None] = lambda _f: None
    isolation: str = ""  # what rapid said about its sandbox
    _tags: int = 0

    def tag(self, what: str) -> str:
        self._tags += 1
        return f"{self._tags:03d}-{what}"

    def kind(self, target: str) -> str:
        return self.targets[target].kind

    def rapid(self, target: str, args: list[str], what: str, env: dict[str, str] | None = None,
              function: str = "function") -> Server:
        spec = self.targets[target]
        assert spec.kind == "rapid", target
        env = dict(env or {})
        if spec.root:
            env["PYTHONPATH"] = spec.root
        server = launch_rapid(args, cwd=self.function_dir, logs=self.logs, tag=self.tag(f"{target}-{what}"),
                              env=env, function=function)
        if not self.isolation:
            for line in Path(server.stderr).read_text(errors="replace").splitlines():
                if "isolation:" in line:
                    self.isolation = line.split("isolation:", 1)[1].strip()
        return server

    def dropin(self, target: str, what: str, runtimes: int = 1) -> Server:
        """The target serving the echo bootstrap as ``function``, the way RIE does (the relay
        floor with ``runtimes`` runtimes)."""
        spec = self.targets[target]
        if spec.kind == "rapid":
            return self.rapid(target, ["--", self.bootstrap], what)
        if spec.kind == "command":
            return launch_command(spec.command, self.bootstrap, cwd=self.function_dir, logs=self.logs,
                                  tag=self.tag(f"{target}-{what}"))
        if spec.kind == "rie":
            return launch_rie(spec.command, self.bootstrap, cwd=self.function_dir, logs=self.logs,
                              tag=self.tag(f"{target}-{what}"))
        if spec.kind == "relay":
            return launch_relay(self.bootstrap, cwd=self.function_dir, logs=self.logs,
                                tag=self.tag(f"{target}-{what}"), runtimes=runtimes)
        return launch_floor(cwd=self.function_dir, logs=self.logs, tag=self.tag(f"{target}-{what}"))


@dataclass
class Round:
    rows: Rows = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)  # latencies, us
    notes: list[str] = field(default_factory=list)


class NotApplicable(Exception):
    """The target cannot do this scenario (found out while running it)."""


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def echo_event(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    return json.dumps({"x": "a" * max(0, size - 9)}).encode()


class Meter:
    """CPU of a host, its runtimes and this client between ``start`` and ``stop``."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def start(self) -> None:
        self.daemon0, self.runtime0 = self.server.cpu(), self.server.runtime_cpu()
        self.client0, self.t0 = time.process_time(), time.perf_counter()

    def stop(self) -> None:
        self.daemon1, self.runtime1 = self.server.cpu(), self.server.runtime_cpu()
        self.client1, self.t1 = time.process_time(), time.perf_counter()

    def per(self, n: int, unit: float) -> dict[str, float]:
        return {
            f"daemon_cpu_{_UNIT[unit]}": (self.daemon1 - self.daemon0) / n * unit,
            f"runtime_cpu_{_UNIT[unit]}": (self.runtime1 - self.runtime0) / n * unit,
            f"client_cpu_{_UNIT[unit]}": (self.client1 - self.client0) / n * unit,
        }


_UNIT = {1e6: "us", 1e3: "ms"}


def _check(status: int, body: bytes, want: bytes | None) -> None:
    if status != 200:
        raise HostError(f"invoke answered HTTP {status}: {body[:300]!r}")
    if want is not None and body != want:
        raise HostError(f"invoke answered {len(body)} bytes, not the event's echo: {body[:120]!r}")


def _check_load(res: LoadResult, expect: int = 200) -> None:
    bad = {s: c for s, c in res.statuses.items() if s != expect}
    if bad:
        raise HostError(f"{sum(bad.values())} invokes answered {sorted(bad)}; first: {res.first_error}")


class Scenario:
    name = ""
    number = 0
    title = ""
    figures: tuple[str, ...] = ()

    def workload(self, ctx: Context) -> str:
        raise NotImplementedError

    def unsupported(self, kind: str) -> str | None:
        """Why a target of this kind (rapid, command, floor) cannot run this scenario
        ('' = it can; None = not shown at all)."""
        return ""

    def run(self, ctx: Context, target: str) -> Round:
        raise NotImplementedError


# -- (1) sequential -------------------------------------------------------------------------

class Sequential(Scenario):
    name, number, title = "sequential", 1, "sequential 100 B echo"
    figures = ("invokes_per_s", "p50_us", "p90_us", "p99_us", "daemon_cpu_us", "runtime_cpu_us", "client_cpu_us")
    row = "100 B"
    size = 100

    def workload(self, ctx: Context) -> str:
        s = ctx.sizes
        return (f"{s.sequential:,} sequential invokes of a {self.size} B JSON echo on one keep-alive connection, "
                f"after {s.sequential_warm} warm-up invokes; drop-in mode (`-- bootstrap`), echo runtime")

    def counts(self, ctx: Context) -> tuple[int, int]:
        return ctx.sizes.sequential, ctx.sizes.sequential_warm

    def run(self, ctx: Context, target: str) -> Round:
        n, warm = self.counts(ctx)
        payload = echo_event(self.size)
        server = ctx.dropin(target, self.name)
        try:
            with Connection(server.port) as conn:
                req = request(server.path(), payload)
                for _ in range(warm):
                    status, body, _ = conn.roundtrip(req)
                    _check(status, body, payload)
                meter = Meter(server)
                lat = [0.0] * n
                step = max(1, n // 50)
                clock = time.perf_counter
                meter.start()
                for i in range(n):
                    a = clock()
                    status, body, _ = conn.roundtrip(req)
                    lat[i] = clock() - a
                    if status != 200 or len(body) != len(payload):
                        _check(status, body, payload)
                    if i % step == 0:
                        ctx.progress(i / n)
                meter.stop()
        finally:
            server.stop()
        return self.result(n, lat, meter)

    def result(self, n: int, lat: list[float], meter: Meter) -> Round:
        wall = meter.t1 - meter.t0
        s = sorted(lat)
        figures = {
            "invokes_per_s": n / wall,
            "p50_us": percentile(s, 0.50) * 1e6,
            "p90_us": percentile(s, 0.90) * 1e6,
            "p99_us": percentile(s, 0.99) * 1e6,
            **meter.per(n, 1e6),
        }
        return Round({self.row: figures}, {self.row: [round(x * 1e6, 1) for x in lat]})


# -- (3) 1 MB round trip ----------------------------------------------------------------------

class Large(Sequential):
    name, number, title = "large", 3, "1 MB round trip"
    figures = ("p50_ms", "p90_ms", "mb_per_s", "daemon_cpu_ms", "runtime_cpu_ms", "client_cpu_ms")
    row = "1 MB"
    size = 1024 * 1024

    def workload(self, ctx: Context) -> str:
        s = ctx.sizes
        return (f"{s.large} sequential invokes of a 1 MiB JSON echo (1 MiB in, 1 MiB out) on one keep-alive "
                f"connection, after {s.large_warm} warm-up; drop-in mode, echo runtime")

    def counts(self, ctx: Context) -> tuple[int, int]:
        return ctx.sizes.large, ctx.sizes.large_warm

    def result(self, n: int, lat: list[float], meter: Meter) -> Round:
        wall = meter.t1 - meter.t0
        s = sorted(lat)
        figures = {
            "p50_ms": percentile(s, 0.50) * 1e3,
            "p90_ms": percentile(s, 0.90) * 1e3,
            "mb_per_s": n * 2 * self.size / 2**20 / wall,
            **meter.per(n, 1e3),
        }
        return Round({self.row: figures}, {self.row: [round(x * 1e6, 1) for x in lat]})


# -- (2) 8 clients over 1, 2, 4, 8 instances -------------------------------------------------

class Scaling(Scenario):
    name, number, title = "scaling", 2, "8 clients over 1, 2, 4, 8 instances"
    figures = ("instances", "invokes_per_s", "p50_us", "p99_us", "daemon_cpu_us", "runtime_cpu_us",
               "client_cpu_us", "client_busy_pct")
    clients = 8
    pools = (1, 2, 4, 8)

    def workload(self, ctx: Context) -> str:
        s = ctx.sizes
        return (f"{self.clients} closed-loop clients (keep-alive, one event loop) send {s.scaling:,} invokes of a "
                f"100 B echo, after {s.scaling_warm} warm-up; for each N a fresh daemon with "
                f"`--concurrency N --overflow queue`, so exactly N instances serve the {self.clients} clients")

    def unsupported(self, kind: str) -> str | None:
        if kind == "command":
            return "needs instance pools (--concurrency N --overflow queue)"
        return ""

    def run(self, ctx: Context, target: str) -> Round:
        s = ctx.sizes
        payload = echo_event(100)
        out = Round()
        rapid = ctx.kind(target) == "rapid"
        relay = ctx.kind(target) == "relay"  # the floor of the row the budget reads: 4 runtimes
        pools = self.pools if rapid else (4,) if relay else (0,)
        for k, n_inst in enumerate(pools):
            if rapid:
                args = ["--function", f"echo={ctx.function_dir}", "--concurrency", str(n_inst), "--overflow", "queue"]
                server = ctx.rapid(target, args, f"scaling{n_inst}", function="echo")
                row = f"{n_inst} instance" + ("s" if n_inst > 1 else "")
            elif relay:
                server = ctx.dropin(target, self.name, runtimes=n_inst)
                row = f"{n_inst} instances"
            else:
                server = ctx.dropin(target, self.name)
                row = "no host"
            base, span = k / len(pools), 1 / len(pools)
            try:
                with ConcurrentClient(server.port, self.clients) as load:
                    req = request(server.path(), payload)
                    _check_load(load.run(req, s.scaling_warm))
                    instances = len(server.runtimes()) if rapid else n_inst  # (the relay: its runtimes)
                    meter = Meter(server)
                    meter.start()
                    res = load.run(req, s.scaling,
                                   progress=lambda f, b=base, w=span: ctx.progress(b + f * w))
                    meter.stop()
                    _check_load(res)
            finally:
                server.stop()
            if rapid and instances != n_inst:
                out.notes.append(f"N={n_inst}: {instances} runtime processes were running, not {n_inst}")
            lat = sorted(res.latencies)
            wall = meter.t1 - meter.t0
            out.rows[row] = {
                "instances": instances,
                "invokes_per_s": s.scaling / wall,
                "p50_us": percentile(lat, 0.5) * 1e6,
                "p99_us": percentile(lat, 0.99) * 1e6,
                **meter.per(s.scaling, 1e6),
                "client_busy_pct": (meter.client1 - meter.client0) / wall * 100,
            }
            out.samples[row] = [round(x * 1e6, 1) for x in res.latencies]
            if out.rows[row]["client_busy_pct"] > 85:
                out.notes.append(f"{row}: the client used {out.rows[row]['client_busy_pct']:.0f}% of a core; "
                                 "it may be the bottleneck")
        return out


# -- (4) cold start ------------------------------------------------------------------------------

class Cold(Scenario):
    name, number, title = "cold", 4, "cold start"
    figures = ("first_ms", "bare_next_ms", "bare_response_ms", "overhead_ms", "overhead_next_ms", "over_bare_x",
               "host_start_ms")
    HOLD = 0.6  # seconds the first instance stays busy while a second one is started

    def workload(self, ctx: Context) -> str:
        return (f"{ctx.sizes.cold} samples, each: a bare start (the echo bootstrap spawned against a fake Runtime "
                "API in the harness: spawn -> first /next, spawn -> its response to one 100 B event), then a "
                "fresh host in drop-in mode (rapid: `rapid serve -- BOOTSTRAP`, as RIE runs) and the time from "
                "the first invoke to its response; overhead = first response - bare response (and - bare /next); "
                "over bare = first response / bare response, per sample. "
                f"rapid also: while that instance is held busy ({self.HOLD:g} s event), one more invoke, which "
                "needs a new instance of the running daemon")

    def unsupported(self, kind: str) -> str | None:
        return None if kind == "floor" else ""

    def run(self, ctx: Context, target: str) -> Round:
        payload = echo_event(100)
        samples: dict[str, list[dict[str, float]]] = {"fresh function": [], "new instance, running daemon": []}
        total = ctx.sizes.cold
        for i in range(total):
            ctx.progress(i / total)
            bare_next, bare_resp = bare_start(ctx.bootstrap, ctx.function_dir, payload, ctx.logs)
            t_launch = time.perf_counter()
            rapid = ctx.kind(target) == "rapid"
            server = ctx.dropin(target, self.name)  # like-for-like: one function, drop-in mode, for every host
            host_start = time.perf_counter() - t_launch
            try:
                firsts = [_first_response(server.port, server.path(), payload)]
                if rapid:  # a new instance while the first is busy
                    busy = threading.Thread(target=_first_response, args=(
                        server.port, server.path(), json.dumps({"sleep": self.HOLD}).encode(), False))
                    busy.start()
                    time.sleep(self.HOLD / 3)
                    try:
                        firsts.append(_first_response(server.port, server.path(), payload))
                    finally:
                        busy.join()
            finally:
                server.stop()
            for row, first in zip(samples, firsts):
                samples[row].append({
                    "first_ms": first * 1e3,
                    "bare_next_ms": bare_next * 1e3,
                    "bare_response_ms": bare_resp * 1e3,
                    "overhead_ms": (first - bare_resp) * 1e3,
                    "overhead_next_ms": (first - bare_next) * 1e3,
                    # over the bare start of the same sample, a moment before: what a round's
                    # load does to both cancels out
                    "over_bare_x": first / bare_resp,
                    **({"host_start_ms": host_start * 1e3} if row == "fresh function" else {}),
                })
        out = Round()
        for row, items in samples.items():
            if items:
                out.rows[row] = {k: statistics.median(x[k] for x in items) for k in items[0]}
                out.samples[row] = [round(x["first_ms"] * 1e3, 1) for x in items]
        return out


def _first_response(port: int, path: str, payload: bytes, check: bool = True) -> float:
    """Seconds from one invoke (on a new connection) to its answer."""
    with Connection(port) as conn:
        req = request(path, payload)
        t0 = time.perf_counter()
        status, body, _ = conn.roundtrip(req)
        took = time.perf_counter() - t0
    _check(status, body, payload if check else None)
    return took


# -- (5) idle footprint ----------------------------------------------------------------------------

class Idle(Scenario):
    name, number, title = "idle", 5, "idle footprint"
    figures = ("rss_mb", "per_extra_kb", "runtimes", "sockets", "runtimes_rss_mb")

    def workload(self, ctx: Context) -> str:
        c, k = ctx.sizes.idle_instances, ctx.sizes.idle_pollers
        return (f"daemon RSS from /proc. On demand: `--concurrency {c} --overflow queue`, one invoke (1 idle "
                f"instance), then {c} concurrent {self.slow_seconds(c):g} s invokes so {c} instances exist, then idle "
                f"(frozen); per extra = "
                f"growth per extra idle instance. Long-polls: {c} provisioned instances with "
                f"per_instance_concurrency {k} (each runtime holds {k} /next) and freeze off = {c * k:,} idle "
                f"long-polls, against the same with 1 each; per extra = growth per extra held /next")

    @staticmethod
    def slow_seconds(instances: int) -> float:
        return round(2.0 + 0.04 * instances, 1)

    def unsupported(self, kind: str) -> str | None:
        if kind == "floor":
            return None
        if kind == "command":
            return "needs instance pools and provisioned multi-concurrency"
        return ""

    def run(self, ctx: Context, target: str) -> Round:
        out = Round()
        c, k = ctx.sizes.idle_instances, ctx.sizes.idle_pollers
        env = {"RAPID_INIT_TIMEOUT": "300"}
        args = ["--function", f"idle={ctx.function_dir}", "--concurrency", str(c), "--overflow", "queue",
                "--timeout", "120"]
        server = ctx.rapid(target, args, "idle", env=env, function="idle")
        try:
            status, body, _ = _call(server, server.path(), echo_event(100))
            _check(status, body, None)
            time.sleep(0.5)
            one = self._figures(server)
            ctx.progress(0.1)
            # Each slow invoke must outlast the ramp (the daemon spawns the instances one by
            # one), or early instances come back idle and take the later invokes.
            slow = json.dumps({"sleep": self.slow_seconds(c)}).encode()
            answers = fire(server.port, [request(server.path(), slow)] * c, timeout=600)
            bad = [s for s, _ in answers if s != 200]
            if bad:
                raise HostError(f"{len(bad)} of {c} slow invokes failed: HTTP {bad[0]}")
            time.sleep(1.0)  # every instance back at /next, frozen
            many = self._figures(server)
        finally:
            server.stop()
        one_row, many_row = "1 idle instance", f"{c} idle instances"
        out.rows[one_row] = one
        many["per_extra_kb"] = (many["rss_mb"] - one["rss_mb"]) * 1024 / max(1, many["runtimes"] - 1)
        out.rows[many_row] = many
        if many["runtimes"] != c:
            out.notes.append(f"{int(many['runtimes'])} instances existed after the burst, not {c}")
        ctx.progress(0.4)

        polls: dict[int, dict[str, float]] = {}
        for i, per in enumerate((1, k)):
            toml = Path(ctx.workdir, f"polls{per}.toml")
            toml.write_text(
                f'freeze = false\ninit_timeout = 300\n\n[functions.polls]\npath = "{ctx.function_dir}"\n'
                f"provisioned_concurrency = {c}\nper_instance_concurrency = {per}\n"
            )
            server = ctx.rapid(target, ["--config", str(toml)], f"polls{per}", function="polls")
            try:
                want = c * per + c + 1  # held /next connections, instance listeners, the Invoke API
                polls[per] = self._settle(server, c, want)
            finally:
                server.stop()
            ctx.progress(0.6 + 0.2 * i)
        out.rows[f"{c} provisioned x 1 /next"] = polls[1]
        big = polls[k]
        big["per_extra_kb"] = (big["rss_mb"] - polls[1]["rss_mb"]) * 1024 / max(1, c * k - c)
        if big["runtimes"] != c or polls[1]["runtimes"] != c:
            out.notes.append(f"provisioned: {int(polls[1]['runtimes'])} and {int(big['runtimes'])} runtimes, not {c}")
        out.rows[f"{c * k:,} long-polls ({c} x {k})"] = big
        return out

    @staticmethod
    def _figures(server: Server) -> dict[str, float]:
        from benchmarks.machine import rss_kb

        pids = server.runtimes()
        return {
            "rss_mb": server.rss_kb() / 1024,
            "runtimes": len(pids),
            "sockets": server.sockets(),
            "runtimes_rss_mb": sum(rss_kb(p) for p in pids) / 1024,
        }

    def _settle(self, server: Server, instances: int, sockets: int, timeout: float = 300.0) -> dict[str, float]:
        """Wait until every provisioned runtime holds its /next calls, then read the figures."""
        wait_settled(server, instances, sockets, timeout)
        time.sleep(0.5)
        return self._figures(server)


def _call(server: Server, path: str, body: bytes) -> tuple[int, bytes, bytes]:
    with Connection(server.port, timeout=120) as conn:
        return conn.roundtrip(request(path, body))


# -- (6) async ------------------------------------------------------------------------------------

class Async(Scenario):
    name, number, title = "async", 6, "async (Event) invokes"
    figures = ("accepts_per_s", "accept_p50_us", "accept_p99_us", "events_per_s", "daemon_cpu_us", "processed",
               "data_dir_kb")
    clients = 8
    instances = 4

    def workload(self, ctx: Context) -> str:
        return (f"{ctx.sizes.async_events:,} Event invokes (X-Amz-Invocation-Type: Event) of a 100 B echo from "
                f"{self.clients} closed-loop clients; rapid: `--concurrency {self.instances} --overflow queue "
                "--data-dir`; accepts/s = 202s per second; events/s = REPORT lines in the host's stdout per "
                "second, from the first send to the last REPORT; daemon CPU per event over that span")

    def unsupported(self, kind: str) -> str | None:
        return None if kind == "floor" else ""

    def run(self, ctx: Context, target: str) -> Round:
        m = ctx.sizes.async_events
        payload = echo_event(100)
        data_dir = Path(ctx.workdir, ctx.tag("data"))
        if ctx.kind(target) == "rapid":
            args = ["--function", f"echo={ctx.function_dir}", "--concurrency", str(self.instances),
                    "--overflow", "queue", "--data-dir", str(data_dir)]
            server = ctx.rapid(target, args, "async", function="echo")
        else:
            server = ctx.dropin(target, self.name)
        try:
            with ConcurrentClient(server.port, self.clients) as load:
                _check_load(load.run(request(server.path(), payload), self.clients * 4))
                time.sleep(0.2)
                base = server.reports()
                meter = Meter(server)
                req = request(server.path(), payload, {"X-Amz-Invocation-Type": "Event"})
                meter.start()
                res = load.run(req, m, expect=(202,), progress=lambda f: ctx.progress(f * 0.5))
            accepted = time.perf_counter() - meter.t0
            if res.statuses.get(202, 0) != m:
                raise NotApplicable(f"Event invokes were answered {dict(res.statuses)} ({res.first_error})")
            deadline = time.monotonic() + max(60.0, m / 20)
            done, last_change, last = 0, time.monotonic(), -1
            while time.monotonic() < deadline:
                done = server.reports() - base
                if done >= m:
                    break
                if done != last:
                    last, last_change = done, time.monotonic()
                elif time.monotonic() - last_change > 15:
                    break  # no progress for 15 s
                ctx.progress(0.5 + 0.5 * done / m)
                time.sleep(0.005)
            meter.stop()
            if done <= 0:
                raise NotApplicable("Event invokes were accepted (202) but no REPORT line followed")
        finally:
            server.stop()
        lat = sorted(res.latencies)
        span = meter.t1 - meter.t0
        size = sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file()) if data_dir.exists() else 0
        row = {
            "accepts_per_s": m / accepted,
            "accept_p50_us": percentile(lat, 0.5) * 1e6,
            "accept_p99_us": percentile(lat, 0.99) * 1e6,
            "events_per_s": done / span,
            "daemon_cpu_us": (meter.daemon1 - meter.daemon0) / m * 1e6,
            "processed": done,
            "data_dir_kb": size / 1024,
        }
        out = Round({"Event": row}, {"Event": [round(x * 1e6, 1) for x in res.latencies]})
        if done < m:
            out.notes.append(f"only {done} of {m} accepted events produced a REPORT line")
        return out


# -- (7) a realistic handler ----------------------------------------------------------------------

class Handler(Scenario):
    name, number, title = "handler", 7, "realistic handler, 8 clients"
    figures = ("instances", "invokes_per_s", "p50_ms", "p99_ms", "daemon_cpu_us", "runtime_cpu_ms", "client_cpu_us")
    clients = 8

    def workload(self, ctx: Context) -> str:
        s = ctx.sizes
        return (f"the bundled Python runtime (`--runtime python --handler app.handler`, benchmarks/handler/app.py: "
                f"~1 KB API Gateway JSON event in, JSON out, 5 ms of CPU per invoke), {self.clients} closed-loop "
                f"clients, {s.handler:,} invokes after {s.handler_warm} warm-up; default pool (scales on demand)")

    def unsupported(self, kind: str) -> str | None:
        if kind == "floor":
            return None
        if kind == "command":
            return "needs rapid's bundled Python runtime and concurrent instances"
        return ""

    def run(self, ctx: Context, target: str) -> Round:
        from benchmarks.handler.app import sample_event

        s = ctx.sizes
        fn_dir = Path(ctx.workdir, "handler")
        if not fn_dir.exists():
            fn_dir.mkdir(mode=0o755)
            shutil.copy(Path(ctx.handler_dir, "app.py"), fn_dir / "app.py")
            os.chmod(fn_dir / "app.py", 0o644)
        args = ["--function", f"app={fn_dir}", "--runtime", "python", "--handler", "app.handler"]
        server = ctx.rapid(target, args, "handler", function="app")
        payload = json.dumps(sample_event()).encode()
        try:
            with ConcurrentClient(server.port, self.clients) as load:
                req = request(server.path(), payload)
                warm = load.run(req, s.handler_warm, keep_bodies=True)
                _check_load(warm)
                if b"statusCode" not in load.bodies[0]:
                    raise HostError(f"the handler answered {load.bodies[0][:200]!r}")
                instances = len(server.runtimes())
                meter = Meter(server)
                meter.start()
                res = load.run(req, s.handler, progress=ctx.progress)
                meter.stop()
                _check_load(res)
        finally:
            server.stop()
        lat = sorted(res.latencies)
        n = s.handler
        row = {
            "instances": instances,
            "invokes_per_s": n / (meter.t1 - meter.t0),
            "p50_ms": percentile(lat, 0.5) * 1e3,
            "p99_ms": percentile(lat, 0.99) * 1e3,
            "daemon_cpu_us": (meter.daemon1 - meter.daemon0) / n * 1e6,
            "runtime_cpu_ms": (meter.runtime1 - meter.runtime0) / n * 1e3,
            "client_cpu_us": (meter.client1 - meter.client0) / n * 1e6,
        }
        return Round({"8 clients": row}, {"8 clients": [round(x * 1e6, 1) for x in res.latencies]})


SCENARIOS: tuple[Scenario, ...] = (Sequential(), Scaling(), Large(), Cold(), Idle(), Async(), Handler())


def wait_settled(server: Server, instances: int, sockets: int, timeout: float) -> None:
    """Until ``instances`` provisioned runtimes are up and the daemon holds at least
    ``sockets`` sockets (each runtime's listener and held /next), steady for a second."""
    deadline = time.monotonic() + timeout
    last, steady_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = server.sockets()
        if n != last:
            last, steady_since = n, time.monotonic()
        if n >= sockets and len(server.runtimes()) >= instances and time.monotonic() - steady_since > 1.0:
            return
        if server.proc.poll() is not None:
            raise HostError(f"rapid exited: {server.stderr_tail()}")
        time.sleep(0.2)
    raise HostError(f"{instances} provisioned instances did not settle: {last} sockets, wanted {sockets}")
