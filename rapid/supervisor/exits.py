"""Waiting for one of the daemon's helper processes (the guardian, the spawner) to end.

``Popen.wait(timeout=...)`` polls: it sleeps between checks, doubling the sleep up to 50 ms,
so a helper that needs 20 ms to finish is seen gone some 30 ms later, and the daemon's
shutdown (every test that stops a daemon) pays that once per helper. A pidfd turns readable
the moment the process exits, so ``wait_exited`` wakes at once; the ``Popen`` then reaps it
as usual (its ``returncode`` is set). Where a pidfd cannot be had (an old kernel), it falls
back to ``Popen.wait``.
"""

from __future__ import annotations

import os
import select
import subprocess


def wait_exited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``proc`` to exit, and reap it. False if it is
    still running then (the caller decides: kill it, say so)."""
    if proc.returncode is not None:
        return True
    try:
        fd = os.pidfd_open(proc.pid)
    except OSError:  # no pidfd here (or the pid is gone): the polling wait
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            return False
    finally:
        os.close(fd)
    proc.wait()
    return True
