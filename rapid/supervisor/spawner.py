"""The daemon's end of the spawner: runtimes started by a small helper process, not by the daemon.

Theory of operation. Forking the daemon itself to start a runtime is dear: with the sandbox's
``preexec_fn``, ``subprocess`` cannot use vfork, so the kernel copies the page tables of a
~60 MB process and the child runs Python before it execs (3.6-10 ms on this machine, with
the event loop stalled, on every cold start). So at start the daemon execs a bare interpreter
(``rapid.supervisor.spawn_zygote``: ``python -I -S``, the standard library only; that exec
is a vfork, cheap at any size), and each runtime is forked from that small process instead:

- ``Spawner.spawn`` sends the command, environment, working directory and the sandbox plan
  (plain values, ``Sandbox.plan``) with the write end of the runtime's output pipe
  (``SCM_RIGHTS``), and waits for the answer: the pid and a pidfd once the exec succeeded,
  or the errno and the step that failed (raised as ``OSError``, as ``Popen`` raises);
- ``SpawnedProcess`` is the runtime as the instance sees it: a ``RuntimeProcess`` in every
  respect (its own session, so kill, freeze and thaw act on its whole group; output read
  from the pipe; the guardian; its cgroups joined from a worker thread) except its exit,
  which the spawner reports (only a parent may reap): ``("exit", pid, code)``;
- the spawner dies with the daemon (``PR_SET_PDEATHSIG``, and EOF on the socket), and
  the runtimes it forked ask for SIGKILL when it dies.

If the spawner cannot start, stops answering or dies, the daemon says so once on stderr
and goes back to forking runtimes itself (``Processes`` falls back to ``RuntimeProcess``
with the same sandbox as a ``preexec``); the runtimes the spawner had started are killed
and their instances end as after a crash (exit -9), to be replaced as any crashed instance.
"""

from __future__ import annotations

import array
import asyncio
import marshal
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rapid.supervisor.exits import wait_exited
from rapid.supervisor.guardian import Guardian
from rapid.supervisor.process import RuntimeProcess

ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spawn_zygote.py")
_RECV = 65536
_READY_WAIT = 10.0  # seconds for the spawner to come up (a bare interpreter: ~20 ms)
_ANSWER_WAIT = 30.0  # seconds for one fork + sandbox + exec


class SpawnerGone(Exception):
    """The spawner cannot take this spawn: start the runtime another way."""


