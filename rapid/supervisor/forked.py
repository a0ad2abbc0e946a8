"""A runtime forked from a SnapStart template, driven as any runtime process.

The daemon did not start it (the template did, with ``fork``), so it differs from a
``RuntimeProcess`` in two things only: there is no ``Popen``, and its exit status comes
from the template, the only process that may wait for it (``exited``). Everything else is
the same: its own session (so ``kill`` takes its whole group), output read from the pipe
the daemon made for it, freeze and thaw, the peak memory of its cgroup, the guardian.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from rapid.supervisor.cgroups import Freezer
from rapid.supervisor.guardian import Guardian
from rapid.supervisor.memory import PeakMemory
from rapid.supervisor.process import RuntimeProcess


class ForkedProcess(RuntimeProcess):
    def __init__(  # noqa: PLR0913 - the pieces a RuntimeProcess gets from its Popen
        self,
        pid: int,
        out: int,
        on_line: Callable[[bytes], None],
        on_exit: Callable[[int], None],
        guardian: Guardian,
        *,
        cgroup: str | None = None,
        freezer: str | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._on_line = on_line
        self._on_exit = on_exit
        self._guardian = guardian
        self._partial = b""
        self.returncode: int | None = None
        self.pid = pid
        guardian.watch(pid, freezer)
        self.cgroup = cgroup or freezer
        self.memory = PeakMemory(pid, cgroup)
        self._freezer = Freezer(freezer) if freezer else None
        os.set_blocking(out, False)
        self._out: int | None = out
        loop.add_reader(out, self._read)
        self._pidfd = None

    def _reap(self) -> None:  # never registered: the template reports the exit
        pass

    def exited(self, code: int) -> None:
        """The template reaped it: the same end as a ``RuntimeProcess``'s."""
        if self.returncode is not None:
            return
        self.returncode = code
        self.drain()
        self._signal_group(9)  # what it left behind goes with it
        self._guardian.forget(self.pid)
        self.memory.sample()
        self.memory.close()
        if self._freezer is not None:
            self._freezer.close()
            self._freezer = None
        self._close_output()
        self._on_exit(code)

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<ForkedProcess pid={self.pid} {state}>"
