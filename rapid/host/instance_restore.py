"""SnapStart, as an instance lives it: forked from its function's template, then restored.

An instance of a SnapStart function (``rapid.host.snap_template``) does not spawn its
runtime: ``_fork`` asks the template for a fork, in the sandbox prepared for this instance,
and the fork runs the Runtime API's restore phase. ``restore_next`` answers its ``GET
/restore/next`` at once (the fork is the restored snapshot); its after-restore hooks run;
its first ``/next`` ends the restore (``Restore Duration`` on its first REPORT, in
``rapid.host.instance_end``). The restore has AWS's limit, 10 s (``restore_timeout``)
from the fork to that ``/next``.

How a restore fails, as on Lambda: ``POST /restore/error`` (an after-restore hook raised)
is answered 202, and the invocation the instance was started for fails with
``SnapStartException`` (400); a restore past its limit fails it with
``SnapStartTimeoutException`` (408). Either way a ``RESTORE_REPORT`` line (or, in JSON
log format, a ``platform.restoreReport`` record) says so, Telemetry API subscribers get
``platform.restoreRuntimeDone`` and ``platform.restoreReport`` with that status
(``rapid.host.restore_telemetry``), and the instance ends; the template stays, so the next
new instance forks again. A template whose init failed fails that invocation with the init
error instead, as a bare init's failure would.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rapid.core.errors import ServiceError
from rapid.core.invocation import InvocationEvent, Outcome
from rapid.core.report import restore_report_text
from rapid.core.restore_records import restore_report_json
from rapid.host.restore_telemetry import RestoreTelemetry
from rapid.host.snap_template import TemplateInitError
from rapid.http.message import Response
from rapid.supervisor.sandbox import SandboxSpec

if TYPE_CHECKING:
    from rapid.host.instance import Instance

    _Base = Instance
else:
    _Base = object

_NO_RESTORE = {"errorMessage": "No restore phase now", "errorType": "InvalidStateTransition"}


class InstanceRestore(_Base):
    __slots__ = ()

    async def _fork(self, sandbox: SandboxSpec) -> bool:
        """SnapStart: this instance's runtime is forked from the initialised template. False
        if the template's init failed (reported as this instance's init failure)."""
        fn = self.function
        assert fn.snap is not None
        try:
            process = await fn.snap.fork(
                fn.environment(self, sandbox.tmpdir), fn.code.task_root, sandbox, self._on_line, self._on_exit
            )
        except TemplateInitError as exc:
            if self.bound is None:  # the init ran once for the invocation that started it: that one fails
                self.bound = fn.take()
            if exc.error is not None:  # the platform ended it (an exit, the OOM killer)
                self._init_failed(exc.error, None, "error", reported=True)
            else:
                self._init_failed(None, (exc.body, exc.error_type), "error", reported=True)
            return False
        self.process = process
        self.spawned_at = time.monotonic()  # restore starts here: the init was the template's
        if self.dead:  # stopped while the template was forking
            process.kill()
            return False
        if isinstance(self.telemetry, RestoreTelemetry):
            self.telemetry.restore_start(fn.name, fn.version, self.hex, fn.memory)
        self._init_timer = self._loop.call_later(fn.host.config.restore_timeout, self._restore_timed_out)
        return True

    def restore_next(self) -> Response:
        """``GET /restore/next``: a forked instance's restore phase begins (answered at once:
        the snapshot, here the fork, is already restored); its hooks run, then ``/next``."""
        if not self.snapped or self.initialized or self.restoring:
            return Response.json(403, _NO_RESTORE)
        self.restoring = True
        return Response.fixed(200, b"", [])

    def restore_error(self, body: bytes, error_type: str) -> Response:
        """``POST /restore/error``: an after-restore hook failed. Answered 202; then the
        instance ends and the invocation it started for fails as Lambda fails it:
        ``SnapStartException`` (400)."""
        if not self.snapped or self.initialized:
            return Response.json(403, _NO_RESTORE)
        self._loop.call_soon(self._restore_failed, "error", error_type or None)
        return Response.json(202, {"status": "OK"})

    def _init_report(self, phase: str, status: str, error_type: str | None, ms: float | None = None) -> None:
        """A restored instance's failed "init" is its restore: a ``RESTORE_REPORT`` line
        (``platform.restoreReport`` in JSON log format) and the restore's telemetry."""
        if not self.snapped:
            super()._init_report(phase, status, error_type, ms)
            return
        fn = self.function
        if ms is None:
            ms = (time.monotonic() - self.spawned_at) * 1000.0 if self.spawned_at else 0.0
        if fn.json_logs:
            fn.log_line(restore_report_json(ms, status, error_type), instance=self)
        else:
            fn.log_line(restore_report_text(ms, status, error_type), instance=self)
        if status != "success":
            self.telemetry.init_done(fn.init_type(self), phase, status, error_type, ms)

    def _restore_timed_out(self) -> None:
        self._init_timer = None
        if not self.initialized and not self.dead:
            self._restore_failed("timeout", None)

    def _restore_failed(self, status: str, error_type: str | None) -> None:
        if self.dead or self.initialized:
            return
        fn = self.function
        self._init_report("init", status, error_type)
        inv, self.bound = self.bound, None
        if inv is None:
            inv = fn.take()  # the invocation this instance was started for
        if inv is not None and not inv.settled:
            inv.settle(InvocationEvent.FAIL, Outcome(b"", status="error", service_error=_restore_error(
                status, error_type, fn.host.config.restore_timeout)))
        self._die(reset=True, reason="timeout" if status == "timeout" else "failure")


def _restore_error(status: str, error_type: str | None, limit: float) -> ServiceError:
    if status == "timeout":
        return ServiceError(408, "SnapStartTimeoutException",
                            f"Lambda couldn't restore the snapshot within the timeout limit ({limit:.2f} seconds): "
                            "the runtime did not finish its restore (afterRestore() runtime hooks) in time.")
    return ServiceError(400, "SnapStartException",
                        f"Lambda couldn't restore the function: the afterRestore() runtime hook failed "
                        f"({error_type or 'error'}). Check the function's logs.")
