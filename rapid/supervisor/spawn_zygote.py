"""The spawner's own program: a small process that forks and execs every runtime for the daemon.

Why: a daemon of some 60 MB that forks with a Python ``preexec_fn`` pays for it twice. The
fork copies its page tables (``subprocess`` cannot use vfork with a preexec), and the child
runs Python, faulting in copy-on-write pages, before it execs. Measured here: 3.6-10 ms per
runtime against 0.15 ms without a preexec, on the event loop, on every cold start. This
process is a bare interpreter (``python -I -S``, about 10 MB, the standard library only), so
its fork and its child's Python are cheap, and the daemon's loop only waits for one answer.

Protocol, over one ``SOCK_SEQPACKET`` socket pair (one message per datagram, each a
``marshal``-ed tuple; descriptors travel as ``SCM_RIGHTS``):

- it says ``("ready", pid)`` once it is set up;
- ``("spawn", id, argv, env, cwd, plan, join)`` with one descriptor (where the runtime's
  stdout and stderr go): it forks; the child takes /dev/null as stdin and the descriptor
  as stdout and stderr, restores SIGPIPE and SIGXFSZ, enters ``cwd``, starts its own
  session, enters its sandbox (``spawn_sandbox.enter(plan)``, or ``join`` for a process
  that shares a running runtime's), closes every other descriptor, asks for SIGKILL if
  this process dies, and execs (``PATH`` searched as ``subprocess`` does);
- it answers ``("spawned", id, pid)`` with a pidfd of the child once the exec succeeded,
  or ``("failed", id, errno, text)`` if any step failed (the child reports it over a
  close-on-exec pipe, as ``subprocess`` does);
- when a child exits it reaps it and says ``("exit", pid, code)``, the code as
  ``Popen.returncode`` has it (negative: killed by that signal).

It dies with the daemon: ``PR_SET_PDEATHSIG`` (SIGKILL) as soon as it starts, checked
against the daemon's pid given on its command line (in case the daemon was already gone),
and it exits when the socket reaches EOF. Its runtimes ask for SIGKILL when it dies, so a
runtime that was being started when the daemon was killed (one the guardian has not heard
of yet) does not outlive it either.
"""

from __future__ import annotations

import array
import ctypes
import marshal
import os
import selectors
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spawn_sandbox  # noqa: E402 - this file runs on its own (-I -S), without the rapid package

_RECV = 1 << 20  # a spawn request: argv, an environment of at most some KB, a plan
_TOP_FD = 1 << 20


def main(daemon: int, fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    spawn_sandbox.prctl(libc, spawn_sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != daemon:  # the daemon died before the line above
        return
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)
    sock.setblocking(True)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    send(sock, ("ready", os.getpid()))
    while True:
        for key, _ in sel.select():
            if key.fileobj is sock:
                try:
                    data, ancillary, _flags, _ = sock.recvmsg(_RECV, socket.CMSG_SPACE(16), socket.MSG_CMSG_CLOEXEC)
                except OSError:
                    return
                if not data:
                    return  # the daemon is gone
                request = marshal.loads(data)
                fds = received_fds(ancillary)
                try:
                    started = spawn(request, fds, libc)
                finally:
                    for f in fds:
                        os.close(f)
                if isinstance(started, tuple):
                    pid, pidfd = started
                    sel.register(pidfd, selectors.EVENT_READ, pid)
                    send(sock, ("spawned", request[1], pid), os.dup(pidfd))
                else:
                    send(sock, ("failed", request[1], *started))
            else:
                pid = key.data
                sel.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                send(sock, ("exit", pid, os.waitstatus_to_exitcode(status)))


def spawn(request: tuple, fds: list[int], libc: ctypes.CDLL) -> tuple[int, int] | list[object]:
    """Fork and exec one runtime: (pid, pidfd), or [errno, text] of the step that failed."""
    _, _, argv, env, cwd, plan, join = request
    if len(fds) != 1:
        return [0, f"spawn request with {len(fds)} descriptors, expected 1"]
    me = os.getpid()
    err_r, err_w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:
            os.close(err_r)
            child(argv, env, cwd, plan, join, fds[0], err_w, libc, me)  # never returns
        os.close(err_w)
        err_w = -1
        report = b""
        while True:
            chunk = os.read(err_r, 4096)
            if not chunk:
                break
            report += chunk
    finally:
        os.close(err_r)
        if err_w >= 0:
            os.close(err_w)
    if report:
        os.waitpid(pid, 0)
        try:
            errno, text = marshal.loads(report)
        except (EOFError, ValueError, TypeError):
            errno, text = 0, "the child failed before it could exec"
        return [errno, text]
    return pid, os.pidfd_open(pid)


def child(argv: list[str], env: dict[str, str], cwd: str, plan: dict | None, join: int | None, out: int,
          err_w: int, libc: ctypes.CDLL, spawner: int) -> None:
    step = "stdio"
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        step = "chdir"
        os.chdir(cwd)
        os.setsid()
        step = "sandbox"
        if plan is not None:
            if join is not None:
                spawn_sandbox.join(join, plan, libc)
            else:
                spawn_sandbox.enter(plan, libc)
        os.closerange(3, err_w)
        os.closerange(err_w + 1, _TOP_FD)
        spawn_sandbox.prctl(libc, spawn_sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)  # after any uid change
        if os.getppid() != spawner:  # the spawner died before the line above
            os._exit(255)
        step = "exec"
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        errno = exc.errno or 0
        text = exc.strerror or str(exc)
        if step == "sandbox" and errno and os.strerror(errno) not in text:
            text = f"{text}: {os.strerror(errno)}"
        _report(err_w, errno, text)
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the parent hears of it
        _report(err_w, 0, f"{step}: {type(exc).__name__}: {exc}")
    os._exit(255)


def _report(fd: int, errno: int, text: str) -> None:
    try:
        os.write(fd, marshal.dumps((errno, text)))
    except OSError:
        pass


def send(sock: socket.socket, message: tuple, fd: int | None = None) -> None:
    ancillary = [] if fd is None else [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
    try:
        sock.sendmsg([marshal.dumps(message)], ancillary)
    except OSError:
        os._exit(0)  # the daemon is gone
    finally:
        if fd is not None:
            os.close(fd)


def received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(data[: len(data) - len(data) % arr.itemsize])
            fds.extend(arr)
    return fds


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
