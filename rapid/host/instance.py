"""One execution environment: a runtime process, its own Runtime API server, its state.

Theory of operation
-------------------
An instance is born *starting*: it opens its own Runtime API server on a fresh loopback
port (that address is its identity: a request on it can only ever touch this instance's
invocations) and spawns the runtime with ``AWS_LAMBDA_RUNTIME_API`` pointing there.

Init ends at the runtime's first ``GET /next``. A plain start has 10 s for that; a
*suppressed* start (the one after an instance of this function died mid-invoke or failed
init) carries the oldest queued invocation and runs init on that invocation's clock, as
Lambda does.

From then on it loops: ``/next`` parks a future (or takes the queue head at once),
``dispatch`` answers it with an event and arms the invocation's timer, ``/response`` or
``/error`` settles the invocation and writes END/REPORT. Every Runtime API call is checked
against ``RuntimeMachine`` first.

It dies once, through ``_die``: on a timeout, a crash, an init failure, or shutdown. Its
process group is killed, the function is told (so it can start a replacement when work
waits), and the server and private TMPDIR go when the process has exited. A dead instance
is never reused.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from typing import TYPE_CHECKING

import msgspec

from rapid.core import report
from rapid.core.errors import (
    MAX_RUNTIME_RESPONSE,
    FunctionError,
    RuntimeAPIError,
    invalid_request_id,
    normalise_error_type,
    payload_too_large,
    response_too_large,
    runtime_exited,
    timed_out,
)
from rapid.core.invocation import (
    Invocation,
    InvocationEvent,
    InvocationState,
    Outcome,
    function_failure,
    platform_failure,
    success,
)
from rapid.core.runtime_state import RuntimeEvent, RuntimeMachine, RuntimeState
from rapid.http.message import Request, Response
from rapid.http.protocol import HttpConnection, serve
from rapid.supervisor.process import RuntimeProcess

if TYPE_CHECKING:
    from rapid.host.function import Function

_encode = msgspec.json.Encoder().encode
_ACCEPTED = b'{"status":"OK"}'


class Instance:
    def __init__(self, function: Function, instance_id: int, bound: Invocation | None) -> None:
        self.function = function
        self.id = instance_id
        self.hex = os.urandom(16).hex()
        self.machine = RuntimeMachine()
        self.bound = bound  # the invocation a suppressed init runs for
        self.suppressed = bound is not None
        self.current: Invocation | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.process: RuntimeProcess | None = None
        self.server: asyncio.Server | None = None
        self.address = ""
        self.tmpdir = ""
        self.dead = False
        self.spawned_at = 0.0
        self.init_duration_ms: float | None = None  # reported on the first REPORT only
        self.invokes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    # -- start ----------------------------------------------------------------------------

    async def start(self) -> None:
        fn = self.function
        try:
            self.server = await serve(self.runtime_api, "127.0.0.1", 0, MAX_RUNTIME_RESPONSE)
        except OSError as exc:
            self._init_failed(FunctionError("Sandbox.Failure", f"Runtime API: {exc}"), None, "failure")
            return
        port = self.server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        self.tmpdir = fn.host.make_tmpdir(self.hex)
        self.spawned_at = time.monotonic()
        if self.bound is not None:
            self._arm(self.bound, self.spawned_at)
        code = fn.code
        if code.argv is None:
            assert code.entrypoint_error is not None
            self._init_failed(code.entrypoint_error, None, "error")
            return
        try:
            self.process = RuntimeProcess(
                code.argv, fn.environment(self), code.task_root, self._on_line, self._on_exit, fn.host.guardian
            )
        except OSError as exc:
            self._init_failed(
                FunctionError("Runtime.InvalidEntrypoint", f"fork/exec {code.argv[0]}: {exc.strerror.lower()}"),
                None,
                "error",
            )
            return
        if self.bound is None:
            self._timer = self._loop.call_later(fn.host.config.init_timeout, self._init_timed_out)

    # -- Runtime API ----------------------------------------------------------------------

    def runtime_api(self, req: Request, conn: HttpConnection) -> Response | asyncio.Future[Response]:
        path = req.path
        while path.startswith("//"):  # a client joining "/" + "/2018-06-01/..." still works
            path = path[1:]
        if not path.startswith("/2018-06-01/runtime/"):
            return Response.json(404, {"errorMessage": "Not Found", "errorType": "NotFound"})
        rest = path[20:]
        try:
            if rest == "invocation/next":
                if req.method != "GET":
                    return _method_not_allowed()
                return self.next(conn)
            if rest.startswith("invocation/"):
                request_id, _, action = rest[11:].rpartition("/")
                if req.method != "POST":
                    return _method_not_allowed()
                if "%" in request_id:
                    from urllib.parse import unquote

                    request_id = unquote(request_id)
                if action == "response":
                    return self.respond(request_id, req)
                if action == "error":
                    return self.error(request_id, req)
            elif rest == "init/error":
                if req.method != "POST":
                    return _method_not_allowed()
                return self.init_error(req)
        except RuntimeAPIError as exc:
            return Response.json(exc.status, exc.body())
        return Response.json(404, {"errorMessage": "Not Found", "errorType": "NotFound"})

    def next(self, conn: HttpConnection) -> Response | asyncio.Future[Response]:
        state = self.machine.state
        if state is RuntimeState.READY and (self.waiter is None or self.waiter.done()):
            pass  # the runtime's previous /next connection dropped; it is polling again
        else:
            self.machine.advance(RuntimeEvent.NEXT)
        if state is RuntimeState.INITIALIZING:
            self._init_done()
            if self.bound is not None:
                inv, self.bound = self.bound, None
                return self._dispatch(inv)
        inv = self.function.take(self)
        if inv is not None:
            return self._dispatch(inv)
        self.waiter = waiter = self._loop.create_future()
        waiter.add_done_callback(self._waiter_done)
        self.function.became_idle(self)
        return waiter

    def _waiter_done(self, fut: asyncio.Future[Response]) -> None:
        if fut.cancelled() and self.waiter is fut:
            # The runtime hung up on its /next: nobody can take an event here until it asks again.
            self.waiter = None
            self.function.not_idle(self)

    def deliver(self, inv: Invocation) -> None:
        """Hand ``inv`` to the runtime's parked ``/next`` (the function chose us as idle)."""
        waiter, self.waiter = self.waiter, None
        assert waiter is not None and not waiter.done()
        waiter.set_result(self._dispatch(inv))

    def _dispatch(self, inv: Invocation) -> Response:
        now = time.monotonic()
        if inv.state is InvocationState.QUEUED and inv.started == 0.0:
            self._arm(inv, now)
        inv.advance(InvocationEvent.DISPATCH)
        self.machine.advance(RuntimeEvent.DISPATCH)
        self.current = inv
        fn = self.function
        fn.log_platform(inv, report.start_text(inv.request_id, fn.version) if not fn.json_logs
                        else report.start_json(inv.request_id, fn.version, inv.function_arn))
        headers = [
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Aws-Request-Id", inv.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(inv.deadline_epoch_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", inv.function_arn),
            ("Lambda-Runtime-Trace-Id", inv.trace_id),
        ]
        if inv.client_context:
            headers.append(("Lambda-Runtime-Client-Context", inv.client_context))
        if inv.cognito_identity:
            headers.append(("Lambda-Runtime-Cognito-Identity", inv.cognito_identity))
        return Response(200, inv.payload, headers)

    def _arm(self, inv: Invocation, now: float) -> None:
        """Start ``inv``'s clock: its deadline, and the timer that enforces it."""
        inv.started = now
        inv.deadline = now + inv.timeout
        inv.deadline_epoch_ms = int((time.time() + inv.timeout) * 1000)
        # uvloop's clock ticks in whole milliseconds: durations use time.monotonic(), and
        # the timer is relative, armed at the same instant.
        self._timer = self._loop.call_later(inv.timeout, self._timed_out, inv)

    def _answering(self, request_id: str) -> Invocation:
        inv = self.current
        if inv is None or inv.request_id != request_id or inv.settled:
            raise invalid_request_id()
        return inv

    def respond(self, request_id: str, req: Request) -> Response:
        inv = self._answering(request_id)
        self.machine.advance(RuntimeEvent.RESPONSE)
        if req.too_large:
            self._finish(inv, InvocationEvent.FAIL, platform_failure(response_too_large(), inv.request_id, _encode))
            err = payload_too_large()
            return Response.json(err.status, err.body())
        self._finish(inv, InvocationEvent.RESPOND, success(bytes(req.body), req.headers.get("content-type")))
        return Response(202, _ACCEPTED, [("Content-Type", "application/json")])

    def error(self, request_id: str, req: Request) -> Response:
        inv = self._answering(request_id)
        self.machine.advance(RuntimeEvent.ERROR)
        body = bytes(req.body) if not req.too_large else b""
        error_type = req.headers.get("lambda-runtime-function-error-type") or _error_type_of(body)
        self._finish(inv, InvocationEvent.FAIL, function_failure(body, normalise_error_type(error_type)))
        return Response(202, _ACCEPTED, [("Content-Type", "application/json")])

    def init_error(self, req: Request) -> Response:
        self.machine.advance(RuntimeEvent.INIT_ERROR)
        body = bytes(req.body)
        error_type = req.headers.get("lambda-runtime-function-error-type") or _error_type_of(body)
        # Answer the runtime first; then end it (it should exit by itself, but need not).
        self._loop.call_soon(self._init_failed, None, (body, normalise_error_type(error_type)), "error")
        return Response(202, _ACCEPTED, [("Content-Type", "application/json")])

    # -- outcomes -------------------------------------------------------------------------

    def _finish(self, inv: Invocation, event: InvocationEvent, outcome: Outcome) -> None:
        """Settle ``inv``: END and REPORT go out before the invoker is answered, so a log
        tail asked for with ``X-Amz-Log-Type: Tail`` holds them."""
        self._cancel_timer()
        process = self.process
        if process is not None:
            process.drain()  # while ``inv`` is current, so its lines join its log tail
        if self.current is inv:
            self.current = None
        self.invokes += 1
        self._report(inv, outcome)
        inv.settle(event, outcome)

    def _report(self, inv: Invocation, outcome: Outcome, include_start: bool = False) -> None:
        fn = self.function
        now = time.monotonic()
        if include_start:
            fn.log_platform(inv, report.start_text(inv.request_id, fn.version) if not fn.json_logs
                            else report.start_json(inv.request_id, fn.version, inv.function_arn))
        init_ms, self.init_duration_ms = self.init_duration_ms, None
        r = report.Report(
            request_id=inv.request_id,
            duration_ms=(now - inv.started) * 1000.0 if inv.started else 0.0,
            memory_size_mb=fn.memory,
            max_memory_used_mb=self.process.memory.sample() if self.process is not None else 0,
            init_duration_ms=init_ms,
            status=outcome.status,
            error_type=outcome.error_type if outcome.status != "success" else None,
        )
        if fn.json_logs:
            fn.log_platform(inv, report.report_json(r))
        else:
            fn.log_platform(inv, report.end_text(inv.request_id))
            fn.log_platform(inv, report.report_text(r))

    def _timed_out(self, inv: Invocation) -> None:
        self._timer = None
        if inv.settled:
            return
        outcome = platform_failure(timed_out(inv.timeout), inv.request_id, _encode)
        was_queued = inv.state is InvocationState.QUEUED
        if was_queued:  # a suppressed init that never reached /next
            self._init_report("invoke", "timeout", None)
        if self.process is not None:
            self.process.drain()
        if self.current is inv:
            self.current = None
        self.invokes += 1
        self._report(inv, outcome, include_start=was_queued)
        inv.settle(InvocationEvent.TIME_OUT, outcome)
        self._die(reset=True)

    def _init_done(self) -> None:
        if not self.suppressed:  # a suppressed init's timer is its invocation's: keep it
            self._cancel_timer()
            self.init_duration_ms = (time.monotonic() - self.spawned_at) * 1000.0

    def _init_timed_out(self) -> None:
        self._timer = None
        if self.machine.state is RuntimeState.INITIALIZING and not self.dead:
            self._init_failed(None, None, "timeout")

    def _init_failed(
        self, error: FunctionError | None, posted: tuple[bytes, str] | None, status: str
    ) -> None:
        """Init ended without a ``/next``: report it, answer the invocation it ran for (a
        suppressed init), and let the function retry inside the next invoke."""
        if self.dead:
            return
        error_type = posted[1] if posted else (error.error_type if error else None)
        self._init_report("invoke" if self.suppressed else "init", status, error_type)
        inv, self.bound = self.bound, None
        if inv is not None and not inv.settled:
            self._cancel_timer()
            if posted is not None:
                outcome = function_failure(posted[0], posted[1])
            elif error is not None:
                outcome = platform_failure(error, inv.request_id, _encode)
            else:
                outcome = platform_failure(timed_out(inv.timeout), inv.request_id, _encode)
            self.invokes += 1
            self._report(inv, outcome, include_start=True)
            inv.settle(InvocationEvent.FAIL, outcome)
        self._die(reset=True)

    def _init_report(self, phase: str, status: str, error_type: str | None) -> None:
        fn = self.function
        ms = (time.monotonic() - self.spawned_at) * 1000.0 if self.spawned_at else 0.0
        if fn.json_logs:
            fn.log_line(report.init_report_json(ms, phase, status, error_type, "on-demand"))
        else:
            fn.log_line(report.init_report_text(ms, phase, status, error_type))

    # -- the process ----------------------------------------------------------------------

    def _on_line(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        inv = self.current or self.bound
        fn = self.function
        if fn.json_logs:
            text = report.function_line_json(text, inv.request_id if inv else None)
        fn.log_line(text)
        if inv is not None and inv.log_lines is not None:
            inv.log_lines.append(text)

    def _on_exit(self, returncode: int) -> None:
        if self.machine.state is not RuntimeState.EXITED:
            state = self.machine.state
            self.machine.advance(RuntimeEvent.EXIT)
            if not self.dead:
                inv = self.current
                if state is RuntimeState.INIT_FAILED:
                    pass  # the /init/error handler already scheduled _init_failed
                elif state is RuntimeState.INITIALIZING:
                    self._init_failed(runtime_exited(returncode), None, "error")
                elif inv is not None and not inv.settled:
                    self._cancel_timer()
                    self.current = None
                    self.invokes += 1
                    outcome = platform_failure(runtime_exited(returncode), inv.request_id, _encode)
                    self._report(inv, outcome)
                    inv.settle(InvocationEvent.FAIL, outcome)
                    self._die(reset=True)
                else:
                    if not self.function.host.stopping:
                        self.function.log_line(f"Error: {runtime_exited(returncode).message}")
                    self._die(reset=True)
        self._cleanup()

    def _die(self, reset: bool) -> None:
        if self.dead:
            return
        self.dead = True
        self._cancel_timer()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.cancel()
        if self.process is not None and self.process.alive:
            self.process.kill()
        else:
            self._cleanup()
        self.function.instance_gone(self, reset)

    def _cleanup(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = ""

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- shutdown -------------------------------------------------------------------------

    def terminate(self) -> None:
        if self.process is not None and self.process.alive:
            self.process.terminate()

    def kill(self) -> None:
        if self.process is not None and self.process.alive:
            self.process.kill()

    @property
    def idle(self) -> bool:
        return self.waiter is not None and not self.waiter.done()

    def __repr__(self) -> str:
        return (
            f"<Instance {self.function.name}#{self.id} {self.machine.state.value}"
            f"{' dead' if self.dead else ''} invokes={self.invokes} api={self.address}>"
        )


def _method_not_allowed() -> Response:
    return Response.json(405, {"errorMessage": "Method Not Allowed", "errorType": "MethodNotAllowed"})


def _error_type_of(body: bytes) -> str | None:
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if isinstance(value, dict):
        t = value.get("errorType")
        return t if isinstance(t, str) else None
    return None
