"""One runtime process: spawned in its own process group, watched, read, and ended.

- Its own session (so its own process group): ending the instance kills the group, which
  takes every child the runtime forked with it.
- stdout and stderr share one pipe, so lines keep the order the runtime wrote them in;
  the pipe is read on the event loop and split into lines.
- Its exit is watched through a pidfd: no SIGCHLD handler, no thread per child.
- Its group is registered with the ``Guardian`` so it dies even if the daemon is SIGKILLed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence

from rapid.supervisor.cgroups import Freezer
from rapid.supervisor.guardian import Guardian
from rapid.supervisor.memory import PeakMemory

_MAX_LINE = 256 * 1024  # a runtime that never writes a newline still gets its output shown


class RuntimeProcess:
    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        on_line: Callable[[bytes], None],
        on_exit: Callable[[int], None],
        guardian: Guardian,
        *,
        preexec: Callable[[], None] | None = None,
        cgroup: str | None = None,
        freezer: str | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self._begin(on_line, on_exit, guardian)
        r, w = os.pipe()
        try:
            self._popen: subprocess.Popen[bytes] | None = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=w,
                stderr=w,
                start_new_session=True,
                close_fds=True,
                pass_fds=pass_fds,
                preexec_fn=preexec,
            )
        except BaseException:
            os.close(r)
            os.close(w)
            raise
        os.close(w)
        self._adopt(self._popen.pid, r, cgroup, freezer)
        self._pidfd: int | None = os.pidfd_open(self.pid)
        self._loop.add_reader(self._pidfd, self._reap)

    def _begin(self, on_line: Callable[[bytes], None], on_exit: Callable[[int], None], guardian: Guardian) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_line = on_line
        self._on_exit = on_exit
        self._guardian = guardian
        self._partial = b""
        self.returncode: int | None = None

    def _adopt(self, pid: int, out: int, cgroup: str | None, freezer: str | None) -> None:
        """The started process ``pid`` whose output is read from ``out``: registered with
        the guardian, its memory and freezer opened, its output read on the loop."""
        self.pid = pid
        self._guardian.watch(pid, freezer)
        self.cgroup = cgroup or freezer
        self.memory = PeakMemory(pid, cgroup)
        self._freezer = Freezer(freezer) if freezer else None
        os.set_blocking(out, False)
        self._out: int | None = out
        self._loop.add_reader(out, self._read)

    # -- output ---------------------------------------------------------------------------

    def _read(self) -> None:
        self.drain()

    def drain(self) -> None:
        """Read whatever the runtime has written so far, without waiting.

        Called before the platform writes END/REPORT, so a runtime's lines printed before it
        answered are shown (and kept in the log tail) before the END line.
        """
        fd = self._out
        if fd is None:
            return
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close_output()
                return
            self._split(data)
            if len(data) < 65536:
                return

    def _split(self, data: bytes) -> None:
        if self._partial:
            data = self._partial + data
            self._partial = b""
        lines = data.split(b"\n")
        tail = lines.pop()
        for line in lines:
            self._on_line(line)
        if len(tail) > _MAX_LINE:
            self._on_line(tail)
        else:
            self._partial = tail

    def _close_output(self) -> None:
        fd = self._out
        if fd is None:
            return
        self._out = None
        self._loop.remove_reader(fd)
        os.close(fd)
        if self._partial:
            self._on_line(self._partial)
            self._partial = b""

    # -- exit -----------------------------------------------------------------------------

    def _reap(self) -> None:
        assert self._popen is not None
        code = self._popen.poll()
        if code is None:
            return
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._ended(code)

    def _ended(self, code: int) -> None:
        """It exited with ``code`` (negative: the signal that killed it)."""
        self.returncode = code
        self.drain()
        # Children the runtime left behind die with it.
        self._signal_group(signal.SIGKILL)
        self._guardian.forget(self.pid)
        self.memory.sample()  # the last word on the peak, for a crash's REPORT
        self.memory.close()
        if self._freezer is not None:
            self._freezer.close()
            self._freezer = None
        self._close_output()
        self._on_exit(code)

    # -- signals --------------------------------------------------------------------------

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except OSError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole group; the exit is reported through ``on_exit`` as usual."""
        self._signal_group(signal.SIGKILL)
        if self._freezer is not None:
            self._freezer.thaw()  # a task in a frozen v1 cgroup dies only once thawed

    def terminate(self) -> None:
        self._signal_group(signal.SIGTERM)

    def freeze(self) -> None:
        """Stop the whole instance between invokes, as Lambda freezes an idle environment:
        its freezer cgroup if it has one (invisible to it), else SIGSTOP to its group."""
        if self._freezer is not None:
            self._freezer.freeze()
        else:
            self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._freezer is not None:
            self._freezer.thaw()
        else:
            self._signal_group(signal.SIGCONT)

    def peak_memory_mb(self) -> int:
        return self.memory.sample()

    def members(self) -> list[int]:
        """The instance's processes, where a cgroup knows them (else empty)."""
        if self.cgroup is None:
            return []
        try:
            with open(os.path.join(self.cgroup, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    @property
    def alive(self) -> bool:
        return self.returncode is None

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<RuntimeProcess pid={self.pid} {state}>"
