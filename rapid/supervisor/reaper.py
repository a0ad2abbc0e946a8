"""rapid as PID 1 of a container: a tiny init that reaps orphans and forwards signals.

In a container the entrypoint is PID 1, and PID 1 inherits every orphan: a runtime that
double-forks (a daemonised helper, ``nohup cmd &`` in a subshell) leaves its grandchild to
PID 1 when the middle process exits, and the grandchild stays a zombie until PID 1 waits
for it. The daemon cannot simply wait for any child: its runtimes' exits are collected by
their own ``Popen`` when their pidfd turns readable, and a ``waitpid(-1)`` would steal
them (the runtime's exit status and its REPORT would be lost).

So when rapid starts as PID 1 it splits in two, as tini and dumb-init do:

- the **init** (PID 1) execs this file with a bare interpreter (``python -I -S``, a few
  MB): it forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the daemon,
  reaps every child it gets, and when the daemon exits, exits with its status (128+N for
  a signal);
- the **daemon** (PID 2, the forked child) runs as usual; it is the parent of its
  runtimes and their only reaper, while orphans go to PID 1.

The forwarded signals are blocked across the fork and the exec, so a ``docker stop`` that
arrives in between waits for the init's handlers instead of being lost (PID 1 ignores a
signal it has no handler for). Only the standard library is used here: the init runs with
``-S``, without site-packages.
"""

from __future__ import annotations

import os
import signal
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def split_if_pid1() -> None:
    """If this process is PID 1, fork: the child returns (and becomes the daemon), the
    parent becomes the init and never returns. Elsewhere, do nothing."""
    if os.getpid() != 1:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    daemon = os.fork()
    if daemon == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        return
    try:
        os.execv(sys.executable, [sys.executable, "-I", "-S", __file__, str(daemon)])
    except OSError:
        init(daemon)  # no interpreter to exec (unlikely): the same loop, in this process


def init(daemon: int) -> None:
    """PID 1's loop: forward signals to ``daemon``, reap every child, exit as it exits."""

    def forward(sig: int, _frame: object) -> None:
        try:
            os.kill(daemon, sig)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    while True:
        try:
            pid, status = os.wait()  # interrupted by a signal: its handler runs, then it waits on
        except ChildProcessError:  # no children left at all (the daemon is gone)
            os._exit(0)
        if pid == daemon:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    init(int(sys.argv[1]))
