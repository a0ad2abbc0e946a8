"""How an instance's invocations end, and how the instance itself ends.

Theory of operation
-------------------
Every way an invocation ends comes to ``_settle``: the runtime's answer (``finish``, which
the Runtime API edge calls), a timeout, a crash, a failed init, an extension's failure.
END and REPORT go out before the invoker is answered, so a log tail asked for with
``X-Amz-Log-Type: Tail`` holds them, and the log stream is flushed then, so they are on
stdout before the answer too. If extensions still work on the invocation, the
invoker is answered at once and END/REPORT wait for them (``extensions_done``); its timer
keeps running: extensions count in the timeout.

The instance dies once, through ``_die``: on a timeout, a crash, an init failure, an idle
timeout, recycling, or shutdown. With extensions, dying is a shutdown phase first: SHUTDOWN
goes to the subscribers, and the processes are SIGKILLed when its budget ends. Its process
group is killed, the function is told (so it can start a replacement when work waits), and
the server, the sandbox (through plain values: its key and uid) and the private TMPDIR go
when the process has exited. A dead instance is never reused.

``InstanceEnd`` is the half of ``rapid.host.instance.Instance`` that holds these paths; it
has no state of its own.
"""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING

import msgspec

from rapid.core import report
from rapid.core.errors import FunctionError, runtime_exited, timed_out
from rapid.core.extension_state import RUNTIME_SHUTDOWN_SHARE
from rapid.core.instance_state import InstanceEvent, InstanceState
from rapid.core.invocation import (
    Invocation,
    InvocationEvent,
    InvocationState,
    Outcome,
    function_failure,
    platform_failure,
)
from rapid.core.runtime_state import RuntimeState

if TYPE_CHECKING:
    from rapid.host.instance import Instance

    _Base = Instance
else:
    _Base = object

_encode = msgspec.json.Encoder().encode
_SETTLING = (InstanceState.BUSY, InstanceState.DRAINING)
_RUNNING, _SETTLE = InvocationState.RUNNING, InstanceEvent.SETTLE  # (read per invoke: see rapid.host.slots)


