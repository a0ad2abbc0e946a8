"""The rig: rapid's real host in this process, serving the runtimes under test.

``Rig`` builds a ``Host`` exactly as the daemon does (the same sandbox, guardian,
environment and instance lifecycle) but with no Invoke API in front: invocations are built
here and submitted to the ``Function`` directly, and each call waits for the invocation to
settle. The host's Runtime API is tapped (``rapid.lab.tap``) and its log stream is kept
in memory (``KeptLogs``), so a check can ask what the runtime sent and what it printed,
and in which order against START, END and REPORT.

A ``Spec`` says how to run one runtime: a command (drop-in, as ``rapid serve -- CMD``), or
a function folder or ZIP (with a bundled runtime or its own ``bootstrap``), the handler
string, extra variables, the timeout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rapid.config import Config, FunctionConfig
from rapid.core.invocation import Invocation, Outcome
from rapid.core.naming import request_id, trace_id
from rapid.host.code import code_for
from rapid.host.function import Function
from rapid.host.host import Host
from rapid.host.instance import Instance
from rapid.lab.tap import Tap
from rapid.logs import LogSink
from rapid.wake import wait_set

HANDLERS = Path(__file__).resolve().parent / "handlers"


class KeptLogs(LogSink):
    """The host's log stream, kept as a list of (time, line); echoed to ``echo`` if given."""

    __slots__ = ("echo", "lines")

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        super().__init__(fd=2)
        self.lines: list[tuple[float, str]] = []
        self.echo = echo

    def line(self, text: str) -> None:
        self.lines.append((time.monotonic(), text))
        if self.echo is not None:
            self.echo(text)

    def flush(self) -> None:
        pass


@dataclass
class Spec:
    """One runtime to run: ``command`` (drop-in) or ``path`` (a folder or .zip)."""

    command: list[str] | None = None
    path: str | None = None
    runtime: str = "provided"  # for ``path``: provided | python | node | shell
    handler: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    timeout: int = 30
    memory: int = 1024
    label: str = ""

    def describe(self) -> str:
        if self.label:
            return self.label
        if self.command:
            return " ".join(self.command)
        kind = f"{self.runtime} runtime, " if self.runtime != "provided" else ""
        return f"{self.path} ({kind}handler {self.handler or '-'})"


@dataclass
class Call:
    """One invocation driven by the rig, once settled."""

    invocation: Invocation
    submitted: float
    settled: float

    @property
    def outcome(self) -> Outcome:
        assert self.invocation.outcome is not None
        return self.invocation.outcome

    @property
    def request_id(self) -> str:
        return self.invocation.request_id

    @property
    def ok(self) -> bool:
        o = self.invocation.outcome
        return o is not None and not o.function_error and o.service_error is None

    @property
    def error_type(self) -> str | None:
        o = self.invocation.outcome
        if o is None or not o.function_error:
            return None
        return o.error_type


NESTED = "nested"  # a folder of the scratch task root holding the handlers again


def task_root_with_handlers() -> str:
    """A scratch task root holding the shipped test handlers, at its top and again in
    ``nested/`` (for a handler string with a path); any user may read it, since the runtime
    may run under its own uid. The caller removes it (``shutil.rmtree``)."""
    root = tempfile.mkdtemp(prefix="rapid-check-")
    os.chmod(root, 0o755)
    os.mkdir(os.path.join(root, NESTED), 0o755)
    for f in HANDLERS.iterdir():
        if f.suffix in (".py", ".js", ".sh"):
            for folder in (root, os.path.join(root, NESTED)):
                shutil.copy(f, folder)
                os.chmod(os.path.join(folder, f.name), 0o644)
    return root


