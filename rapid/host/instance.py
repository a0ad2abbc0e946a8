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

Extensions (``rapid.host.extensions``) start right after the runtime, in its sandbox. They
stretch two phases, as on Lambda: init ends only once the runtime *and* every extension
have called ``next`` (the runtime's first ``/next`` is held until then); and after the
runtime answers an invocation, the invoker is answered at once but END/REPORT wait (and
the instance takes no new work and is not frozen) until every INVOKE subscriber has called
``next`` again, so REPORT's Duration includes the extensions' time, as AWS's does. An
extension that crashes or reports an error fails init, or resets the instance.

It dies once, through ``_die``: on a timeout, a crash, an init failure, an idle timeout,
recycling, or shutdown. With extensions, dying is a shutdown phase first: SHUTDOWN goes to
the subscribers, and the processes are SIGKILLed when its budget ends. Its process group is killed, the function is told (so it can start a
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

from rapid.api.runtime import posted_error_type, runtime_api_for, trailer_error
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
from rapid.core.extension_state import RUNTIME_SHUTDOWN_SHARE
from rapid.core.runtime_state import RuntimeEvent, RuntimeMachine, RuntimeState
from rapid.http.message import Request, Response
from rapid.http.protocol import HttpConnection, serve
from rapid.host.extensions import Extensions, executables
from rapid.host.response_stream import RuntimeStream
from rapid.host.slots import Slots
from rapid.host.telemetry import Telemetry
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
        self.extensions = Extensions(self)
        self.telemetry = Telemetry()  # what Telemetry/Logs API subscribers are sent
        self._ext_signal_freeze = True  # extensions are frozen by signal (no freezer cgroup)
        self._init_waiting = False  # the runtime called /next; extensions are not ready yet
        # Invocations the runtime answered while INVOKE subscribers still work on them.
        self._after: dict[str, tuple[Invocation, Outcome]] = {}
        self._cleaned = False
        self._streams: dict[str, RuntimeStream] = {}  # streaming /response bodies being read
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._loop = asyncio.get_running_loop()

    # -- start ----------------------------------------------------------------------------

    async def start(self) -> None:
        fn = self.function
        host = fn.host
        try:
            self.server = await serve(runtime_api_for(self), "127.0.0.1", 0, MAX_RUNTIME_RESPONSE)
        except OSError as exc:
            self._init_failed(FunctionError("Sandbox.Failure", f"Runtime API: {exc}"), None, "failure")
            return
        if self.dead:  # stopped while the server was opening
            self._cleanup()
            return
        port = self.server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        try:
            sandbox = host.sandbox.prepare(self)
        except OSError as exc:  # no uid left, or its TMPDIR could not be made
            self._init_failed(FunctionError("Sandbox.Failure", str(exc)), None, "failure")
            return
        self.tmpdir, self.uid = sandbox.tmpdir_on_host, sandbox.uid
        self.spawned_at = time.monotonic()
        self.telemetry.init_start(fn.init_type(self), self._init_phase, fn.name, fn.version, self.hex, fn.memory)
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
        paths = executables(code.extensions)
        if paths:
            self._ext_signal_freeze = sandbox.freezer is None
            preexec = sandbox.joiner(self.process.pid) if sandbox.joiner is not None else None
            attach = sandbox.attach if (sandbox.cgroup or sandbox.freezer) else None
            error = self.extensions.launch(
                paths, fn.environment(self, sandbox.tmpdir), code.task_root, preexec, sandbox.cgroup, attach
            )
            if error is not None:
                self._init_failed(error, None, "error")
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
        members = process.members()
        return any(is_peer_of(conn.peer, port, self.uid, root, members)
                   for root in (process.pid, *self.extensions.pids))

    @property
    def running(self) -> dict[str, tuple[Invocation, RuntimeMachine]]:
        return self.slots.running

    def next(self) -> Response | asyncio.Future[Response]:
        if self.dead:  # a /next already on its way when the instance ended: it waits for the kill
            return self._loop.create_future()
        slot = self.slots.for_next()
        first = not self.initialized
        if first:
            if not self.extensions.init_ready():
                self._init_waiting = True  # held: extensions_ready() goes on from here
                return self._park(slot)
            self._init_done()
            if self.bound is not None:
                inv, self.bound = self.bound, None
                return self._dispatch(inv, slot)
        elif self._after:
            return self._park(slot)  # held: extensions_done() goes on from here
        if self.retiring:  # recycled: this runtime takes no more work
            self._loop.call_soon(self._die, False)
            return self._park(slot)
        queued = self.function.take()
        if queued is not None:
            return self._dispatch(queued, slot)
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

    def _serve_held(self) -> None:
        """A held ``/next`` may go on (init or the last invocation's extensions are done):
        what ``next`` does with a free runtime, for the parked call."""
        if self.dead or not self.slots.parked:
            return
        if self.bound is not None:
            inv, self.bound = self.bound, None
            slot, fut = self.slots.unpark()
            fut.set_result(self._dispatch(inv, slot))
            return
        if self.retiring:
            self._die(False)
            return
        queued = self.function.take()
        if queued is not None:
            slot, fut = self.slots.unpark()
            fut.set_result(self._dispatch(queued, slot))
            return
        self.function.became_idle(self)
        if not self.running:
            self.idle_since = time.monotonic()
            self._freeze()

    # -- extensions (rapid.host.extensions calls these) -------------------------------------

    def extensions_ready(self) -> None:
        """Every extension has called next: init ends if the runtime has too."""
        if self.dead or self.initialized or not self._init_waiting or not self.extensions.init_ready():
            return
        self._init_waiting = False
        self._init_done()
        self._serve_held()

    def extensions_done(self, request_id: str) -> None:
        """The last INVOKE subscriber called next again: the invocation ends (END, REPORT)."""
        entry = self._after.pop(request_id, None)
        if entry is None or self.dead:
            return
        inv, outcome = entry
        timer = self._timers.pop(request_id, None)
        if timer is not None:
            timer.cancel()
        self.answered_at = time.monotonic()
        self._report(inv, outcome)
        if self._after:
            return
        if self.retiring and not self.running:
            self._die(reset=False)
        else:
            self._serve_held()

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

    def extension_line(self, name: str, line: bytes) -> None:
        self._on_line(line, "extension")

    @property
    def idle_slots(self) -> int:
        return 0 if self._after else self.slots.idle

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
        self.telemetry.start(inv, fn.version)
        if self.extensions.any:
            self.extensions.invoke(inv)
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

    def open_stream(self, request_id: str, conn: HttpConnection, content_type: str) -> RuntimeStream | None:
        """A streaming ``/response`` began: where its body goes (None: not a running
        invocation of this instance; the ordinary handler then answers 400)."""
        entry = self.running.get(request_id)
        if entry is None or entry[0].settled or request_id in self._streams:
            return None
        stream = RuntimeStream(entry[0], conn, content_type)
        self._streams[request_id] = stream
        return stream

    def respond(self, request_id: str, req: Request) -> Response:
        stream = self._streams.pop(request_id, None) if req.streamed else None
        mode = req.headers.get("lambda-runtime-function-response-mode")
        inv, slot = self.slots.answering(request_id)
        slot.advance(RuntimeEvent.RESPONSE)
        if mode is not None and mode.lower() != "streaming":
            error = FunctionError("Runtime.InvalidResponseModeHeader", "Invalid function response mode")
            self._finish(inv, InvocationEvent.FAIL, platform_failure(error, inv.request_id, _encode))
            return Response.json(400, {"errorMessage": "Invalid function response mode",
                                       "errorType": "InvalidFunctionResponseMode"})
        if stream is not None:
            return self._stream_ended(inv, stream, req)
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

    def _stream_ended(self, inv: Invocation, stream: RuntimeStream, req: Request) -> Response:
        event, outcome, answer = stream.outcome(req, inv.request_id)
        self._finish(inv, event, outcome)
        return answer

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
        """The runtime answered ``inv``: settle it, and recycle a retiring instance. If
        extensions still work on it, the invoker is answered now and END/REPORT wait for
        them (``extensions_done``); its timer keeps running: extensions count in the timeout."""
        if self.extensions.holding(inv.request_id):
            if self.process is not None:
                self.process.drain()
            self.telemetry.runtime_done(inv, outcome)
            self.running.pop(inv.request_id, None)
            self.invokes += 1
            self._after[inv.request_id] = (inv, outcome)
            inv.settle(event, outcome)
            return
        self._settle(inv, event, outcome)
        if self.retiring and not self.running and not self.dead and not self._after:
            self._die(reset=False)

    def _settle(self, inv: Invocation, event: InvocationEvent, outcome: Outcome, include_start: bool = False) -> None:
        """Every way an invocation ends comes here. END and REPORT go out before the invoker
        is answered, so a log tail asked for with ``X-Amz-Log-Type: Tail`` holds them."""
        timer = self._timers.pop(inv.request_id, None)
        if timer is not None:
            timer.cancel()
        if self.process is not None:
            self.process.drain()  # while ``inv`` runs, so its lines join its log tail
        if inv.state is InvocationState.RUNNING:
            self.telemetry.runtime_done(inv, outcome)
        self.running.pop(inv.request_id, None)
        self.invokes += 1
        self.answered_at = time.monotonic()
        self._report(inv, outcome, include_start)
        inv.settle(event, outcome)

    def _report(self, inv: Invocation, outcome: Outcome, include_start: bool = False) -> None:
        """END and REPORT for ``inv`` (START too, if it never reached the runtime)."""
        init_ms, self.init_duration_ms = self.init_duration_ms, None
        peak = self.process.peak_memory_mb() if self.process is not None else 0
        r = self.function.report(inv, outcome, init_ms, peak, include_start)
        self.telemetry.report(r)

    def _timed_out(self, inv: Invocation) -> None:
        self._timers.pop(inv.request_id, None)
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

    def _init_done(self) -> None:
        self.initialized = True
        if self._init_timer is not None:
            self._init_timer.cancel()
            self._init_timer = None
        ms = (time.monotonic() - self.spawned_at) * 1000.0
        self.extensions.close_registration()
        self.telemetry.init_done(self.function.init_type(self), self._init_phase, "success", None, ms)
        self.telemetry.init_over()
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

    def _freeze(self) -> None:
        # Lambda Managed Instances (several invocations per instance) are never frozen, and
        # could not be: the runtime's other pollers must reach /next while one is parked.
        fn = self.function
        if fn.per_instance > 1:
            return
        if fn.host.config.freeze and self.process is not None and not self.frozen:
            self.frozen = True
            self.process.freeze()
            if self._ext_signal_freeze:
                self.extensions.freeze()

    def _thaw(self) -> None:
        if self.frozen and self.process is not None:
            self.frozen = False
            self.process.thaw()
            if self._ext_signal_freeze:
                self.extensions.thaw()

    def _die(self, reset: bool, reason: str | None = None) -> None:
        """End the instance. With extensions: the shutdown phase (SHUTDOWN with ``reason``:
        spindown, timeout or failure), then SIGKILL for whatever is left at its deadline."""
        if self.dead:
            return
        self.dead = True
        for timer in (self._init_timer, *self._timers.values()):
            if timer is not None:
                timer.cancel()
        self._init_timer = None
        self.slots.cancel_parked()
        runtime_alive = self.process is not None and self.process.alive
        if self.extensions.any:
            self._thaw()
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
        if self.extensions.any and not self.dead:
            self._die(reset=False, reason="spindown")  # the shutdown phase, SIGTERM included
            return
        if self.process is not None and self.process.alive:
            self._thaw()
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

    @property
    def starting(self) -> bool:
        return not self.initialized and not self.dead

    def __repr__(self) -> str:
        return (
            f"<Instance {self.function.name}#{self.id} {self.slots!r}{' dead' if self.dead else ''}"
            f"{' frozen' if self.frozen else ''} invokes={self.invokes} api={self.address}>"
        )