class InstanceEnd(_Base):
    __slots__ = ()

    # -- outcomes -------------------------------------------------------------------------

    def finish(self, inv: Invocation, event: InvocationEvent, outcome: Outcome) -> None:
        """The runtime answered ``inv``: settle it, and recycle a retiring instance."""
        if self.extensions.all and self.extensions.holding(inv.request_id):
            if self.process is not None:
                self.process.drain()
            self.telemetry.runtime_done(inv, outcome)
            self.running.pop(inv.request_id, None)
            self.invokes += 1
            self._after[inv.request_id] = (inv, outcome)
            inv.settle(event, outcome)
            return
        self._settle(inv, event, outcome)
        if self.life.retiring and not self.slots.running and not self.life.dead and not self._after:
            self._die(reset=False)

    def fail(self, inv: Invocation, error: FunctionError) -> None:
        """The platform failed ``inv`` (a bad answer from the runtime)."""
        self.finish(inv, InvocationEvent.FAIL, platform_failure(error, inv.request_id, _encode))

    def _settle(self, inv: Invocation, event: InvocationEvent, outcome: Outcome, include_start: bool = False) -> None:
        self._deadlines.disarm(inv.request_id)
        if self.process is not None:
            self.process.drain()  # while ``inv`` runs, so its lines join its log tail
        if inv.state is _RUNNING and self.telemetry.listening:
            self.telemetry.runtime_done(inv, outcome)
        self.running.pop(inv.request_id, None)
        self.invokes += 1
        self.answered_at = time.monotonic()
        self.function.last_answered = self  # (rapid.host.function: the finishing shortcut)
        self._report(inv, outcome, include_start)
        # The platform's lines are on stdout before the invoker has its answer (the log
        # stream otherwise waits a moment for more lines: rapid.logs.sink).
        self.function.host.logs.flush()
        self._maybe_settled()
        inv.settle(event, outcome)

    def _maybe_settled(self) -> None:
        """The last invocation is over (and no extension holds one): Busy -> Idle."""
        if not self.running and not self._after and self.life.state in _SETTLING:
            self.life.advance(_SETTLE)

    def _report(self, inv: Invocation, outcome: Outcome, include_start: bool = False) -> None:
        """END and REPORT for ``inv`` (START too, if it never reached the runtime)."""
        init_ms, self.init_duration_ms = self.init_duration_ms, None
        restore_ms, self.restore_duration_ms = self.restore_duration_ms, None
        peak = self.process.peak_memory_mb() if self.process is not None else 0
        r = self.function.report(inv, outcome, init_ms, peak, include_start, restore_ms, self)
        if self.telemetry.listening:
            self.telemetry.report(r)

    def _timed_out(self, inv: Invocation) -> None:
        if inv.request_id in self._after:  # answered, but its extensions ran out of time
            del self._after[inv.request_id]
            self._report(inv, platform_failure(timed_out(inv.timeout), inv.request_id, _encode))
            self._die(reset=True, reason="timeout")
            return
        if inv.settled:
            return
        outcome = platform_failure(timed_out(inv.timeout), inv.request_id, _encode)
        was_queued = inv.state is InvocationState.QUEUED
        if was_queued:  # a suppressed init that never reached /next
            self.bound = None
            self._init_report("invoke", "timeout", None)
        self._settle(inv, InvocationEvent.TIME_OUT, outcome, include_start=was_queued)
        self._die(reset=True, reason="timeout")

    def extension_failed(self, error: FunctionError) -> None:
        """An extension crashed or reported an error: init fails, or the instance resets
        (failing what runs on it)."""
        if self.dead:
            return
        if not self.initialized:
            self._init_failed(error, None, "error")
            return
        for inv, _slot in list(self.running.values()):
            if not inv.settled:
                self._settle(inv, InvocationEvent.FAIL, platform_failure(error, inv.request_id, _encode))
        for request_id, (inv, _outcome) in list(self._after.items()):
            del self._after[request_id]
            self._report(inv, platform_failure(error, request_id, _encode))
        self._die(reset=True, reason="failure")

    # -- init -----------------------------------------------------------------------------

    def _init_done(self) -> None:
        self.life.advance(InstanceEvent.INIT_DONE)
        if self._init_timer is not None:
            self._init_timer.cancel()
            self._init_timer = None
        ms = (time.monotonic() - self.spawned_at) * 1000.0
        self.extensions.close_registration()
        self.telemetry.init_done(self.function.init_type(self), self._init_phase, "success", None, ms)
        self.telemetry.init_over()
        if self.provisioned:  # initialised ahead of any invoke: reported on its own line
            self._init_report("init", "success", None, ms)
        elif self.snapped:  # SnapStart: the init was the template's; this was the restore
            self.restore_duration_ms = ms
        elif not self.suppressed:
            self.init_duration_ms = ms

    def _init_timed_out(self) -> None:
        self._init_timer = None
        if not self.initialized and not self.dead:
            self._init_failed(None, None, "timeout")

    def _init_failed(
        self, error: FunctionError | None, posted: tuple[bytes, str] | None, status: str, *, reported: bool = False
    ) -> None:
        """Init ended without a ``/next``: report it, answer the invocation it ran for (a
        suppressed init), and let the function retry inside the next invoke."""
        if self.dead:
            return
        error_type = posted[1] if posted else (error.error_type if error else None)
        if not reported:  # (a SnapStart template reports its own init)
            self._init_report("invoke" if self.suppressed else "init", status, error_type)
        inv, self.bound = self.bound, None
        if inv is not None and not inv.settled:
            if posted is not None:
                outcome = function_failure(posted[0], posted[1])
            elif error is not None:
                outcome = platform_failure(error, inv.request_id, _encode)
            else:
                outcome = platform_failure(timed_out(inv.timeout), inv.request_id, _encode)
            self._settle(inv, InvocationEvent.FAIL, outcome, include_start=True)
        self._die(reset=True)

    def _init_report(self, phase: str, status: str, error_type: str | None, ms: float | None = None) -> None:
        if ms is None:
            ms = (time.monotonic() - self.spawned_at) * 1000.0 if self.spawned_at else 0.0
        if status != "success":
            self.telemetry.init_done(self.function.init_type(self), self._init_phase, status, error_type, ms)
        self.function.report_init(self, ms, phase, status, error_type)

    @property
    def _init_phase(self) -> str:
        return "invoke" if self.suppressed else "init"

    # -- the process ----------------------------------------------------------------------

    def _on_line(self, line: bytes, category: str = "function") -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        inv = self.bound
        if inv is None and len(self.running) == 1:
            inv = next(iter(self.running.values()))[0]
        elif inv is None and self._after:  # extensions' lines after the runtime answered
            inv = next(iter(self._after.values()))[0]
        fn = self.function
        if fn.json_logs:
            text = report.function_line_json(text, inv.request_id if inv else None)
        fn.log_line(text, inv.request_id if inv else None, self)
        if inv is not None and inv.log_lines is not None:
            inv.log_lines.append(text)
        if self.telemetry.listening:
            self.telemetry.line(category, text, fn.json_logs)

    def _on_exit(self, returncode: int) -> None:
        states = self.slots.exit()
        crashed = False
        for inv, _slot in list(self.running.values()):
            if not inv.settled:
                outcome = platform_failure(runtime_exited(returncode), inv.request_id, _encode)
                self._settle(inv, InvocationEvent.FAIL, outcome)
                crashed = True
        if not self.dead:
            if RuntimeState.INIT_FAILED in states:
                pass  # the /init/error handler already scheduled _init_failed
            elif not self.initialized:
                self._init_failed(runtime_exited(returncode), None, "error")
            else:
                if not crashed and not self.function.host.stopping:
                    self.function.log_line(f"Error: {runtime_exited(returncode).message}", instance=self)
                self._die(reset=True, reason="failure")
        self._maybe_cleanup()

    def _die(self, reset: bool, reason: str | None = None) -> None:
        """End the instance. With extensions: the shutdown phase (SHUTDOWN with ``reason``:
        spindown, timeout or failure), then SIGKILL for whatever is left at its deadline."""
        if self.dead:
            return
        self.life.advance(InstanceEvent.DIE)
        self._freezer.cancel()
        if self._init_timer is not None:
            self._init_timer.cancel()
        self._init_timer = None
        self._deadlines.cancel()
        self.slots.cancel_parked()
        runtime_alive = self.process is not None and self.process.alive
        if self.extensions.any:
            self._freezer.busy()
            self.telemetry.flush()
            budget = self.extensions.shutdown(reason or ("failure" if reset else "spindown"), self._maybe_cleanup)
            if runtime_alive:
                if budget and not reset:  # a graceful spindown: SIGTERM, then a share of the budget
                    self.process.terminate()  # type: ignore[union-attr]
                    self._loop.call_later(budget * RUNTIME_SHUTDOWN_SHARE, self.kill_runtime)
                else:
                    self.process.kill()  # type: ignore[union-attr]
            if budget:
                self._loop.call_later(budget, self.kill)
            self._maybe_cleanup()
        elif runtime_alive:
            self.process.kill()  # type: ignore[union-attr]  # SIGKILL works on a stopped group too
        else:
            self._cleanup()
        self.function.instance_gone(self, reset)

    def _maybe_cleanup(self) -> None:
        """Clean up once the runtime and every extension process have exited."""
        if (self.process is None or not self.process.alive) and not self.extensions.alive:
            self.extensions.cancel_parked()
            self._cleanup()

    def _cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        self.telemetry.close()
        if self.server is not None:
            self.server.close()
            self.server = None
        self.function.host.sandbox.release(self.hex, self.uid)
        self.uid = None
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = ""

    # -- the pool's levers ----------------------------------------------------------------

    def stop(self) -> None:
        """Stop an instance the pool no longer needs (idle timeout, recycling)."""
        if self.running or self.bound is not None:
            if self.life.can(InstanceEvent.RETIRE):
                self.life.advance(InstanceEvent.RETIRE)
        else:
            self._die(reset=False)

    def terminate(self) -> None:
        if self.extensions.any and not self.dead:
            self._die(reset=False, reason="spindown")  # the shutdown phase, SIGTERM included
            return
        if self.process is not None and self.process.alive:
            self._freezer.busy()
            self.process.terminate()

    def kill_runtime(self) -> None:
        if self.process is not None and self.process.alive:
            self.process.kill()

    def kill(self) -> None:
        self.kill_runtime()
        self.extensions.kill()

    @property
    def alive(self) -> bool:
        """Whether any of its processes still runs."""
        return (self.process is not None and self.process.alive) or self.extensions.alive
