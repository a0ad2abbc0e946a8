"""A watchdog that kills every runtime process group once the daemon is gone.

A daemon can be killed with SIGKILL, which gives it no chance to clean up. So at start it
spawns this tiny process (in its own session, ignoring ^C and SIGTERM) and tells it, over
a pipe, each process group it creates and ends (with the group's freezer cgroup, if any).
When the pipe reaches EOF (the daemon ended, however it ended) the guardian SIGKILLs every
group still on its list, thaws its freezer (a frozen task dies only once thawed), removes
the daemon's cgroup folders and temporary folders, and exits.
"""

from __future__ import annotations

import os
import subprocess
import sys

from rapid.supervisor.exits import wait_exited

_PROGRAM = r"""
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
groups, folders, scratch = {}, [], []
for line in sys.stdin.buffer:
    op, rest = line[:1], line[1:].decode().rstrip("\n")
    if op == b"c":
        folders.append(rest)
        continue
    if op == b"r":
        scratch.append(rest)
        continue
    pgid, _, freezer = rest.partition(" ")
    if op == b"+":
        groups[int(pgid)] = freezer
    else:
        groups.pop(int(pgid), None)
for pgid, freezer in groups.items():
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
        path = os.path.join(freezer, name)
        if not freezer or not os.path.exists(path):
            continue
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError:
            pass
# The daemon's cgroup folders go once their processes are gone.
import time
for _ in range(50):
    left = []
    for base in folders:
        for name in (os.listdir(base) if os.path.isdir(base) else []):
            try:
                os.rmdir(os.path.join(base, name))
            except OSError:
                pass
        try:
            os.rmdir(base)
        except OSError:
            left.append(base)
    folders = left
    if not folders:
        break
    time.sleep(0.05)
def rmtree(path):  # shutil.rmtree(path, ignore_errors=True), without importing shutil (~10 ms here)
    try:
        with os.scandir(path) as entries:
            found = list(entries)
    except OSError:
        found = []
    for entry in found:
        try:
            if entry.is_dir(follow_symlinks=False):
                rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass
for path in scratch:
    rmtree(path)
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

    def watch(self, pgid: int, freezer: str | None = None) -> None:
        self._send(f"+{pgid} {freezer or ''}\n".encode())

    def cgroup_folder(self, path: str) -> None:
        """A cgroup folder of the daemon's, to remove at the end (even after a SIGKILL)."""
        self._send(f"c{path}\n".encode())

    def scratch_folder(self, path: str) -> None:
        """A temporary folder of the daemon's, to remove at the end (even after a SIGKILL)."""
        self._send(f"r{path}\n".encode())

    def forget(self, pgid: int) -> None:
        self._send(b"-%d\n" % pgid)

    def _send(self, line: bytes) -> None:
        try:
            os.write(self._fd, line)
        except OSError:
            pass

    def end(self) -> None:
        """Tell the guardian to finish (kill what is registered, remove the folders) without
        waiting for it: the host ends the spawner meanwhile. Safe to call twice."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()

    def close(self) -> None:
        """Kill whatever is still registered and wait for the guardian to finish."""
        self.end()
        if not wait_exited(self._proc, 5):
            self._proc.kill()
            self._proc.wait()

    def __repr__(self) -> str:
        return f"<Guardian pid={self._proc.pid}>"
