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
  stdout and stderr go) is taken by a child forked ahead of it (``Ready``), which has
  already restored SIGPIPE and SIGXFSZ, taken /dev/null as stdin, started its own session
  and (as the previous request did) taken a mount namespace of its own with private
  mounts, and made in it the previous request's mounts (its tmpfs on /tmp, its binds). It
  takes the descriptor as stdout and stderr, enters ``cwd`` and its sandbox
  (``spawn_sandbox.enter(plan)``, skipping the mounts if they are the ones it made, or
  ``join`` for a process that shares a running runtime's; back into the host's mount
  namespace if the request asks for none or for other mounts), closes every other
  descriptor, asks for SIGKILL if this process dies, and execs (``PATH`` searched as
  ``subprocess`` does);
- it answers ``("spawned", id, pid)`` with a pidfd of the child once the exec succeeded,
  or ``("failed", id, errno, text)`` if any step failed (the child reports it over a
  close-on-exec pipe, as ``subprocess`` does; this process wakes once per request, when
  the child has exec'd or ended, so it never competes with the child for a CPU while the
  child works), and readies the next child;
- when a child exits it reaps it and says ``("exit", pid, code)``, the code as
  ``Popen.returncode`` has it (negative: killed by that signal).

It dies with the daemon: ``PR_SET_PDEATHSIG`` (SIGKILL) as soon as it starts, checked
against the daemon's pid given on its command line (in case the daemon was already gone),
and it exits when the socket reaches EOF (its ready child sees it first, and exits 0). Its
runtimes ask for SIGKILL when it dies, so a
runtime that was being started when the daemon was killed (one the guardian has not heard
of yet) does not outlive it either.

