"""Telemetry of a SnapStart instance: its restore reported where another instance's init is.

A restored instance goes through the same lifecycle as any (``rapid.host.instance``): its
"init" is the restore, ending at the runtime's first ``/next``. This ``Telemetry`` sends
the Telemetry API's restore records in place of the init ones: nothing at the spawn (the
fork is not made yet), ``platform.restoreStart`` when the fork exists (``restore_start``),
and ``platform.restoreRuntimeDone`` then ``platform.restoreReport`` where the instance
reports its init done or failed. The older Logs API sends neither kind.
"""

from __future__ import annotations

from rapid.core.restore_records import restore_report_record, restore_runtime_done_record, restore_start_record
from rapid.host.telemetry import Telemetry


class RestoreTelemetry(Telemetry):
    def init_start(self, init_type: str, phase: str, name: str, version: str, instance: str, memory: int) -> None:
        """Not sent: a restored instance's init ran in its template, once."""

    def restore_start(self, name: str, version: str, instance: str, memory: int) -> None:
        if self.listening:
            self.emit("platform", "platform.restoreStart", restore_start_record(name, version, instance, memory))

    def init_done(self, init_type: str, phase: str, status: str, error_type: str | None, ms: float) -> None:
        """The restore ended: platform.restoreRuntimeDone and platform.restoreReport."""
        if self.listening:
            self.emit("platform", "platform.restoreRuntimeDone", restore_runtime_done_record(status, error_type))
            self.emit("platform", "platform.restoreReport", restore_report_record(ms, status, error_type))

    def __repr__(self) -> str:
        return "<Restore" + super().__repr__()[1:]
