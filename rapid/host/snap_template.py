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

Each ``fork`` sends the instance's environment, working folder and sandbox (plain values:
uid, private /tmp, rlimits) with the write end of a fresh output pipe; the template forks
and answers the child's pid, which the daemon wraps as a ``ForkedProcess`` (the instance
drives it as any runtime). The template is the forks' parent, so it reports their exits;
if the template itself dies, its forks are killed and reported as killed.

The template runs with the daemon's privileges (less the rlimits and no new privileges),
since it must put each fork under its own uid and mount namespace: the function's init
code runs there. That is the price of forking; README's SnapStart section says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING

from rapid.supervisor.forked import ForkedProcess
from rapid.supervisor.process import RuntimeProcess

if TYPE_CHECKING:
    from rapid.host.function import Function
    from rapid.supervisor.sandbox import SandboxSpec

class TemplateInitError(Exception):
    """The template's init failed: the error body and type, as ``/init/error`` posts them."""

    def __init__(self, body: bytes, error_type: str) -> None:
        super().__init__(error_type)
        self.body, self.error_type = body, error_type


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

    # -- the template ---------------------------------------------------------------------

    def _start(self) -> None:
        fn = self.function
        host, code = fn.host, fn.code
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = fn.template_environment()
        env["RAPID_SNAP_TEMPLATE_FD"] = str(theirs.fileno())
        preexec = host.sandbox.template_preexec(code, fn.config.ephemeral_storage)
        self._ready = loop.create_future()
        self._generation += 1
        generation = self._generation
        started = time.monotonic()
        try:
            assert code.argv is not None
            self.process = RuntimeProcess(
                code.argv, env, code.task_root, self._on_line, lambda code: self._on_exit(generation, code), host.guardian, preexec=preexec,
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        self._started = started
        self.pid = self.process.pid
        ours.setblocking(False)
        self._sock = ours
        loop.add_reader(ours.fileno(), self._on_message)

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
                    self._waiting.pop(0).set_result(int(msg["forked"]))
            elif "exit" in msg:
                proc = self._forks.pop(int(msg["exit"]), None)
                if proc is not None:
                    proc.exited(int(msg["status"]))
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
        if generation != self._generation:
            return  # a template whose init failed, already replaced
        self._drop_socket()
        self.process = None
        if self._ready is not None and not self._ready.done():
            body = json.dumps({"errorMessage": f"Runtime exited with error: exit status {code}",
                               "errorType": "Runtime.ExitError"}).encode()
            self._ready.set_exception(TemplateInitError(body, "Runtime.ExitError"))
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

    async def fork(self, env: dict[str, str], cwd: str, sandbox: SandboxSpec, on_line, on_exit) -> ForkedProcess:
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
            r, w = os.pipe()
            fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._waiting.append(fut)
            try:
                payload = json.dumps({"env": env, "cwd": cwd, "sandbox": spec}).encode()
                socket.send_fds(sock, [payload], [w])
            except OSError:
                os.close(r)
                self._waiting.remove(fut)
                raise
            finally:
                os.close(w)
            try:
                pid = await fut
            except BaseException:
                os.close(r)
                raise
            proc = ForkedProcess(pid, r, on_line, on_exit, fn.host.guardian, cgroup=sandbox.cgroup,
                                 freezer=sandbox.freezer)
            self._forks[pid] = proc
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
