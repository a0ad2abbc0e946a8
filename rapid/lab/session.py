"""One ``rapid check`` run: the functions it sets up and the order the checks run in.

The runtime under test is added to one in-process host three times, as three functions:

- ``check``: the runtime as given (timeout 30 s); almost every behaviour is checked here,
  on one instance, as a warm runtime would be used;
- ``deadline``: the same with a 2 s timeout, to see a timeout from the runtime's side;
- ``init-error``: the same with a handler that does not exist (``_HANDLER`` and any
  argument equal to the handler string are replaced), to provoke an init failure;
- ``handler-path``: the same with the handler string ``nested/rapid_check.handler``, when
  the task root is rapid check's own scratch folder (which has that folder);
- ``stream``: the same with the handler ``rapid_check.stream``, which exists only where the
  runtime can stream a response (aws-lambda-ric's ``streamifyResponse``).

A listener on 127.0.0.1:9001 (Lambda's own Runtime API address, when that port is free
here) catches a runtime that ignores ``AWS_LAMBDA_RUNTIME_API``. If the runtime never
reaches its Runtime API, the report says so and skips what needs a running runtime.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rapid.lab import checks, lifecycle, wire
from rapid.lab.rig import NESTED, Call, Rig, Spec
from rapid.lab.verdict import CUSTOM, LIFECYCLE, Status, Verdict, skipped

MISSING_HANDLER = "rapid_check_missing.handler"
DEFAULT_HANDLER = "rapid_check.handler"
STREAM_HANDLER = "rapid_check.stream"  # only where the runtime can stream (Node's streamifyResponse)
# The behaviours driven one after another once the runtime has started, in report order.
RUNNING = [
    ("echo-1mb", checks.echo_1mb),
    ("echo-6mb", checks.echo_6mb),
    ("function-error", checks.function_error),
    ("init-error", checks.init_error),
    ("deadline", checks.deadline),
    ("trace-id", checks.trace_id),
    ("client-context", checks.client_context),
    ("cognito-identity", checks.cognito_identity),
    ("function-arn", checks.function_arn),
    ("environment", checks.environment),
    ("handler-path", checks.handler_path),
    ("logs", lifecycle.logs),
    ("reuse", lifecycle.reuse),
    ("late-write", lifecycle.late_write),
]
LAMBDA_ADDRESS = ("127.0.0.1", 9001)


@dataclass
class Trap:
    """A listener on Lambda's fixed address: who connected, and what they sent first."""

    server: asyncio.Server | None = None
    seen: list[bytes] = field(default_factory=list)
    event: asyncio.Event = field(default_factory=asyncio.Event)

    async def open(self) -> bool:
        def made() -> asyncio.Protocol:
            return _TrapProtocol(self)

        try:
            self.server = await asyncio.get_running_loop().create_server(made, *LAMBDA_ADDRESS)
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


class _TrapProtocol(asyncio.Protocol):
    def __init__(self, trap: Trap) -> None:
        self.trap = trap
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.trap.seen.append(data[:200])
        self.trap.event.set()
        if self.transport is not None:
            body = b'{"errorMessage":"this is not your AWS_LAMBDA_RUNTIME_API","errorType":"NotFound"}'
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            self.transport.close()


@dataclass
class Session:
    """What the checks share: the rig, the spec, the task root, the first call."""

    rig: Rig
    spec: Spec
    task_root: str
    trap: Trap
    trap_open: bool
    clock_offset: float = field(default_factory=lambda: time.time() - time.monotonic())
    first: Call | None = None
    first_next_ms: float | None = None
    notes: list[str] = field(default_factory=list)
    context: tuple[Call, Any] | None = None  # the one {"op":"context"} call several checks read
    handler_ignored: bool = False  # it ran with a handler that does not exist

    def wall_ms(self, monotonic: float) -> float:
        return (monotonic + self.clock_offset) * 1000.0


def with_handler(spec: Spec, handler: str) -> Spec:
    """``spec`` with another handler string: in ``_HANDLER``, and in place of any argument
    equal to the old one (awslambdaric and others take it as an argument)."""
    command = [handler if a == spec.handler else a for a in spec.command] if spec.command else None
    return Spec(command=command, path=spec.path, runtime=spec.runtime, handler=handler,
                environment=dict(spec.environment), timeout=spec.timeout, memory=spec.memory, label=spec.label)


async def run(spec: Spec, task_root: str, step: Callable[[str], None] = lambda _s: None,
              echo: Callable[[str], None] | None = None) -> tuple[list[Verdict], list[str]]:
    """Drive the runtime through every behaviour; (verdicts in report order, notes)."""
    trap = Trap()
    trap_open = await trap.open()
    try:
        async with Rig(echo=echo, init_timeout=10.0, shutdown_timeout=2.0) as rig:
            s = Session(rig, spec, task_root, trap, trap_open)
            if not trap_open:
                s.notes.append("127.0.0.1:9001 is in use here: a hard-coded Runtime API address shows only as a "
                               "runtime that never starts")
            _fn, warning = rig.add("check", spec, task_root)
            if warning:
                s.notes.append(f"note: {warning}")
            deadline_spec = Spec(**{**spec.__dict__, "timeout": 2})
            rig.add("deadline", deadline_spec, task_root)
            if spec.handler:
                rig.add("init-error", with_handler(spec, MISSING_HANDLER), task_root)
                if spec.handler == DEFAULT_HANDLER and os.path.isdir(os.path.join(task_root, NESTED)):
                    rig.add("handler-path", with_handler(spec, f"{NESTED}/{DEFAULT_HANDLER}"), task_root)
                if spec.handler == DEFAULT_HANDLER:
                    rig.add("stream", with_handler(spec, STREAM_HANDLER), task_root)
            return await _run_checks(s, bool(spec.handler), step), s.notes
    finally:
        trap.close()


async def _run_checks(s: Session, can_break_init: bool, step: Callable[[str], None]) -> list[Verdict]:
    step("start")
    started = await checks.start(s)
    verdicts = [started]
    if started.status is Status.FAIL:
        rest = [name for name, _fn in RUNNING]
        why = "the runtime never answered its first invocation"
        verdicts += [skipped(name, why, "-", "-") for name in [*rest, "keep-alive", "streaming", "sigterm"]]
        verdicts.insert(1 + len(rest), wire.paths(s))
        return [checks.address(s), *verdicts]
    for name, fn in RUNNING:
        step(name)
        if name == "init-error" and not can_break_init:
            verdicts.append(skipped(name, "no handler string to break (give --handler)",
                                    checks.INIT_ERROR_EXPECTED, CUSTOM))
            continue
        try:
            verdicts.append(await fn(s))
        except (asyncio.TimeoutError, TimeoutError):
            verdicts.append(Verdict(name, Status.FAIL, "no answer in time (the invocation never settled)",
                                    "an answer within the function's timeout", LIFECYCLE))
    verdicts.append(wire.paths(s))
    verdicts.append(wire.keep_alive(s))
    step("streaming")
    verdicts.append(await wire.streaming(s))
    step("sigterm")
    verdicts.append(await lifecycle.sigterm(s))
    return [checks.address(s), *verdicts]


def cleanup_task_root(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
