"""The extensions of one instance: their processes, registrations, events and shutdown.

Theory of operation
-------------------
External extensions are the executables of the function's extensions folder
(``/opt/extensions`` in drop-in mode, ``extensions/`` inside a function's folder). They are
spawned right after the runtime, in the same sandbox: the runtime's mount namespace (so the
same private ``/tmp``), its uid, its cgroups; each in its own process group, frozen and
thawed with the runtime, their output in the function's log stream. Internal extensions
are registered from the runtime's own process and have no process of their own here.

Every call is checked against the extension's ``ExtensionMachine`` (``rapid.core``). The
instance asks three things of this class and is told three:

- ``init_ready`` -- every extension launched has registered and called ``next``
  (the instance then ends init, if its runtime has called ``next`` too): told through
  ``Instance.extensions_ready``;
- ``holding(request_id)`` -- an INVOKE subscriber still works on that invocation after the
  runtime answered: told through ``Instance.extensions_done`` when the last one calls
  ``next`` again;
- a failure (a crash, ``init/error``, ``exit/error``) is told through
  ``Instance.extension_failed`` with the error type AWS uses (``Extension.Crash``, ...).

``shutdown(reason)`` sends SHUTDOWN to the external subscribers with the deadline of the
budget (2,000 ms with an external extension, 500 ms with internal ones only), SIGKILLs the
extensions that did not subscribe, and calls ``on_gone`` once every extension process has
exited (the instance SIGKILLs what is left at the deadline).
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import msgspec

from rapid.core.errors import FunctionError, RuntimeAPIError, exit_message
from rapid.core.extension_state import (
    ExtensionEvent,
    ExtensionMachine,
    ExtensionState,
    Registration,
    init_ready,
    invalid_identifier,
    missing_identifier,
    shutdown_budget_ms,
    unknown_identifier,
)
from rapid.http.message import Response
from rapid.supervisor.process import RuntimeProcess

if TYPE_CHECKING:
    from rapid.core.invocation import Invocation
    from rapid.host.instance import Instance

_encode = msgspec.json.Encoder().encode
# What an extension may not see of the runtime's environment (AWS's list).
HIDDEN_VARIABLES = (
    "AWS_EXECUTION_ENV", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS", "LAMBDA_RUNTIME_DIR", "LAMBDA_TASK_ROOT", "_AWS_XRAY_DAEMON_ADDRESS",
    "_AWS_XRAY_DAEMON_PORT", "_HANDLER",
)


def executables(folder: str | None) -> list[str]:
    """The extension executables of ``folder``, by name (none if it does not exist)."""
    if not folder or not os.path.isdir(folder):
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            found.append(path)
    return found


class Extension:
    __slots__ = ("events", "holding", "id", "internal", "machine", "name", "parked", "pending", "process",
                 "returncode", "shutdown_sent")

    def __init__(self, name: str, internal: bool, process: RuntimeProcess | None = None) -> None:
        self.id = ""  # Lambda-Extension-Identifier, once registered
        self.name = name
        self.internal = internal
        self.machine = ExtensionMachine(name, internal)
        self.events: tuple[str, ...] = ()
        self.process = process
        self.returncode: int | None = None
        self.parked: asyncio.Future[Response] | None = None
        self.pending: deque[bytes] = deque()  # events not yet taken
        self.holding: str | None = None  # the request id of the INVOKE it works on
        self.shutdown_sent = False

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.alive

    def __repr__(self) -> str:
        kind = "internal" if self.internal else "external"
        return f"<Extension {self.name} {kind} {self.machine.state.value} holding={self.holding}>"


class Extensions:
    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.all: list[Extension] = []
        self.by_id: dict[str, Extension] = {}
        self.closed = False  # registration closed (init is over)
        self.shutting_down = False
        self.on_gone: Callable[[], None] | None = None
        self._loop = asyncio.get_running_loop()

    # -- launch ---------------------------------------------------------------------------

    def launch(
        self, paths: list[str], env: Mapping[str, str], cwd: str, preexec: Callable[[], None] | None,
        cgroup: str | None, attach: Callable[[int], None] | None,
    ) -> FunctionError | None:
        """Start every external extension; the error that fails init if one cannot start."""
        inst = self.instance
        env = {k: v for k, v in env.items() if k not in HIDDEN_VARIABLES}
        for path in paths:
            name = os.path.basename(path)
            ext = Extension(name, internal=False)
            try:
                ext.process = RuntimeProcess(
                    (path,), env, cwd, functools.partial(inst.extension_line, name),
                    functools.partial(self._exited, ext), inst.function.host.guardian,
                    preexec=preexec, cgroup=cgroup,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                return FunctionError("Extension.LaunchError", f"fork/exec {path}: {reason.lower()}")
            self.all.append(ext)
            if attach is not None:
                self._loop.run_in_executor(None, attach, ext.process.pid)
        return None

    @property
    def pids(self) -> list[int]:
        return [e.process.pid for e in self.all if e.process is not None and e.alive]

    @property
    def any(self) -> bool:
        return bool(self.all)

    # -- the API --------------------------------------------------------------------------

    def register(self, reg: Registration) -> Extension:
        """A registration: an external extension that was launched under this name, else
        an internal one (the runtime's process registering)."""
        ext = next((e for e in self.all if not e.internal and e.name == reg.name
                    and e.machine.state is ExtensionState.LAUNCHED), None)
        if ext is None:
            ext = Extension(reg.name, internal=True)
            self.all.append(ext)
        if not ext.internal:
            ext.machine.advance(ExtensionEvent.REGISTER)
        ext.id = str(uuid.uuid4())
        ext.events = reg.events
        self.by_id[ext.id] = ext
        return ext

    def identify(self, header: str | None) -> Extension:
        if not header:
            raise missing_identifier()
        ext = self.by_id.get(header)
        if ext is None:
            try:
                uuid.UUID(header)
            except ValueError:
                raise invalid_identifier() from None
            raise unknown_identifier(header)
        return ext

    def next(self, ext: Extension) -> Response | asyncio.Future[Response]:
        before = ext.machine.state
        ext.machine.advance(ExtensionEvent.NEXT)
        finished = ext.holding
        ext.holding = None
        if ext.parked is not None and not ext.parked.done():
            ext.parked.cancel()
        ext.parked = None
        if ext.pending:
            return self._hand(ext, ext.pending.popleft())
        fut: asyncio.Future[Response] = self._loop.create_future()
        ext.parked = fut
        if before is ExtensionState.REGISTERED and not self.closed and init_ready(self._machines()):
            self._loop.call_soon(self.instance.extensions_ready)
        if finished is not None and not any(e.holding == finished for e in self.all):
            self._loop.call_soon(self.instance.extensions_done, finished)
        return fut

    def _hand(self, ext: Extension, body: bytes) -> Response:
        ext.machine.advance(ExtensionEvent.DELIVER)
        return Response(200, body, [
            ("Content-Type", "application/json"),
            ("Lambda-Extension-Identifier", ext.id),
            ("Lambda-Extension-Event-Identifier", str(uuid.uuid4())),
        ])

    def _send(self, ext: Extension, body: bytes) -> None:
        fut = ext.parked
        if fut is not None and not fut.done() and ext.machine.state is ExtensionState.READY:
            ext.parked = None
            fut.set_result(self._hand(ext, body))
        else:
            ext.pending.append(body)

    def report_error(self, ext: Extension, event: ExtensionEvent, error_type: str | None) -> RuntimeAPIError | None:
        """``/init/error`` or ``/exit/error``: the extension is done for; so is the instance."""
        if not error_type:
            return RuntimeAPIError(400, "InvalidRequestFormat", "Missing Lambda-Extension-Function-Error-Type header")
        ext.machine.advance(event)
        kind = "Extension.InitError" if event is ExtensionEvent.INIT_ERROR else "Extension.ExitError"
        self._loop.call_soon(self.instance.extension_failed, FunctionError(kind, f"{ext.name}: {error_type}"))
        return None

    # -- phases ---------------------------------------------------------------------------

    def _machines(self) -> list[ExtensionMachine]:
        return [e.machine for e in self.all]

    def init_ready(self) -> bool:
        return init_ready(self._machines())

    def close_registration(self) -> None:
        self.closed = True

    def invoke(self, inv: Invocation) -> None:
        """The invocation reached the runtime: INVOKE to every subscriber."""
        event = {
            "eventType": "INVOKE",
            "deadlineMs": inv.deadline_epoch_ms,
            "requestId": inv.request_id,
            "invokedFunctionArn": inv.function_arn,
        }
        if inv.trace_id:
            event["tracing"] = {"type": "X-Amzn-Trace-Id", "value": inv.trace_id}
        body = _encode(event)
        for ext in self.all:
            if "INVOKE" in ext.events and not ext.machine.failed and ext.machine.state is not ExtensionState.EXITED:
                ext.holding = inv.request_id
                self._send(ext, body)

    def holding(self, request_id: str) -> bool:
        return any(e.holding == request_id for e in self.all)

    def release(self, request_id: str) -> None:
        for ext in self.all:
            if ext.holding == request_id:
                ext.holding = None

    # -- freeze ---------------------------------------------------------------------------

    def freeze(self) -> None:
        for ext in self.all:
            if ext.alive:
                ext.process.freeze()  # type: ignore[union-attr]

    def thaw(self) -> None:
        for ext in self.all:
            if ext.alive:
                ext.process.thaw()  # type: ignore[union-attr]

    # -- the processes --------------------------------------------------------------------

    def _exited(self, ext: Extension, code: int) -> None:
        ext.returncode = code
        if ext.machine.state is not ExtensionState.EXITED:
            ext.machine.advance(ExtensionEvent.EXIT)
        if ext.parked is not None and not ext.parked.done():
            ext.parked.cancel()
        if not self.shutting_down:
            message = exit_message(code).replace("Runtime", "Extension", 1)
            self.instance.extension_failed(FunctionError("Extension.Crash", f"{ext.name}: {message}"))
        if self.shutting_down and not any(e.alive for e in self.all) and self.on_gone is not None:
            gone, self.on_gone = self.on_gone, None
            gone()

    def shutdown(self, reason: str, on_gone: Callable[[], None]) -> float:
        """Begin the shutdown phase; returns its budget in seconds (0: nothing to wait for).
        ``on_gone`` runs once every extension process has exited."""
        self.shutting_down = True
        externals = [e for e in self.all if not e.internal and e.machine.state is not ExtensionState.LAUNCHED]
        internals = [e for e in self.all if e.internal]
        budget = shutdown_budget_ms(len(externals), len(internals)) / 1000.0
        deadline_ms = int((time.time() + budget) * 1000)
        body = _encode({"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": deadline_ms})
        for ext in self.all:
            if ext.internal or not ext.alive:
                continue
            if "SHUTDOWN" in ext.events and not ext.machine.failed:
                ext.shutdown_sent = True
                ext.pending.clear()
                self._send(ext, body)
            else:
                ext.process.kill()  # type: ignore[union-attr]
        if any(e.alive for e in self.all):
            self.on_gone = on_gone
        else:
            self._loop.call_soon(on_gone)
        return budget

    def kill(self) -> None:
        for ext in self.all:
            if ext.alive:
                ext.process.kill()  # type: ignore[union-attr]

    def cancel_parked(self) -> None:
        for ext in self.all:
            if ext.parked is not None and not ext.parked.done():
                ext.parked.cancel()
            ext.parked = None

    @property
    def alive(self) -> bool:
        return any(e.alive for e in self.all)

    def __repr__(self) -> str:
        return f"<Extensions {self.all!r} closed={self.closed} shutting_down={self.shutting_down}>"
