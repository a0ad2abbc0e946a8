"""A watchdog that kills every runtime process group once the daemon is gone.

A daemon can be killed with SIGKILL, which gives it no chance to clean up. So at start it
spawns this tiny process (in its own session, ignoring ^C and SIGTERM) and tells it, over
a pipe, each process group it creates and ends. When the pipe reaches EOF (the daemon ended,
however it ended) the guardian SIGKILLs every group still on its list and exits.
"""

from __future__ import annotations

import os
import subprocess
import sys

_PROGRAM = r"""
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
groups = set()
for line in sys.stdin.buffer:
    op, pgid = line[:1], int(line[1:])
    if op == b"+":
        groups.add(pgid)
    else:
        groups.discard(pgid)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class Guardian:
    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _PROGRAM],
            stdin=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            env={},  # it needs nothing from the daemon's environment
        )
        assert self._proc.stdin is not None
        self._fd = self._proc.stdin.fileno()

    def watch(self, pgid: int) -> None:
        self._send(b"+%d\n" % pgid)

    def forget(self, pgid: int) -> None:
        self._send(b"-%d\n" % pgid)

    def _send(self, line: bytes) -> None:
        try:
            os.write(self._fd, line)
        except OSError:
            pass

    def close(self) -> None:
        """Kill whatever is still registered and wait for the guardian to finish."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __repr__(self) -> str:
        return f"<Guardian pid={self._proc.pid}>"
