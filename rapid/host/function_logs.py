"""What a function writes to its log stream: platform lines (START, END, REPORT,
INIT_REPORT) and every other line, to the three places a line goes.

A line goes to the daemon's stdout (``rapid.logs.sink``, with the ``[name]`` prefix when
several functions share it), to the dashboard's feed, and to the log store in the data dir
(``rapid.logs.store``, per log stream). The invocation's own lines (its platform lines,
``log_platform``) also join its log tail (``X-Amz-Log-Type: Tail``). END and REPORT go
together (``log_platform_lines``): one pass over the three sinks for both.

``FunctionLogs`` is the half of ``rapid.host.function.Function`` that holds these paths; it
has no state of its own.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rapid.core import report
from rapid.core.invocation import Invocation, Outcome
from rapid.dashboard.feed import error_type_of

if TYPE_CHECKING:
    from rapid.host.function import Function
    from rapid.host.instance import Instance

    _Base = Function
else:
    _Base = object


class FunctionLogs(_Base):
    __slots__ = ()

    def report_template_init(self, ms: float, status: str, error_type: str | None) -> None:
        """A SnapStart template's init: one INIT_REPORT, as when Lambda publishes a version."""
        if self.json_logs:
            self.log_line(report.init_report_json(ms, "init", status, error_type, "snap-start"))
        else:
            self.log_line(report.init_report_text(ms, "init", status, error_type))

    # -- logs -----------------------------------------------------------------------------

    def log_line(self, text: str, request_id: str | None = None, instance: Instance | None = None) -> None:
        self.host.logs.line(self._prefix + text if self._prefix else text)
        self.host.feed.line(self.name, request_id, text)
        if self.host.log_store is not None:  # kept per log stream in the data dir (rapid.logs)
            self.host.log_store.function_line(self, text, request_id, instance)

    def log_platform(self, inv: Invocation, text: str, instance: Instance | None = None) -> None:
        """A platform line of ``inv`` (START, END, REPORT): kept in the stream of
        ``instance``, the one running it (None: the instance is found from the request id,
        or, for an invocation that never reached a runtime, the version's platform stream)."""
        self.log_platform_lines(inv, (text,), instance)

    def log_platform_lines(self, inv: Invocation, texts: tuple[str, ...], instance: Instance | None = None,
                           now: float | None = None) -> None:
        """``log_platform`` for several lines at once (END and REPORT): each sink is called
        once for all of them, with one reading of the clock (``now``, epoch seconds)."""
        host = self.host
        if now is None:
            now = time.time()
        prefix = self._prefix
        if len(texts) == 1:
            host.logs.line(prefix + texts[0] if prefix else texts[0])
        else:
            host.logs.write_lines(tuple(prefix + text for text in texts) if prefix else texts)
        host.feed.many_lines(self.name, inv.request_id, texts, now)
        store = host.log_store
        if store is not None:  # kept per log stream in the data dir (rapid.logs)
            store.function_lines(self, texts, inv.request_id, instance, now)
        if inv.log_lines is not None:
            inv.log_lines.extend(texts)

    def start_line(self, inv: Invocation) -> str:
        if self.json_logs:
            return report.start_json(inv.request_id, self.version, inv.function_arn)
        return report.start_text(inv.request_id, self.version)

    def report(
        self, inv: Invocation, outcome: Outcome, init_ms: float | None, peak_mb: int, include_start: bool,
        restore_ms: float | None = None, instance: Instance | None = None,
    ) -> report.Report:
        """The platform's lines for a finished invocation: END and REPORT (START too when
        the invocation never reached a runtime: then all three go where its START went)."""
        now = time.time()  # the REPORT's time, for every sink and the feed
        if include_start:
            instance = None
            self.log_platform_lines(inv, (self.start_line(inv),), None, now)
        r = report.Report(
            request_id=inv.request_id,
            duration_ms=(time.monotonic() - inv.started) * 1000.0 if inv.started else 0.0,
            memory_size_mb=self.memory,
            max_memory_used_mb=peak_mb,
            init_duration_ms=init_ms,
            restore_duration_ms=restore_ms,
            status=outcome.status,
            error_type=outcome.error_type if outcome.status != "success" else None,
        )
        if self.json_logs:
            self.log_platform_lines(inv, (report.report_json(r),), instance, now)
        else:
            self.log_platform_lines(inv, (report.end_text(inv.request_id), report.report_text(r)), instance, now)
        self.host.feed.invocation(
            self.name, self.version, inv.request_id, r.duration_ms, r.billed_ms, init_ms, peak_mb, r.status,
            error_type_of(outcome.body, r.error_type) if r.error_type else None, now,
        )
        return r

    def report_init(self, instance: Instance, ms: float, phase: str, status: str, error_type: str | None) -> None:
        if instance.provisioned:
            if status == "success":
                self.provisioned_failures, self.provisioned_error = 0, None
            else:
                self.provisioned_error = error_type or f"Init {status}"
        if self.json_logs:
            self.log_line(report.init_report_json(ms, phase, status, error_type, self.init_type(instance)),
                          instance=instance)
        else:
            self.log_line(report.init_report_text(ms, phase, status, error_type), instance=instance)
