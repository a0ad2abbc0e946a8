"""The SnapStart template of the bundled Python runtime: init once, fork an instance per request.

Theory of operation
-------------------
rapid starts ``bootstrap`` with ``RAPID_SNAP_TEMPLATE_FD``: a SOCK_SEQPACKET socket to the
daemon (one message per datagram), in the sandbox of an ordinary instance (its own uid, no
capabilities, no new privileges, read-only code, its own /tmp and memory cgroup). The
template

1. imports the handler (the function's init: module code runs here, once) and runs the
   before-snapshot hooks, newest first; it then says ``{"ready": pid}``, or
   ``{"init_error": body}`` and exits;
2. waits for fork requests: ``{"env", "cwd", "sandbox"}`` with, as SCM_RIGHTS descriptors,
   the write end of the new instance's output pipe and the read end of its *go* pipe. For
   each it forks. The child (``_become``) starts its own session, writes to that pipe and,
   when it is to run under a uid of its own, takes a user namespace and a mount namespace
   (``unshare``) and tells the template it did; the template answers
   ``{"forked": pid}`` (with ``"error"`` if the child could not). The daemon then maps the
   instance's uid into that namespace and writes the go byte. Only then does the child enter the rest of its sandbox (the uid, a tmpfs of
   its own on /tmp with what it hides bound back read-only, every capability dropped, no
   new privileges), take the instance's environment wholesale (its own
   ``AWS_LAMBDA_RUNTIME_API``, TMPDIR, log stream) and run the restore phase, then the
   invocation loop (``rapid.supervisor.userns`` says why this is safe);
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
import traceback

_CLONE_NEWNS, _CLONE_NEWUSER = 0x00020000, 0x10000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MS_NOATIME, _MS_NODIRATIME, _MS_RELATIME = 1024, 2048, 1 << 21
_KEPT_FLAGS = ((os.ST_NOEXEC, _MS_NOEXEC), (os.ST_NOATIME, _MS_NOATIME), (os.ST_NODIRATIME, _MS_NODIRATIME),
               (os.ST_RELATIME, _MS_RELATIME))
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
            data, fds, _, _ = socket.recv_fds(control, 1 << 20, 2)
        except ConnectionError:
            data, fds = b"", []
        if not data:  # the daemon closed its end (it kills the instances itself)
            sys.exit(0)
        request = json.loads(data)
        out, go = fds[0], (fds[1] if len(fds) > 1 else None)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            control.close()
            os.close(ready_r)
            code = 1
            try:  # whatever happens, the child never goes back to the template's loop
                try:
                    _become(request, out, go, ready_w, runtime, handler, hooks)
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else 1
                except BaseException:  # its sandbox could not be entered
                    traceback.print_exc()
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
        os.close(ready_w)
        for d in fds:
            os.close(d)
        said = _read_all(ready_r)  # b"u": ready for the daemon; anything else: why it failed
        if said == b"u":
            _send(control, {"forked": pid})
        else:
            _send(control, {"forked": pid, "error": said.decode("utf-8", "replace") or "the fork ended early"})


def _read_all(fd):
    chunks = []
    with os.fdopen(fd, "rb") as f:
        first = f.read(1)
        chunks.append(first)
        if first != b"u":
            chunks.append(f.read(4096))
    return b"".join(chunks)


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


def _become(request, out, go, ready, runtime, handler, hooks):
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    libc = ctypes.CDLL(None, use_errno=True)
    spec = request["sandbox"]
    try:
        if spec.get("userns"):
            _check(libc.unshare(_CLONE_NEWUSER | (_CLONE_NEWNS if spec.get("namespace") else 0)), "unshare")
        os.write(ready, b"u")
    except OSError as e:
        os.write(ready, str(e).encode())
        os._exit(1)
    os.close(ready)
    # The daemon maps this instance's uid into its user namespace; then says go.
    if go is not None:
        with os.fdopen(go, "rb") as f:
            if f.read(1) != b"1":
                os._exit(1)  # the daemon gave up on this instance
    _enter_sandbox(libc, spec)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    api = runtime.RuntimeAPI(os.environ["AWS_LAMBDA_RUNTIME_API"])
    runtime.restore(api, hooks.after_restore)
    while True:
        runtime.handle_next(api, handler)


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _enter_sandbox(libc, spec):
    """The instance's sandbox, from the plain values rapid's supervisor chose for it. In a
    user namespace of its own (``userns``) the fork still holds that namespace's
    capabilities here: it becomes its uid first (so what it makes on its tmpfs is its
    own), mounts, and drops them all last."""
    def mount(src, target, fstype, flags, data):
        enc = (lambda v: v.encode() if v is not None else None)
        _check(libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")

    for limit in (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC):
        resource.setrlimit(limit, (spec["rlimit"], spec["rlimit"]))
    uid = spec.get("uid")
    userns = spec.get("userns")
    if userns:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)  # the only id its namespace maps; its capabilities there stay
    if spec.get("namespace"):
        if not userns:
            _check(libc.unshare(_CLONE_NEWNS), "unshare")
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
            mount(None, path, None, _locked_down(path), None)  # never writable, nosuid, nodev
            os.close(fd)
    if uid is not None:
        for cap in range(spec["last_cap"] + 1):
            libc.prctl(_PR_CAPBSET_DROP, ctypes.c_ulong(cap), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
        libc.prctl(_PR_CAP_AMBIENT, ctypes.c_ulong(_PR_CAP_AMBIENT_CLEAR_ALL), ctypes.c_ulong(0), ctypes.c_ulong(0),
                   ctypes.c_ulong(0))
        if not userns:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        _clear_capabilities(libc)
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                      ctypes.c_ulong(0)), "prctl")


def _locked_down(path):
    """Remount flags for a bind of ``path``: read-only, nosuid, nodev, and whatever its
    filesystem already had (a user namespace may not clear those)."""
    flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_REC
    have = os.statvfs(path).f_flag
    for st, ms in _KEPT_FLAGS:
        if have & st:
            flags |= ms
    return flags


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