class Rig:
    """The host and its functions. ``async with Rig() as rig: rig.add(...)``."""

    def __init__(self, echo: Callable[[str], None] | None = None, **settings: object) -> None:
        self.tap = Tap()
        self.logs = KeptLogs(echo)
        self.settings = settings
        self.host: Host | None = None
        self.data_dir = ""

    async def __aenter__(self) -> Rig:
        self.data_dir = tempfile.mkdtemp(prefix="rapid-lab-")
        config = Config(**self.settings)  # type: ignore[arg-type]
        host = Host(config, self.logs)
        host.runtime_tap = self.tap
        host.start()
        self.host = host
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        host, self.host = self.host, None
        if host is not None:
            await host.shutdown()
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = ""

    # -- functions ------------------------------------------------------------------------

    def add(self, name: str, spec: Spec, task_root: str) -> tuple[Function, str | None]:
        """Add ``spec`` as function ``name``; (function, a warning from the sandbox or None)."""
        assert self.host is not None
        fc = FunctionConfig(
            command=list(spec.command) if spec.command else None,
            path=spec.path or task_root,
            runtime=spec.runtime,  # type: ignore[arg-type]
            handler=spec.handler,
            timeout=spec.timeout,
            memory=spec.memory,
            environment=dict(spec.environment),
            inherit_environment=bool(spec.command),  # drop-in passes the caller's environment on
        )
        code = code_for(fc, dropin=bool(spec.command), data_dir=Path(self.data_dir))
        warning = self.host.sandbox.check_function(name, code)
        if code.entrypoint_error is not None:
            warning = code.entrypoint_error.message
        return self.host.add(name, fc, code, tagged=False), warning

    def function(self, name: str) -> Function:
        assert self.host is not None
        return self.host.functions[name]

    # -- invocations ----------------------------------------------------------------------

    async def invoke(
        self, name: str, payload: bytes, *, client_context: str | None = None,
        cognito_identity: str | None = None, trace: str | None = None, wait: float | None = None,
    ) -> Call:
        """Submit one invocation to ``name`` and wait until it settles (at most ``wait``
        seconds beyond the function's timeout plus its init; it always settles by then).

        If the function has a live instance, wait first until it is back at ``/next``: the
        host would otherwise start a second instance for an invocation that arrives while
        a slow runtime is still on its way back, and the checks mean to drive one."""
        assert self.host is not None
        fn = self.host.functions[name]
        if fn.instances and not fn.idle:
            await self.until_idle(name, timeout=10.0)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        inv = Invocation(
            request_id=request_id(),
            payload=payload,
            function_arn=fn.arn,
            timeout=fn.timeout,
            trace_id=trace or trace_id(),
            client_context=client_context,
            cognito_identity=cognito_identity,
        )
        inv.on_settled = lambda _inv: done.done() or done.set_result(None)
        submitted = time.monotonic()
        fn.submit(inv)
        limit = wait if wait is not None else fn.timeout + self.host.config.init_timeout + 10.0
        await asyncio.wait_for(done, limit)
        return Call(inv, submitted, time.monotonic())

    def instance_of(self, request_id: str) -> Instance | None:
        """The instance that took ``request_id`` (from the tap), if it still exists."""
        assert self.host is not None
        ex = self.tap.delivery(request_id)
        if ex is None:
            return None
        fn = self.host.functions.get(ex.function)
        return fn.instances.get(ex.instance) if fn else None

    def lines_of(self, request_id: str) -> list[str] | None:
        """The log lines from this invocation's START to its REPORT, or None if either is missing."""
        texts = [t for _at, t in self.logs.lines]
        start = next((i for i, t in enumerate(texts) if t.startswith(f"START RequestId: {request_id}")), None)
        end = next((i for i, t in enumerate(texts) if t.startswith(f"REPORT RequestId: {request_id}")), None)
        if start is None or end is None:
            return None
        return texts[start : end + 1]

    async def until_idle(self, name: str, timeout: float = 5.0) -> bool:
        """Wait until an instance of ``name`` is back at ``/next`` with nothing to do
        (woken by the tap when a ``/next`` arrives, not by polling)."""
        fn = self.function(name)
        deadline = time.monotonic() + timeout
        if self.tap.polled is None:
            self.tap.polled = asyncio.Event()
        while not fn.idle:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.tap.polled.clear()
            if not await wait_set(self.tap.polled, left):
                return bool(fn.idle)
        return True

    async def stop_instances(self, name: str, timeout: float = 10.0) -> None:
        """End every instance of ``name`` and wait until their processes are gone."""
        fn = self.function(name)
        for inst in list(fn.instances.values()):
            inst.stop()
        deadline = time.monotonic() + timeout
        while fn.instances and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for inst in list(fn.instances.values()):
            inst.kill()

    def __repr__(self) -> str:
        return f"<Rig host={self.host!r} {self.tap!r} lines={len(self.logs.lines)}>"
