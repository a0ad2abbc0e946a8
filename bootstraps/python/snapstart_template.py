"""The SnapStart template of the bundled Python runtime: init once, fork an instance per request.

Theory of operation
-------------------
rapid starts ``bootstrap`` with ``RAPID_SNAP_TEMPLATE_FD``: a SOCK_SEQPACKET socket to the
daemon (one message per datagram). The template

1. imports the handler (the function's init: module code runs here, once) and runs the
   before-snapshot hooks, newest first; it then says ``{"ready": pid}``, or
   ``{"init_error": body}`` and exits;
2. waits for fork requests: ``{"env", "cwd", "sandbox"}`` with the write end of the new
   instance's output pipe as an SCM_RIGHTS descriptor. For each it forks; the child
   (``_become``) starts its own session, writes to that pipe, enters the instance's
   sandbox (a fresh mount namespace with its own tmpfs on /tmp, its own uid, no
   capabilities, no new privileges), takes the instance's environment wholesale (its own
   ``AWS_LAMBDA_RUNTIME_API``, TMPDIR, log stream) and runs the restore phase, then the
   invocation loop. The template answers ``{"forked": pid}``;
3. reaps its children and reports each exit, ``{"exit": pid, "status": N}`` (negative for
   a signal), since only a parent may learn a process's status.

What the template imported, computed or opened before the fork is shared by every
instance, as with a Lambda snapshot. Standard library only, like the bootstrap.
"""
import ctypes
import json
import os
import resource
import signal
import socket
import sys

_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
_PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4


def serve(fd, runtime, hooks):
    control = socket.socket(fileno=fd)
    try:
        handler = runtime.load_handler(os.environ.get("_HANDLER", ""))
        for hook, args, kwargs in reversed(hooks.before_snapshot):
            hook(*args, **kwargs)
    except Exception as e:
        error = runtime.error_body(e)
        runtime.log_error(error)
        _send(control, {"init_error": error})
        sys.exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGCHLD, lambda *_: _reap(control))
    _send(control, {"ready": os.getpid()})
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, 1 << 20, 1)
        except ConnectionError:
            data, fds = b"", []
        if not data:  # the daemon closed its end (it kills the instances itself)
            sys.exit(0)
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:
            control.close()
            _become(request, fds[0], runtime, handler, hooks)
            os._exit(1)  # not reached: the child serves until it is killed
        for d in fds:
            os.close(d)
        _send(control, {"forked": pid, "key": request.get("key")})


def _send(control, message):
    try:
        control.send(json.dumps(message).encode())
    except OSError:
        pass


def _reap(control):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(control, {"exit": pid, "status": os.waitstatus_to_exitcode(status)})


def _become(request, out, runtime, handler, hooks):
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    _enter_sandbox(request["sandbox"])
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    api = runtime.RuntimeAPI(os.environ["AWS_LAMBDA_RUNTIME_API"])
    runtime.restore(api, hooks.after_restore)
    while True:
        runtime.handle_next(api, handler)


def _enter_sandbox(spec):
    """The instance's sandbox, from the plain values rapid's supervisor chose for it."""
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result, what):
        if result != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def mount(src, target, fstype, flags, data):
        enc = (lambda s: s.encode() if s is not None else None)
        check(libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")

    for limit in (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC):
        resource.setrlimit(limit, (spec["rlimit"], spec["rlimit"]))
    if spec.get("namespace"):
        check(libc.unshare(_CLONE_NEWNS), "unshare")
        mount(None, "/", None, _MS_REC | _MS_PRIVATE, None)
        kept = {p: os.open(p, os.O_PATH) for p in spec["hidden"] if os.path.exists(p)}
        mount("tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={spec['tmp_mb']}m,mode=1777")
        for path, fd in kept.items():
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(path, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "a").close()
            mount(f"/proc/self/fd/{fd}", path, None, _MS_BIND | _MS_REC, None)
            os.close(fd)
    uid = spec.get("uid")
    if uid is not None:
        for cap in range(spec["last_cap"] + 1):
            libc.prctl(_PR_CAPBSET_DROP, ctypes.c_ulong(cap), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
        libc.prctl(_PR_CAP_AMBIENT, ctypes.c_ulong(_PR_CAP_AMBIENT_CLEAR_ALL), ctypes.c_ulong(0), ctypes.c_ulong(0),
                   ctypes.c_ulong(0))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        _clear_capabilities(libc)
    check(libc.prctl(_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                     ctypes.c_ulong(0)), "prctl")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _clear_capabilities(libc):
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")
