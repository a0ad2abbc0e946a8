"""(8) scale: what one invoke costs as the host grows.

Daemon CPU per sequential invoke of one function, on a daemon holding 1, 100 and 1,000 warm
instances of that function, and on a daemon holding 1, 100 and 1,000 functions with one
warm instance each (every instance provisioned, so all are up, initialised and frozen at
their ``/next`` before the measurement starts). Per-invoke cost that does not depend on
the size of the host shows as equal rows; ``--quick`` uses 1, 10 and 100.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.client import Connection, request
from benchmarks.procs import Server
from benchmarks.scenarios import Context, Meter, Round, Scenario, _check, echo_event, wait_settled


class Scale(Scenario):
    name, number, title = "scale", 8, "per-invoke cost against the size of the host"
    figures = ("instances", "functions", "invokes_per_s", "p50_us", "daemon_cpu_us")

    def sizes(self, ctx: Context) -> tuple[int, ...]:
        return (1, 10, 100) if ctx.sizes.idle_instances < 100 else (1, 100, 1000)

    def workload(self, ctx: Context) -> str:
        counts = ", ".join(f"{n:,}" for n in self.sizes(ctx))
        return (f"{ctx.sizes.scale:,} sequential invokes of a 100 B echo to one function, after "
                f"{ctx.sizes.scale // 10} warm-up, on a daemon with {counts} provisioned instances of it, and on one "
                f"with {counts} functions of one provisioned instance each (TOML; all instances at /next, frozen)")

    def unsupported(self, kind: str) -> str | None:
        return "" if kind == "rapid" else None

    def run(self, ctx: Context, target: str) -> Round:
        out = Round()
        plans = [("instances", n) for n in self.sizes(ctx)] + [("functions", n) for n in self.sizes(ctx)]
        for k, (what, n) in enumerate(plans):
            toml = Path(ctx.workdir, ctx.tag(f"scale-{what}-{n}") + ".toml")
            # private_tmp = directory: on this kernel a mount namespace per instance stops at
            # some 166 instances (the preexec fails); the cost per invoke does not depend on it.
            lines = [f"max_concurrency = {n + 200}", "init_timeout = 600", "idle_timeout = 3600",
                     'private_tmp = "directory"', ""]
            if what == "instances":
                lines += ["[functions.f0]", f'path = "{ctx.function_dir}"', f"provisioned_concurrency = {n}", ""]
            else:
                for i in range(n):
                    lines += [f"[functions.f{i}]", f'path = "{ctx.function_dir}"', "provisioned_concurrency = 1", ""]
            toml.write_text("\n".join(lines))
            server = ctx.rapid(target, ["--config", str(toml)], f"scale-{what}-{n}", function="f0")
            try:
                wait_settled(server, n, 2 * n + 1, 900.0)  # a listener and a held /next each, and the Invoke API's
                row = f"{n} {what[:-1] if n == 1 else what}"
                out.rows[row] = {"instances": n if what == "instances" else n, "functions": 1 if what == "instances"
                                 else n, **self._measure(ctx, server)}
            finally:
                server.stop()
            ctx.progress((k + 1) / len(plans))
        return out

    @staticmethod
    def _measure(ctx: Context, server: Server) -> dict[str, float]:
        n = ctx.sizes.scale
        payload = echo_event(100)
        with Connection(server.port) as conn:
            req = request(server.path(), payload)
            for _ in range(max(1, n // 10)):
                status, body, _ = conn.roundtrip(req)
                _check(status, body, payload)
            meter = Meter(server)
            lat = [0.0] * n
            clock = time.perf_counter
            meter.start()
            for i in range(n):
                a = clock()
                status, body, _ = conn.roundtrip(req)
                lat[i] = clock() - a
                if status != 200 or len(body) != len(payload):
                    _check(status, body, payload)
            meter.stop()
        lat.sort()
        return {
            "invokes_per_s": n / (meter.t1 - meter.t0),
            "p50_us": lat[n // 2] * 1e6,
            "daemon_cpu_us": (meter.daemon1 - meter.daemon0) / n * 1e6,
        }
