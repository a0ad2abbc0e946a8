"""One execution environment: a runtime process, its own Runtime API server, its state.

Theory of operation
-------------------
An instance's lifecycle is the table in ``rapid.core.instance_state`` (Starting,
Initializing, Idle, Busy, Draining, Dead); this class performs what each move implies. It
is born *Starting*: it opens its own Runtime API server on a fresh loopback port (that
address is its identity; a connection from any process but its own runtime is refused) and
has the host's process backend (``rapid.supervisor.backend``) spawn the runtime, in the
sandbox the supervisor prepared from plain values, with ``AWS_LAMBDA_RUNTIME_API`` pointing
there.

Init ends at the runtime's first ``/next``. A plain start has 10 s for that (a
provisioned one, 130 s or the timeout); a *suppressed* start (after an instance of this
function died mid-invoke or failed init) carries the oldest queued invocation and runs init
on that invocation's clock, as Lambda does.

The instance never sees HTTP. The Runtime API edge (``rapid.api.runtime``: one small
handler per endpoint) parses each request, calls the verb here with plain values (``next``,
``answering`` then ``finish``, ``init_error``) and renders the answer, the ``/next``
response's ``Lambda-Runtime-*`` headers included. The instance has
``per_instance_concurrency`` slots (1 on Lambda), each a ``RuntimeMachine``: ``/next`` parks
a future on a slot (or takes the queue head at once); ``deliver`` answers it with an event
and arms that invocation's timer; the runtime's answer settles the invocation and writes
END/REPORT. While nothing runs, the instance is frozen (``rapid.host.idle_freeze``: a
moment after it became idle, so back-to-back invokes cost no stop and continue).

Extensions (``rapid.host.extensions``) start right after the runtime, in its sandbox. They
stretch two phases, as on Lambda: init ends only once the runtime *and* every extension
have called ``next`` (the runtime's first ``/next`` is held until then); and after the
runtime answers an invocation, the invoker is answered at once but END/REPORT wait (and
the instance takes no new work and is not frozen) until every INVOKE subscriber has called
``next`` again, so REPORT's Duration includes the extensions' time, as AWS's does.

How invocations end and how the instance dies (once, through ``_die``) is in
``rapid.host.instance_end``; how a SnapStart instance is forked and restored, in
``rapid.host.instance_restore``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from typing import TYPE_CHECKING

from rapid.api.runtime import next_response, runtime_api_for
from rapid.core.errors import MAX_RUNTIME_RESPONSE, FunctionError
from rapid.core.instance_state import InstanceEvent, InstanceMachine
from rapid.core.invocation import Invocation, InvocationEvent, Outcome
from rapid.core.runtime_state import RuntimeEvent, RuntimeMachine
from rapid.host.deadlines import Deadlines
from rapid.host.extensions import Extensions, executables
from rapid.host.idle_freeze import IdleFreeze
from rapid.host.instance_end import InstanceEnd
from rapid.host.instance_restore import InstanceRestore
from rapid.host.response_stream import RuntimeStream
from rapid.host.restore_telemetry import RestoreTelemetry
from rapid.host.slots import Slots
from rapid.host.telemetry import Telemetry
from rapid.http.message import Response
from rapid.http.protocol import HttpConnection, serve
from rapid.http.reply import Reply
from rapid.supervisor.backend import RuntimeHandle
from rapid.supervisor.peers import is_peer_of

_INVOKE_DISPATCH, _DISPATCH = InvocationEvent.DISPATCH, InstanceEvent.DISPATCH  # (read per invoke: see slots)

if TYPE_CHECKING:
    from rapid.host.function import Function


class Instance(InstanceRestore, InstanceEnd):
    def __init__(
        self, function: Function, instance_id: int, bound: Invocation | None, *, provisioned: bool = False
    ) -> None:
        self.function = function
        self.id = instance_id
        self.hex = os.urandom(16).hex()
        self.provisioned = provisioned
        self.life = InstanceMachine()
        self.slots = Slots(function.per_instance)
        self.bound = bound  # the invocation a suppressed init runs for
        self.suppressed = bound is not None
        self.process: RuntimeHandle | None = None
        self.server: asyncio.Server | None = None
        self.address = ""
        self.tmpdir = ""
        self.tmp_warned = False
        self.uid: int | None = None
        self.born = time.monotonic()
        self.idle_since = self.born
        self.spawned_at = 0.0
        self.answered_at = 0.0  # when it last finished an invocation
        self.init_duration_ms: float | None = None  # reported on the first REPORT only
        self.restore_duration_ms: float | None = None  # SnapStart's, in its place
        self.restoring = False  # a forked instance's runtime called /restore/next
        # Forked from the function's SnapStart template (provisioned ones start plainly).
        self.snapped = function.snap is not None and not provisioned
        self.invokes = 0
        self._init_timer: asyncio.TimerHandle | None = None
        self.extensions = Extensions(self)
        # What Telemetry/Logs API subscribers are sent (a restore in place of an init: SnapStart).
        self.telemetry = RestoreTelemetry() if self.snapped else Telemetry()
        self._ext_signal_freeze = True  # extensions are frozen by signal (no freezer cgroup)
        self._init_waiting = False  # the runtime called /next; extensions are not ready yet
        # Invocations the runtime answered while INVOKE subscribers still work on them.
        self._after: dict[str, tuple[Invocation, Outcome]] = {}
        self._cleaned = False
        self._streams: dict[str, RuntimeStream] = {}  # streaming /response bodies being read
        self._loop = asyncio.get_running_loop()
        self._deadlines = Deadlines(self._loop, self._timed_out)  # every invocation's timeout, one timer
        self._freezer = IdleFreeze(self._loop, self._freeze, self._thaw)

    # -- the lifecycle, as the table keeps it -----------------------------------------------

    @property
    def dead(self) -> bool:
        return self.life.dead

    @property
    def initialized(self) -> bool:
        return self.life.initialized

    @property
    def retiring(self) -> bool:
        """Told to stop once the work it carries is done (Draining)."""
        return self.life.retiring

    @property
    def starting(self) -> bool:
        return self.life.starting

    @property
    def frozen(self) -> bool:
        return self._freezer.frozen

    @property
    def running(self) -> dict[str, tuple[Invocation, RuntimeMachine]]:
        return self.slots.running

    @property
    def idle_slots(self) -> int:
        return 0 if self._after else self.slots.idle

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
        code = fn.code
        try:
            # (its cgroup folders are made off the loop, just before the runtime joins them)
            sandbox = host.sandbox.prepare(self.hex, fn.name, code, fn.memory, fn.config.ephemeral_storage,
                                           deferred=True)
        except OSError as exc:  # no uid left, or its TMPDIR could not be made
            self._init_failed(FunctionError("Sandbox.Failure", str(exc)), None, "failure")
            return
        self.tmpdir, self.uid = sandbox.tmpdir_on_host, sandbox.uid
        self.spawned_at = time.monotonic()
        self.telemetry.init_start(fn.init_type(self), self._init_phase, fn.name, fn.version, self.hex, fn.memory)
        if self.bound is not None:
            self._arm(self.bound)
        if code.argv is None:
            assert code.entrypoint_error is not None
            self._init_failed(code.entrypoint_error, None, "error")
            return
        try:
            if self.snapped:
                if not await self._fork(sandbox):
                    return
            else:
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
        self.life.advance(InstanceEvent.SPAWN)
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
        if self.bound is None and not self.snapped:  # (a restore has its own limit: instance_restore)
            limit = host.config.init_timeout
            if self.provisioned:  # Lambda: 130 s or the function timeout, whichever is higher
                limit = max(130.0, fn.timeout)
            self._init_timer = self._loop.call_later(limit, self._init_timed_out)

    # -- who may call -----------------------------------------------------------------------

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

    # -- the Runtime API's verbs ------------------------------------------------------------

    def next(self) -> Response | asyncio.Future[Response]:
        """``GET /next``: the next event, now or when one comes (a parked future)."""
        life = self.life
        if life.dead:  # a /next already on its way when the instance ended: it waits for the kill
            return self._loop.create_future()
        slot = self.slots.for_next()
        if not life.initialized:
            if not self.extensions.init_ready():
                self._init_waiting = True  # held: extensions_ready() goes on from here
                return self._park(slot)
            self._init_done()
            if self.bound is not None:
                inv, self.bound = self.bound, None
                return self._dispatch(inv, slot)
        elif self._after:
            return self._park(slot)  # held: extensions_done() goes on from here
        if life.retiring:  # recycled: this runtime takes no more work
            self._loop.call_soon(self._die, False)
            return self._park(slot)
        queued = self.function.take()
        if queued is not None:
            return self._dispatch(queued, slot)
        fut = self._park(slot)
        self.function.became_idle(self)
        if not self.slots.running:
            self._became_idle()
        return fut

    def answering(self, request_id: str, event: RuntimeEvent) -> Invocation:
        """``/response`` or ``/error`` for ``request_id``: the invocation it answers (400 if
        it is not running here), its slot moved on by ``event`` (403 out of turn)."""
        inv, slot = self.slots.answering(request_id)
        slot.advance(event)
        return inv

    def take_stream(self, request_id: str) -> RuntimeStream | None:
        """The streamed body of a ``/response`` that just ended, if it was streamed."""
        return self._streams.pop(request_id, None)

    def open_stream(self, request_id: str, conn: HttpConnection, content_type: str) -> RuntimeStream | None:
        """A streaming ``/response`` began: where its body goes (None: not a running
        invocation of this instance; the ordinary handler then answers 400)."""
        entry = self.running.get(request_id)
        if entry is None or entry[0].settled or request_id in self._streams:
            return None
        stream = RuntimeStream(entry[0], conn, content_type)
        self._streams[request_id] = stream
        return stream

    def init_error(self, body: bytes, error_type: str) -> None:
        """``/init/error``: the runtime is answered first (by the edge); then init fails."""
        self.slots.for_init_error(self.initialized).advance(RuntimeEvent.INIT_ERROR)
        self._loop.call_soon(self._init_failed, None, (body, error_type), "error")

    # -- parking and dispatching ------------------------------------------------------------

    def _park(self, slot: RuntimeMachine) -> asyncio.Future[Response]:
        # A Reply: the /next answer is written the moment an invocation is delivered, and a
        # hang-up frees the slot at once (rapid.http.reply).
        fut = Reply(self._loop)
        self.slots.park(slot, fut)
        fut.when_answered(self._parked_done)
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
            fut.answer(self._dispatch(inv, slot))
            return
        if self.retiring:
            self._die(False)
            return
        queued = self.function.take()
        if queued is not None:
            slot, fut = self.slots.unpark()
            fut.answer(self._dispatch(queued, slot))
            return
        self.function.became_idle(self)
        if not self.running:
            self._became_idle()

    def deliver(self, inv: Invocation) -> None:
        """Hand ``inv`` to a parked ``/next`` (the function chose this instance as idle)."""
        slot, fut = self.slots.unpark()
        self._freezer.busy()
        fut.answer(self._dispatch(inv, slot))

    def _dispatch(self, inv: Invocation, slot: RuntimeMachine) -> Response:
        if inv.started == 0.0:
            self._arm(inv)
        inv.advance(_INVOKE_DISPATCH)
        self.slots.dispatch(inv, slot)
        self.life.advance(_DISPATCH)
        fn = self.function
        fn.log_platform(inv, fn.start_line(inv), self)
        if self.telemetry.listening:
            self.telemetry.start(inv, fn.version)
        if self.extensions.all:
            self.extensions.invoke(inv)
        return next_response(inv)

    def _arm(self, inv: Invocation) -> None:
        """Start ``inv``'s clock: its deadline, and the timer that enforces it."""
        inv.started = time.monotonic()
        inv.deadline_epoch_ms = int((time.time() + inv.timeout) * 1000)
        # uvloop's clock ticks in whole milliseconds: durations and deadlines use
        # time.monotonic() (rapid.host.deadlines sets its one timer from it).
        self._deadlines.arm(inv, inv.started + inv.timeout)

    def _became_idle(self) -> None:
        self.idle_since = time.monotonic()
        self._freezer.idle()

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
        self._deadlines.disarm(request_id)
        self.answered_at = time.monotonic()
        self.function.last_answered = self
        self._report(inv, outcome)
        self.function.host.logs.flush()
        if self._after:
            return
        self._maybe_settled()
        if self.retiring and not self.running:
            self._die(reset=False)
        else:
            self._serve_held()

    def extension_line(self, name: str, line: bytes) -> None:
        self._on_line(line, "extension")

    # -- the freeze (the supervisor's signals) ----------------------------------------------

    def _freeze(self) -> bool:
        # Lambda Managed Instances (several invocations per instance) are never frozen, and
        # could not be: the runtime's other pollers must reach /next while one is parked.
        fn = self.function
        if fn.per_instance > 1 or self.dead or self.running or self.slots.idle == 0:
            return False
        if fn.host.config.freeze and self.process is not None:
            self.process.freeze()
            if self._ext_signal_freeze:
                self.extensions.freeze()
            return True
        return False

    def _thaw(self) -> None:
        if self.process is not None:
            self.process.thaw()
            if self._ext_signal_freeze:
                self.extensions.thaw()

    def __repr__(self) -> str:
        return (
            f"<Instance {self.function.name}#{self.id} {self.life.state.value} {self.slots!r}"
            f"{' frozen' if self.frozen else ''} invokes={self.invokes} api={self.address}>"
        )