class Spawner:
    def __init__(self, say: Callable[[str], None] | None = None, namespaces: bool = False) -> None:
        self._say = say or (lambda text: print(f"rapid: {text}", file=sys.stderr, flush=True))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-I", "-S", ZYGOTE, str(os.getpid()), str(theirs.fileno()),
                 "1" if namespaces else "0"],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                env={},  # it needs nothing of the daemon's environment; each request carries the runtime's
            )
        except OSError as exc:
            self._proc = None
            self.failed: str | None = f"cannot start: {exc}"
            self._say(f"the spawner {self.failed}; runtimes are started by the daemon itself")
        else:
            self.failed = None
        finally:
            theirs.close()
        self._sock = ours
        ours.setblocking(False)
        self.pid = self._proc.pid if self._proc is not None else 0
        self._ready = False
        self._next = 0
        self._answers: dict[int, tuple[Any, ...]] = {}
        self._processes: dict[int, SpawnedProcess] = {}
        self._early: dict[int, int] = {}  # exits of runtimes not watched yet, by pid
        self._loop: asyncio.AbstractEventLoop | None = None
        if self.failed is None:
            try:
                self._attach_loop()  # hear "ready" (or its death) as soon as it comes
            except RuntimeError:
                pass  # no loop yet: the first spawn attaches it

    @property
    def usable(self) -> bool:
        return self.failed is None

    # -- spawning -------------------------------------------------------------------------

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], cwd: str, out: int, plan: dict[str, Any] | None,
              join: int | None = None) -> tuple[int, int]:
        """Start a runtime; its (pid, pidfd). ``OSError`` if it could not be started,
        ``SpawnerGone`` if the spawner could not be asked."""
        if self.failed is not None:
            raise SpawnerGone(self.failed)
        self._attach_loop()
        if not self._ready:
            self._wait(lambda: self._ready, _READY_WAIT, "it did not come up")
        self._next += 1
        rid = self._next
        message = marshal.dumps(("spawn", rid, list(argv), dict(env), cwd, plan, join))
        try:
            self._sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [out]))])
        except OSError as exc:
            self._lost(f"cannot reach it: {exc}")
            raise SpawnerGone(self.failed) from None
        self._wait(lambda: rid in self._answers, _ANSWER_WAIT, "it stopped answering")
        answer = self._answers.pop(rid)
        if answer[0] == "failed":
            errno, text = answer[2], answer[3]
            raise OSError(errno, text) if errno else OSError(text)
        return answer[2], answer[3]

    def watch(self, process: SpawnedProcess) -> None:
        code = self._early.pop(process.pid, None)
        if code is None:
            self._processes[process.pid] = process
        else:  # it exited before its handle was made (read while waiting for the answer)
            assert self._loop is not None
            self._loop.call_soon(process.exited, code)

    def forget(self, pid: int) -> None:
        self._processes.pop(pid, None)

    # -- the socket -----------------------------------------------------------------------

    def _attach_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            loop.add_reader(self._sock.fileno(), self._readable)

    def _wait(self, done: Callable[[], bool], seconds: float, why: str) -> None:
        """Block (the loop too) until ``done()``, reading the spawner's messages."""
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        deadline = time.monotonic() + seconds
        while not done():
            if self.failed is not None:
                raise SpawnerGone(self.failed)
            left = deadline - time.monotonic()
            if left <= 0:
                self._lost(why)
                raise SpawnerGone(self.failed)
            if poller.poll(left * 1000):
                self._read(deferred=True)

    def _readable(self) -> None:
        self._read(deferred=False)

    def _read(self, deferred: bool) -> None:
        while self.failed is None:
            try:
                data, ancillary, _flags, _ = self._sock.recvmsg(_RECV, socket.CMSG_SPACE(16), socket.MSG_CMSG_CLOEXEC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._lost(f"its socket failed: {exc}")
                return
            if not data:
                self._lost("it exited")
                return
            message = marshal.loads(data)
            kind = message[0]
            if kind == "ready":
                self._ready = True
            elif kind == "spawned":
                self._early.pop(message[2], None)  # an exit noted under this pid was another process's
                fds = _fds(ancillary)
                self._answers[message[1]] = (kind, message[1], message[2], fds[0] if fds else -1)
                for extra in fds[1:]:
                    os.close(extra)
            elif kind == "failed":
                self._answers[message[1]] = message
            elif kind == "exit":
                process = self._processes.pop(message[1], None)
                if process is None:
                    self._early[message[1]] = message[2]
                else:
                    if deferred:  # inside a spawn: not while the caller is half-way through
                        assert self._loop is not None
                        self._loop.call_soon(process.exited, message[2])
                    else:
                        process.exited(message[2])

    def _lost(self, why: str) -> None:
        """The spawner cannot be used any more: say so, end what it started, spawn directly."""
        if self.failed is not None:
            return
        self.failed = why
        self._say(f"the spawner (pid {self.pid}) {why}; runtimes are now started by the daemon itself")
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
        for process in list(self._processes.values()):
            process.orphaned()
        self._processes.clear()

    def end(self) -> None:
        """Tell the spawner to exit (EOF on its socket) without waiting for it. Twice is safe."""
        if self._loop is not None and self.failed is None:
            self._loop.remove_reader(self._sock.fileno())
        self.failed = self.failed or "closed"
        self._sock.close()

    def close(self) -> None:
        """Stop the spawner (after the runtimes are ended: their exits come from it)."""
        self.end()
        if self._proc is not None:
            if not wait_exited(self._proc, 5):
                self._proc.kill()
                self._proc.wait()

    def __repr__(self) -> str:
        state = "ready" if self._ready and self.failed is None else (self.failed or "starting")
        return f"<Spawner pid={self.pid} {state} runtimes={len(self._processes)}>"


class SpawnedProcess(RuntimeProcess):
    """A runtime the spawner started: a ``RuntimeProcess`` whose exit the spawner reports."""

    def __init__(  # noqa: PLR0913 - what a RuntimeProcess takes, and its spawner
        self,
        spawner: Spawner,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        on_line: Callable[[bytes], None],
        on_exit: Callable[[int], None],
        guardian: Guardian,
        *,
        plan: dict[str, Any] | None,
        join: int | None = None,
        cgroup: str | None = None,
        freezer: str | None = None,
    ) -> None:
        self._begin(on_line, on_exit, guardian)
        self._spawner = spawner
        self._popen = None
        r, w = os.pipe()
        try:
            pid, pidfd = spawner.spawn(argv, env, cwd, w, plan, join)
        except BaseException:
            os.close(r)
            os.close(w)
            raise
        os.close(w)
        self._pidfd = pidfd  # held, not watched: the spawner reports the exit (``exited``)
        self._adopt(pid, r, cgroup, freezer)
        spawner.watch(self)

    def _reap(self) -> None:  # only once the spawner is gone (``orphaned``)
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
        self.exited(-9)

    def exited(self, code: int) -> None:
        """The spawner reaped it: the same end as a ``RuntimeProcess``'s."""
        if self.returncode is not None:
            return
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self._spawner.forget(self.pid)
        self._ended(code)

    def orphaned(self) -> None:
        """The spawner died: nothing will report this runtime's exit, so it is killed, and
        its end is reported when its pidfd says it is gone."""
        if self.returncode is not None or self._pidfd is None:
            return
        self.kill()
        self._loop.add_reader(self._pidfd, self._reap)

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<SpawnedProcess pid={self.pid} {state}>"


def _fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(data[: len(data) - len(data) % arr.itemsize])
            fds.extend(arr)
    return fds