One difference from a fork at the moment of the spawn: the ready child's mount namespace
is a copy of the host's mount table from when it was readied, at most ``_STALE`` (5) seconds
before the spawn, since a child that waits that long is replaced by a fresh one.
"""

from __future__ import annotations

import array
import ctypes
import gc
import marshal
import os
import select
import selectors
import signal
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spawn_sandbox  # noqa: E402 - this file runs on its own (-I -S), without the rapid package

_RECV = 1 << 20  # a spawn request: argv, an environment of at most some KB, a plan
_TOP_FD = 1 << 20
_STALE = 5.0  # seconds a ready child waits before it is replaced by a fresh one


def main(daemon: int, fd: int, namespaces: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    spawn_sandbox.quicken(libc)  # once here, not in every child
    spawn_sandbox.prctl(libc, spawn_sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != daemon:  # the daemon died before the line above
        return
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)
    sock.setblocking(True)
    sel = selectors.DefaultSelector()
    send(sock, ("ready", os.getpid()))
    # How the next child is readied: None (no mount namespace), {} (one, with private
    # mounts), or the mounts of the last request (``spawn_sandbox.mounts_of``) made in it too.
    ahead: dict | None = {} if namespaces else None
    ready = Ready(sock, libc, ahead)
    sel.register(ready.done, selectors.EVENT_READ, ready)
    failures = 0
    while True:
        for key, _ in sel.select():
            if key.data is not ready:  # a runtime's pidfd: it exited
                pid = key.data
                sel.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                send(sock, ("exit", pid, os.waitstatus_to_exitcode(status)))
                continue
            sel.unregister(ready.done)
            outcome = ready.finish()
            if outcome == "gone":
                return  # the daemon closed its end
            if outcome == "stale" or outcome == "crashed":
                failures = failures + 1 if outcome == "crashed" else 0
                if failures > 3:
                    return  # it cannot fork a working child: the daemon falls back
                if outcome == "crashed":
                    ahead = {} if ahead is not None else None  # not the mounts it may have failed on
            else:
                failures = 0
                rid, asked, answer = outcome
                if isinstance(answer, int):
                    sel.register(answer, selectors.EVENT_READ, ready.pid)
                    send(sock, ("spawned", rid, ready.pid), os.dup(answer))
                else:
                    send(sock, ("failed", rid, *answer))
                    asked = {} if asked is not None else None
                ahead = asked  # the next one is readied as this one was asked for
            ready = Ready(sock, libc, ahead)
            sel.register(ready.done, selectors.EVENT_READ, ready)


class Ready:
    """A child forked ahead of the next request, waiting for it on the daemon's socket.

    Before any request it does what does not depend on one: SIGKILL if this process dies,
    SIGPIPE and SIGXFSZ back to their defaults, /dev/null as stdin, its own session, and
    (``ahead``: as the last request was) its own mount namespace with private mounts, and
    in it the last request's mounts (the tmpfs on /tmp, the binds; a request that wants
    other mounts goes back to the host's namespace and takes a fresh copy, as without
    them). So a spawn costs no fork, no namespace copy and (for the same function again) no
    mount on the daemon's time, only the request's own steps. It is replaced every ``_STALE`` seconds while it waits, so the
    mount table it copied is never older than that.

    It reports through two close-on-exec pipes, so that this process wakes once per
    request, when the child has exec'd or ended (``done`` reaches EOF), not while the
    child still works: ``data`` gets the request's id and mounts as the child takes it,
    then nothing if the exec succeeds, or the errno and text of the step that failed.
    """

    def __init__(self, sock: socket.socket, libc: ctypes.CDLL, ahead: dict | None) -> None:
        me = os.getpid()
        self.data, data_w = os.pipe()
        self.done, done_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.data)
            os.close(self.done)
            _ready_child(sock, data_w, done_w, libc, ahead, me)  # never returns
        os.close(data_w)
        os.close(done_w)

    def finish(self) -> str | tuple[int, dict | None, int | list[object]]:
        """Once ``done`` is readable: what came of it ("gone", "stale", "crashed", or the
        request's id, the mounts to ready the next child with, and the pidfd or [errno, text])."""
        os.close(self.done)
        report = b""
        while True:
            chunk = os.read(self.data, 65536)
            if not chunk:
                break
            report += chunk
        os.close(self.data)
        frames, whole = _frames(report)
        if not frames or frames[0][0] != "took":
            _, status = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
            return "gone" if code == 0 else "stale" if code == 3 else "crashed"
        _, rid, asked = frames[0]
        if len(frames) > 1 or not whole:
            os.waitpid(self.pid, 0)
            try:
                _, errno, text = frames[1]
            except (IndexError, ValueError):
                errno, text = 0, "the child failed before it could exec"
            return rid, asked, [errno, text]
        return rid, asked, os.pidfd_open(self.pid)


def _ready_child(sock: socket.socket, data_w: int, done_w: int, libc: ctypes.CDLL, ahead: dict | None,
                 spawner: int) -> None:
    step = "ready"
    try:
        gc.disable()  # nothing it allocates lives long; a collection would only fault in pages
        spawn_sandbox.prctl(libc, spawn_sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != spawner:
            os._exit(1)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.setsid()
        host_ns = -1
        mounted = None  # the mounts made ahead (``mounts_of``), if they all succeeded
        if ahead is not None:
            host_ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            spawn_sandbox.unshare_mounts(libc)
            if ahead:
                try:
                    spawn_sandbox.ready_mounts(ahead, libc)
                    mounted = ahead
                except OSError:
                    mounted = False  # made again on the request, whose error it then is
        # Waits with poll, not a socket timeout: that would make the socket non-blocking for
        # the spawner too (the flag belongs to the open file, which they share).
        waiting = select.poll()
        waiting.register(sock.fileno(), select.POLLIN)
        if not waiting.poll(_STALE * 1000):
            os._exit(3)  # stale: the spawner readies a fresh one
        try:
            data, ancillary, _flags, _ = sock.recvmsg(_RECV, socket.CMSG_SPACE(16),
                                                      socket.MSG_CMSG_CLOEXEC | socket.MSG_DONTWAIT)
        except BlockingIOError:
            os._exit(3)
        if not data:
            os._exit(0)  # the daemon is gone
        fds = received_fds(ancillary)
        _, rid, argv, env, cwd, plan, join = marshal.loads(data)
        wants = plan is not None and join is None and bool(plan.get("namespace"))
        # The next child is readied for this request's mounts (one that joins a running
        # runtime's namespace leaves that as it was).
        asked = ahead if join is not None else spawn_sandbox.mounts_of(plan) if wants else None
        _frame(data_w, ("took", rid, asked))  # read once this child has exec'd or ended
    except BaseException:  # noqa: BLE001 - nothing taken yet: the spawner readies another
        os._exit(1)
    try:
        if len(fds) != 1:
            raise OSError(0, f"spawn request with {len(fds)} descriptors, expected 1")
        step = "stdio"
        os.dup2(fds[0], 1)
        os.dup2(fds[0], 2)
        ready = wants and bool(mounted) and mounted == asked
        # Back to the host's namespace if readied for one this request does not take, or
        # with mounts it does not want (then a fresh copy is taken below, as without one).
        # Rare: the last one out of a namespace waits for its mounts to go (an RCU grace period).
        again = wants and mounted is not None and not ready
        if host_ns >= 0 and (not wants or again):
            if libc.setns(host_ns, spawn_sandbox.CLONE_NEWNS) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        step = "chdir"
        os.chdir(cwd)
        step = "sandbox"
        if plan is not None:
            if join is not None:
                spawn_sandbox.join(join, plan, libc)
            else:
                spawn_sandbox.enter(plan, libc, unshared=wants and host_ns >= 0 and not again, mounted=ready)
        _close_all_but(data_w, done_w)
        spawn_sandbox.prctl(libc, spawn_sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)  # again: a uid change clears it
        if os.getppid() != spawner:  # the spawner died before the line above
            os._exit(255)
        step = "exec"
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        errno = exc.errno or 0
        text = exc.strerror or str(exc)
        if step == "sandbox" and errno and os.strerror(errno) not in text:
            text = f"{text}: {os.strerror(errno)}"
        _report(data_w, errno, text)
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the daemon hears of it
        _report(data_w, 0, f"{step}: {type(exc).__name__}: {exc}")
    os._exit(255)


def _close_all_but(*keep: int) -> None:
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _TOP_FD)


_LENGTH = struct.Struct("=I")


def _frame(fd: int, record: tuple) -> None:
    body = marshal.dumps(record)
    os.write(fd, _LENGTH.pack(len(body)) + body)


def _frames(data: bytes) -> tuple[list[tuple], bool]:
    """The records in ``data``, and whether it held nothing else (a child cut short writes half a one)."""
    out, at = [], 0
    while at + _LENGTH.size <= len(data):
        (size,) = _LENGTH.unpack_from(data, at)
        at += _LENGTH.size
        if at + size > len(data):
            return out, False
        try:
            out.append(marshal.loads(data[at:at + size]))
        except (EOFError, ValueError, TypeError):
            return out, False
        at += size
    return out, at == len(data)


def _report(fd: int, errno: int, text: str) -> None:
    try:
        _frame(fd, ("failed", errno, text))
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
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1")
