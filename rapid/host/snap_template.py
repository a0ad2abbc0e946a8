"""SnapStart: one initialised template per function, and instances forked from it.

Theory of operation
-------------------
A function with ``snap_start`` on the bundled Python runtime has one ``SnapTemplate``.
The first instance that starts asks it to ``fork``; the template is started then (the
bootstrap in template mode, ``bootstraps/python/snapstart_template.py``), with a
SOCK_SEQPACKET socket to the daemon passed as a descriptor. It runs the function's init once
(imports the handler, runs module code and the before-snapshot hooks), outside any
instance: its lines are logged as the function's, and its init is reported once on an
``INIT_REPORT`` line, as Lambda reports a SnapStart init when a version is published. An
init error fails the instance that waited for it (as a failed init does) and the template
is discarded, so the next instance tries init again.

The template is isolated exactly like an ordinary instance: ``Sandbox.prepare`` gives it a
uid of its own from the range, its own mount namespace (a tmpfs on /tmp, the code folders
read-only, nosuid, nodev, the layers at /opt), no capabilities, no new privileges, and a
memory cgroup with the function's memory size as its limit (it joins it before exec, so
an init that allocates too much is OOM-killed, and that init fails as a bare one would).

Each ``fork`` sends the instance's environment, working folder and sandbox (plain values:
uid, private /tmp, rlimits) with the write end of a fresh output pipe and the read end of
a *go* pipe; the template forks and answers the child's pid once the child has taken its
own user and mount namespaces. The daemon checks the pid is the template's child, maps
the instance's uid into that user namespace (``rapid.supervisor.userns``) and writes the
go byte; the child then becomes that uid in a tmpfs /tmp of its own and drops every
capability. Meanwhile the daemon moves it into the instance's cgroups off the event loop,
as it does any runtime (until that lands, the fork is charged to the template's cgroup).
The daemon wraps it as a ``ForkedProcess`` (the instance drives it as any runtime). The
template is the forks' parent, so it reports their exits; if the template itself dies,
its forks are killed and reported as killed.

Where the kernel refuses user namespaces to unprivileged processes, or the function's
runtime keeps root anyway (an interpreter other uids cannot reach), the template runs
with the daemon's privileges less the rlimits and with no new privileges, as before, and
the daemon warns once: the forks still drop to their own uids.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rapid.core.errors import FunctionError, runtime_exited
from rapid.supervisor import userns
from rapid.supervisor.forked import ForkedProcess
from rapid.supervisor.process import RuntimeProcess

if TYPE_CHECKING:
    from rapid.host.function import Function
    from rapid.supervisor.sandbox import SandboxSpec

_EARLY_EXITS = 64  # exits reported before their fork's answer was read (kept this many)


class TemplateInitError(Exception):
    """The template's init failed: the error body and type, as ``/init/error`` posts them,
    or, when the platform ended it (it exited, was OOM-killed), that ``error``."""

    def __init__(self, body: bytes, error_type: str, error: FunctionError | None = None) -> None:
        super().__init__(error_type)
        self.body, self.error_type, self.error = body, error_type, error


class SnapTemplate:
    def __init__(self, function: Function) -> None:
        self.function = function
        self.process: RuntimeProcess | None = None
        self.pid = 0
        self.init_ms: float | None = None
        self._sock: socket.socket | None = None
        self._ready: asyncio.Future[None] | None = None
        self._waiting: list[asyncio.Future[int]] = []  # fork requests in the order sent
        self._forks: dict[int, ForkedProcess] = {}
        self._lock = asyncio.Lock()
        self._closed = False
        self._generation = 0  # which template an exit belongs to (a failed one may end late)
        # Each template's own sandbox (uid, cgroups, TMPDIR), by generation, until it exits.
        self._sandboxes: dict[int, tuple[str, SandboxSpec]] = {}
        self.userns = False  # forks take a user namespace each (the template is unprivileged)
        self._early: dict[int, int] = {}  # pid -> exit status, for forks not yet answered
        self._warned = False

    # -- the template ---------------------------------------------------------------------

    def _start(self) -> None:
        fn = self.function
        host, code = fn.host, fn.code
        loop = asyncio.get_running_loop()
        key = f"snap-{os.urandom(8).hex()}"
        spec = host.sandbox.prepare(key, fn.name, code, fn.memory, fn.config.ephemeral_storage)
        self.userns = spec.uid is not None and userns.available()
        if self.userns:
            preexec = _joining(spec.cgroup, spec.preexec)
        else:
            if spec.uid is not None and not self._warned:  # no way to give forks uids of their own
                self._warned = True
                print(f"rapid: warning: function {fn.name!r}: user namespaces are not available here, so its "
                      "SnapStart template runs init with the daemon's privileges", file=sys.stderr, flush=True)
            preexec = _joining(spec.cgroup, host.sandbox.template_preexec(code, fn.config.ephemeral_storage))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = fn.template_environment()
        env["TMPDIR"] = spec.tmpdir
        env["RAPID_SNAP_TEMPLATE_FD"] = str(theirs.fileno())
        self._ready = loop.create_future()
        self._generation += 1
        generation = self._generation
        self._sandboxes[generation] = (key, spec)
        started = time.monotonic()
        try:
            assert code.argv is not None
            self.process = RuntimeProcess(
                code.argv, env, code.task_root, self._on_line, lambda status: self._on_exit(generation, status),
                host.guardian, preexec=preexec, cgroup=spec.cgroup, pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            self._release(generation)
            raise
        finally:
            theirs.close()
        self._started = started
        self.pid = self.process.pid
        ours.setblocking(False)
        self._sock = ours
        loop.add_reader(ours.fileno(), self._on_message)

    def _release(self, generation: int) -> None:
        """That template has exited: its uid, cgroups and TMPDIR go back."""
        key, spec = self._sandboxes.pop(generation, ("", None))
        if spec is None:
            return
        self.function.host.sandbox.release(key, spec.uid)
        if spec.tmpdir_on_host:
            shutil.rmtree(spec.tmpdir_on_host, ignore_errors=True)

    def _on_line(self, line: bytes) -> None:
        self.function.log_line(line.decode("utf-8", "replace").rstrip("\r"))

    def _on_message(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._drop_socket()
                return
            msg = json.loads(data)
            if "forked" in msg:
                if self._waiting:
                    fut = self._waiting.pop(0)
                    if fut.done():
                        pass
                    elif "error" in msg:
                        fut.set_exception(OSError(f"SnapStart fork: {msg['error']}"))
                    else:
                        fut.set_result(int(msg["forked"]))
            elif "exit" in msg:
                pid, status = int(msg["exit"]), int(msg["status"])
                proc = self._forks.pop(pid, None)
                if proc is not None:
                    proc.exited(status)
                else:  # a fork that ended before its answer was taken in
                    self._early[pid] = status
                    while len(self._early) > _EARLY_EXITS:
                        del self._early[next(iter(self._early))]
            elif "ready" in msg:
                self.init_ms = (time.monotonic() - self._started) * 1000.0
                self.function.report_template_init(self.init_ms, "success", None)
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
            elif "init_error" in msg:
                error = msg["init_error"]
                ms = (time.monotonic() - self._started) * 1000.0
                self.function.report_template_init(ms, "error", error.get("errorType"))
                if self._ready is not None and not self._ready.done():
                    self._ready.set_exception(TemplateInitError(json.dumps(error).encode(), error.get("errorType", "")))
                # This template is done for: the next fork starts a new one (init again).
                self._ready, self.process = None, None
                self._drop_socket()
                return

    def _drop_socket(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _on_exit(self, generation: int, code: int) -> None:
        """The template ended: its forks go too (nobody could report their exits)."""
        self._release(generation)
        if generation != self._generation:
            return  # a template whose init failed, already replaced
        if self._sock is not None:
            self._on_message()  # what it said before it ended (its init error) comes first
        self._drop_socket()
        self.process = None
        if self._ready is not None and not self._ready.done():
            # Ended during init (an exit, the OOM killer): failed as a bare init would be.
            error = runtime_exited(code)
            self.function.report_template_init((time.monotonic() - self._started) * 1000.0, "error", error.error_type)
            body = json.dumps({"errorMessage": error.message, "errorType": error.error_type}).encode()
            self._ready.set_exception(TemplateInitError(body, error.error_type, error))
        self._ready = None
        for fut in self._waiting:
            if not fut.done():
                fut.set_exception(OSError("the SnapStart template exited"))
        self._waiting.clear()
        forks, self._forks = self._forks, {}
        for proc in forks.values():
            proc.kill()
            proc.exited(-signal.SIGKILL)

    # -- forking --------------------------------------------------------------------------

    async def fork(
        self, env: dict[str, str], cwd: str, sandbox: SandboxSpec, on_line: Callable[[bytes], None],
        on_exit: Callable[[int], None],
    ) -> ForkedProcess:
        """A new runtime forked from the initialised template (started first if need be).
        Raises ``TemplateInitError`` if the template's init failed, ``OSError`` if it is gone."""
        async with self._lock:
            if self._closed:
                raise OSError("the function is stopping")
            if self.process is None or self._ready is None:
                self._start()
            ready = self._ready
            assert ready is not None
            # Lambda gives a SnapStart init up to 130 s or the function timeout, if higher.
            limit = max(130.0, self.function.timeout)
            try:
                await asyncio.wait_for(asyncio.shield(ready), limit)
            except asyncio.TimeoutError:
                self._timed_out(limit)
                raise TemplateInitError(json.dumps({
                    "errorMessage": f"Init timed out after {limit:.2f} seconds", "errorType": "Runtime.InitTimeout",
                }).encode(), "Runtime.InitTimeout") from None
            sock = self._sock
            if sock is None:
                raise OSError("the SnapStart template exited")
            fn = self.function
            spec = fn.host.sandbox.fork_spec(fn.code, fn.config.ephemeral_storage, sandbox.uid)
            spec["userns"] = self.userns and sandbox.uid is not None
            own = self._sandboxes.get(self._generation)
            template_pid, template_uid = self.pid, (own[1].uid if own is not None else None)
            r, w = os.pipe()
            go_r, go_w = os.pipe()
            fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._waiting.append(fut)
            try:
                payload = json.dumps({"env": env, "cwd": cwd, "sandbox": spec}).encode()
                socket.send_fds(sock, [payload], [w, go_r])
            except OSError:
                os.close(r)
                os.close(go_w)
                self._waiting.remove(fut)
                raise
            finally:
                os.close(w)
                os.close(go_r)
        # Outside the lock: the next fork may be requested while this one is mapped and moved.
        try:
            pid = await fut
            proc = ForkedProcess(pid, r, on_line, on_exit, fn.host.guardian, cgroup=sandbox.cgroup,
                                 freezer=sandbox.freezer)
        except BaseException:
            os.close(r)
            os.close(go_w)
            raise
        self._forks[pid] = proc
        early = self._early.pop(pid, None)
        if early is not None:
            proc.exited(early)
            os.close(go_w)
            return proc
        try:
            if spec["userns"]:
                assert sandbox.uid is not None and template_uid is not None
                userns.map_ids(pid, sandbox.uid, template_pid, template_uid)
            os.write(go_w, b"1")
        except OSError:
            proc.kill()  # the go pipe closes unwritten: the child ends itself too
        finally:
            os.close(go_w)
        if sandbox.cgroup or sandbox.freezer:
            # Off the loop and beside the restore, as for any runtime (a v1 cgroup write waits
            # for an RCU grace period): until it lands, the fork is charged to the template.
            asyncio.get_running_loop().run_in_executor(None, sandbox.attach, pid)
        return proc

    def _timed_out(self, limit: float) -> None:
        """The template's init ran past its limit: it is killed, the next fork starts anew."""
        self.function.report_template_init(limit * 1000.0, "timeout", None)
        process, self.process, self._ready = self.process, None, None
        self._drop_socket()
        if process is not None:
            process.kill()

    def close(self) -> None:
        """The function is gone: end the template (its forks were stopped with their instances)."""
        self._closed = True
        self._drop_socket()
        if self.process is not None:
            self.process.kill()

    def __repr__(self) -> str:
        state = "none" if self.process is None else f"pid={self.pid}"
        return f"<SnapTemplate {self.function.name} {state} forks={len(self._forks)}>"


def _joining(cgroup: str | None, preexec: Callable[[], None] | None) -> Callable[[], None]:
    """A preexec that first joins ``cgroup`` (so the template's init runs under its memory
    limit from its first allocation), then applies ``preexec``."""
    def run() -> None:
        if cgroup:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write("0")
        if preexec is not None:
            preexec()

    return run
