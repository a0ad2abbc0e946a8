"""One execution environment: a runtime process, its own Runtime API server, its state.

Theory of operation
-------------------
An instance is born *starting*: it opens its own Runtime API server on a fresh loopback
port (that address is its identity; a connection from any process but its own runtime is
refused) and has the host's process backend (``rapid.supervisor.backend``) spawn the
runtime with ``AWS_LAMBDA_RUNTIME_API`` pointing there.

Init ends at the runtime's first ``GET /next``. A plain start has 10 s for that (a
provisioned one, 130 s or the timeout); a *suppressed* start (after an instance of this
function died mid-invoke or failed init) carries the oldest queued invocation and runs init
on that invocation's clock, as Lambda does.

The instance has ``per_instance_concurrency`` slots (1 on Lambda), each a
``RuntimeMachine``: ``/next`` parks a future on a slot (or takes the queue head at once);
``deliver`` answers it with an event and arms that invocation's timer; ``/response`` or
``/error`` settles the invocation and writes END/REPORT. Every call is checked against the
slot's machine first. While nothing runs, the instance is frozen (SIGSTOP on its process
group) so background work in user code stalls between invokes, as on Lambda.

It dies once, through ``_die``: on a timeout, a crash, an init failure, an idle timeout,
recycling, or shutdown. Its process group is killed, the function is told (so it can start a
replacement when work waits), and the server and private TMPDIR go when the process has
exited. A dead instance is never reused.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from typing import TYPE_CHECKING

import msgspec

from rapid.api.runtime import RuntimeAPI, posted_error_type, trailer_error
from rapid.core import report
from rapid.core.errors import (
    MAX_RUNTIME_RESPONSE,
    FunctionError,
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
from rapid.host.slots import Slots
from rapid.supervisor.backend import RuntimeHandle
from rapid.supervisor.peers import is_peer_of

if TYPE_CHECKING:
    from rapid.host.function import Function

_encode = msgspec.json.Encoder().encode
_ACCEPTED = b'{"status":"OK"}'
_JSON = [("Content-Type", "application/json")]


class Instance:
    def __init__(
        self, function: Function, instance_id: int, bound: Invocation | None, *, provisioned: bool = False
    ) -> None:
        self.function = function
        self.id = instance_id
        self.hex = os.urandom(16).hex()
        self.provisioned = provisioned
        self.slots = Slots(function.per_instance)
        self.bound = bound  # the invocation a suppressed init runs for
        self.suppressed = bound is not None
        self.initialized = False
        self.process: RuntimeHandle | None = None
        self.server: asyncio.Server | None = None
        self.address = ""
        self.tmpdir = ""
        self.tmp_warned = False
        self.uid: int | None = None
        self.dead = False
        self.retiring = False  # recycle once the running invocations are done
        self.frozen = False
        self.born = time.monotonic()
        self.idle_since = self.born
        self.spawned_at = 0.0
        self.answered_at = 0.0  # when it last finished an invocation
        self.init_duration_ms: float | None = None  # reported on the first REPORT only
        self.invokes = 0
        self._init_timer: asyncio.TimerHandle | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._loop = asyncio.get_running_loop()

    # -- start ----------------------------------------------------------------------------

    async def start(self) -> None:
        fn = self.function
        host = fn.host
        try:
            self.server = await serve(RuntimeAPI(self), "127.0.0.1", 0, MAX_RUNTIME_RESPONSE)
        except OSError as exc:
            self._init_failed(FunctionError("Sandbox.Failure", f"Runtime API: {exc}"), None, "failure")
            return
        if self.dead:  # stopped while the server was opening
            self._cleanup()
            return
        port = self.server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        sandbox = host.sandbox.prepare(self)
        self.tmpdir, self.uid = sandbox.tmpdir_on_host, sandbox.uid
        self.spawned_at = time.monotonic()
        if self.bound is not None:
            self._arm(self.bound)
        code = fn.code
        if code.argv is None:
            assert code.entrypoint_error is not None
            self._init_failed(code.entrypoint_error, None, "error")
            return
        try:
            self.process = host.processes.spawn(
                code.argv, fn.environment(self, sandbox.tmpdir), code.task_root, self._on_line, self._on_exit,
                sandbox,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self._init_failed(
                FunctionError("Runtime.InvalidEntrypoint", f"fork/exec {code.argv[0]}: {reason.lower()}"),
                None,
                "error",
            )
            return
        if self.bound is None:
            limit = host.config.init_timeout
            if self.provisioned:  # Lambda: 130 s or the function timeout, whichever is higher
                limit = max(130.0, fn.timeout)
            self._init_timer = self._loop.call_later(limit, self._init_timed_out)

    # -- Runtime API ----------------------------------------------------------------------

    def owns(self, conn: HttpConnection) -> bool:
        """Whether the peer of ``conn`` is a process of this instance (checked once)."""
        if conn.tag is None:
            conn.tag = self._check_peer(conn)
        return conn.tag is True

    def _check_peer(self, conn: HttpConnection) -> bool:
        if not self.function.host.config.verify_runtime_peer:
            return True
        process = self.process
        if process is None or conn.peer is None or not self.address:
            return False
        port = int(self.address.rsplit(":", 1)[1])
        return is_peer_of(conn.peer, port, self.uid, process.pid, process.members())

    @property
    def running(self) -> dict[str, tuple[Invocation, RuntimeMachine]]:
        return self.slots.running

    def next(self) -> Response | asyncio.Future[Response]:
        slot = self.slots.for_next()
        first = not self.initialized
        if first:
            self._init_done()
            if self.bound is not None:
                inv, self.bound = self.bound, None
                return self._dispatch(inv, slot)
        if self.retiring:  # recycled: this runtime takes no more work
            self._loop.call_soon(self._die, False)
            return self._park(slot)
        inv = self.function.take()
        if inv is not None:
            return self._dispatch(inv, slot)
        fut = self._park(slot)
        self.function.became_idle(self)
        if not self.running:
            self.idle_since = time.monotonic()
            self._freeze()
        return fut

    def _park(self, slot: RuntimeMachine) -> asyncio.Future[Response]:
        fut: asyncio.Future[Response] = self._loop.create_future()
        self.slots.park(slot, fut)
        fut.add_done_callback(self._parked_done)
        return fut

    def _parked_done(self, fut: asyncio.Future[Response]) -> None:
        if fut.cancelled() and self.slots.hung_up(fut):
            self.function.not_idle(self)  # it may poll again, on a new connection

    @property
    def idle_slots(self) -> int:
        return self.slots.idle

    def deliver(self, inv: Invocation) -> None:
        """Hand ``inv`` to a parked ``/next`` (the function chose this instance as idle)."""
        slot, fut = self.slots.unpark()
        self._thaw()
        fut.set_result(self._dispatch(inv, slot))

    def _dispatch(self, inv: Invocation, slot: RuntimeMachine) -> Response:
        if inv.started == 0.0:
            self._arm(inv)
        inv.advance(InvocationEvent.DISPATCH)
        self.slots.dispatch(inv, slot)
        fn = self.function
        fn.log_platform(inv, fn.start_line(inv))
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

    def _arm(self, inv: Invocation) -> None:
        """Start ``inv``'s clock: its deadline, and the timer that enforces it."""
        inv.started = time.monotonic()
        inv.deadline_epoch_ms = int((time.time() + inv.timeout) * 1000)
        # uvloop's clock ticks in whole milliseconds: durations use time.monotonic(), and
        # the timer is relative, armed at the same instant.
        self._timers[inv.request_id] = self._loop.call_later(inv.timeout, self._timed_out, inv)

    def respond(self, request_id: str, req: Request) -> Response:
        inv, slot = self.slots.answering(request_id)
        slot.advance(RuntimeEvent.RESPONSE)
        if req.too_large:
            self._finish(inv, InvocationEvent.FAIL, platform_failure(response_too_large(), inv.request_id, _encode))
            err = payload_too_large()
            return Response.json(err.status, err.body())
        failed = trailer_error(req)  # the Go client reports a failure mid-body in trailers
        if failed is not None:
            self._finish(inv, InvocationEvent.FAIL, function_failure(failed[1], normalise_error_type(failed[0])))
        else:
            self._finish(inv, InvocationEvent.RESPOND, success(bytes(req.body), req.headers.get("content-type")))
        return Response(202, _ACCEPTED, _JSON)

    def error(self, request_id: str, req: Request) -> Response:
        inv, slot = self.slots.answering(request_id)
        slot.advance(RuntimeEvent.ERROR)
        body = bytes(req.body) if not req.too_large else b""
        self._finish(inv, InvocationEvent.FAIL, function_failure(body, normalise_error_type(posted_error_type(req))))
        return Response(202, _ACCEPTED, _JSON)

    def init_error(self, req: Request) -> Response:
        self.slots.for_init_error(self.initialized).advance(RuntimeEvent.INIT_ERROR)
        body = bytes(req.body)
        error_type = posted_error_type(req)
        # Answer the runtime first; then end it (it should exit by itself, but need not).
        self._loop.call_soon(self._init_failed, None, (body, normalise_error_type(error_type)), "error")
        return Response(202, _ACCEPTED, _JSON)

    # -- outcomes -------------------------------------------------------------------------

    def _finish(self, inv: Invocation, event: InvocationEvent, outcome: Outcome) -> None:
        """The runtime answered ``inv``: settle it, and recycle a retiring instance."""
        self._settle(inv, event, outcome)
        if self.retiring and not self.running and not self.dead:
            self._die(reset=False)

    def _settle(self, inv: Invocation, event: InvocationEvent, outcome: Outcome, include_start: bool = False) -> None:
        """Every way an invocation ends comes here. END and REPORT go out before the invoker
        is answered, so a log tail asked for with ``X-Amz-Log-Type: Tail`` holds them."""
        timer = self._timers.pop(inv.request_id, None)
        if timer is not None:
            timer.cancel()
        if self.process is not None:
            self.process.drain()  # while ``inv`` runs, so its lines join its log tail
        self.running.pop(inv.request_id, None)
        self.invokes += 1
        self.answered_at = time.monotonic()
        self._report(inv, outcome, include_start)
        inv.settle(event, outcome)

    def _report(self, inv: Invocation, outcome: Outcome, include_start: bool = False) -> None:
        """END and REPORT for ``inv`` (START too, if it never reached the runtime)."""
        init_ms, self.init_duration_ms = self.init_duration_ms, None
        peak = self.process.peak_memory_mb() if self.process is not None else 0
        self.function.report(inv, outcome, init_ms, peak, include_start)

    def _timed_out(self, inv: Invocation) -> None:
        self._timers.pop(inv.request_id, None)
        if inv.settled:
            return
        outcome = platform_failure(timed_out(inv.timeout), inv.request_id, _encode)
        was_queued = inv.state is InvocationState.QUEUED
        if was_queued:  # a suppressed init that never reached /next
            self.bound = None
            self._init_report("invoke", "timeout", None)
        self._settle(inv, InvocationEvent.TIME_OUT, outcome, include_start=was_queued)
        self._die(reset=True)

    def _init_done(self) -> None:
        self.initialized = True
        if self._init_timer is not None:
            self._init_timer.cancel()
            self._init_timer = None
        ms = (time.monotonic() - self.spawned_at) * 1000.0
        if self.provisioned:  # initialised ahead of any invoke: reported on its own line
            self._init_report("init", "success", None, ms)
        elif not self.suppressed:
            self.init_duration_ms = ms

    def _init_timed_out(self) -> None:
        self._init_timer = None
        if not self.initialized and not self.dead:
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
        self.function.report_init(self, ms, phase, status, error_type)

    # -- the process ----------------------------------------------------------------------

    def _on_line(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        inv = self.bound
        if inv is None and len(self.running) == 1:
            inv = next(iter(self.running.values()))[0]
        fn = self.function
        if fn.json_logs:
            text = report.function_line_json(text, inv.request_id if inv else None)
        fn.log_line(text)
        if inv is not None and inv.log_lines is not None:
            inv.log_lines.append(text)

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
                    self.function.log_line(f"Error: {runtime_exited(returncode).message}")
                self._die(reset=True)
        self._cleanup()

    def _freeze(self) -> None:
        # Lambda Managed Instances (several invocations per instance) are never frozen, and
        # could not be: the runtime's other pollers must reach /next while one is parked.
        fn = self.function
        if fn.per_instance > 1:
            return
        if fn.host.config.freeze and self.process is not None and not self.frozen:
            self.frozen = True
            self.process.freeze()

    def _thaw(self) -> None:
        if self.frozen and self.process is not None:
            self.frozen = False
            self.process.thaw()

    def _die(self, reset: bool) -> None:
        if self.dead:
            return
        self.dead = True
        for timer in (self._init_timer, *self._timers.values()):
            if timer is not None:
                timer.cancel()
        self._init_timer = None
        self.slots.cancel_parked()
        if self.process is not None and self.process.alive:
            self.process.kill()  # SIGKILL works on a stopped group too
        else:
            self._cleanup()
        self.function.instance_gone(self, reset)

    def _cleanup(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        self.function.host.sandbox.release(self)
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = ""

    # -- the pool's levers ----------------------------------------------------------------

    def stop(self) -> None:
        """Stop an instance the pool no longer needs (idle timeout, recycling)."""
        if self.running or self.bound is not None:
            self.retiring = True
        else:
            self._die(reset=False)

    def terminate(self) -> None:
        if self.process is not None and self.process.alive:
            self._thaw()
            self.process.terminate()

    def kill(self) -> None:
        if self.process is not None and self.process.alive:
            self.process.kill()

    @property
    def starting(self) -> bool:
        return not self.initialized and not self.dead

    def __repr__(self) -> str:
        return (
            f"<Instance {self.function.name}#{self.id} {self.slots!r}{' dead' if self.dead else ''}"
            f"{' frozen' if self.frozen else ''} invokes={self.invokes} api={self.address}>"
        )
