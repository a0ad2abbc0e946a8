"""What a new runtime does to enter its sandbox, between fork and exec: plain values in,
system calls out.

``Sandbox.plan`` writes down, as a dict of plain values (strings, ints, lists), everything
an instance's runtime must do to itself before it execs; ``enter`` carries it out in the
child. Because the plan is plain values, the same steps run in either of the two places a
runtime can be started from:

- in a child of the **spawner** (``rapid.supervisor.spawn_zygote``), a small process that
  forks cheaply: the plan travels to it over a socket;
- in a ``preexec_fn`` of the daemon itself (``Sandbox.prepare``'s ``preexec``), the
  fallback where the spawner cannot run.

The steps, in order (each raises ``OSError`` with the errno and the step that failed):

1. with ``namespace``: a mount namespace of its own (mounts private, so nothing leaks back
   to the host), a tmpfs on ``/tmp`` of ``tmp_mb`` MB; the ``hidden`` paths (what the
   runtime needs that lives under the host's ``/tmp``) bound back in read-only; the
   ``readonly`` folders (task root, runtime) remounted read-only, nosuid, nodev; the
   merged layers at ``/opt``; then into ``task_root`` as the namespace shows it;
2. rlimits: 1,024 open files and 1,024 processes, as on Lambda. Only after the step above,
   so that no step opens a descriptor under the new limit: a child of the daemon holds the
   daemon's descriptors until it execs, more than 1,024 of them with some 170 instances
   running (the open of a hidden path then failed with EMFILE, and every new instance with
   ``Runtime.InvalidEntrypoint``). Before the uid drop, which loses the right to raise a
   hard limit;
3. with ``uid``: every capability dropped from the bounding and ambient sets, no
   supplementary groups, the uid and gid, then every remaining set emptied (``capset``);
4. ``PR_SET_NO_NEW_PRIVS``: no setuid or file-capability binary can raise it after exec.

Only the standard library is used: the spawner imports this file on its own, without the
rest of rapid (it runs with ``python -I -S``).
"""

from __future__ import annotations

import ctypes
import os
import resource
from collections.abc import Callable
from typing import Any

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
# statvfs flags a bind remount must repeat, or it would clear them.
KEPT_FLAGS = (
    (os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
PR_SET_PDEATHSIG = 1
CAPABILITY_VERSION_3 = 0x20080522
LAMBDA_RLIMITS = 1024

Plan = dict[str, Any]


def enter(plan: Plan, libc: ctypes.CDLL, unshared: bool = False, mounted: bool = False) -> None:
    """Carry out ``plan`` on the calling process (a child about to exec). ``unshared``: it
    already has a mount namespace of its own with private mounts (``unshare_mounts``);
    ``mounted``: and the plan's mounts are already in it (``ready_mounts``, done before the
    plan came)."""
    if plan["namespace"]:
        if mounted:
            os.chdir(plan["task_root"])
        else:
            if not unshared:
                unshare_mounts(libc)
            _private_mounts(plan, libc)
    _lambda_rlimits(plan["rlimit"])  # while it may still raise them (as root), opening nothing after
    uid = plan["uid"]
    if uid is not None:
        drop_to(uid, plan["last_cap"], libc)
    prctl(libc, PR_SET_NO_NEW_PRIVS, 1)


# What of a plan the mounts depend on: a ready child can mount them before the plan comes.
MOUNT_KEYS = ("namespace", "tmp_mb", "hidden", "readonly", "opt", "task_root")


def mounts_of(plan: Plan | None) -> Plan | None:
    """The part of ``plan`` its mounts depend on (None: it takes no mount namespace)."""
    if plan is None or not plan.get("namespace"):
        return None
    return {k: plan[k] for k in MOUNT_KEYS}


def ready_mounts(mounts: Plan, libc: ctypes.CDLL) -> None:
    """In a child that has unshared (``unshare_mounts``) and waits for its plan: the mounts
    of ``mounts`` (``mounts_of`` a plan), as ``enter`` would make them."""
    _private_mounts(mounts, libc)


def quicken(libc: ctypes.CDLL) -> None:
    """Look up, once, every libc function a child calls, with its argument types: in a
    forked child each first lookup (``dlsym``, a new function object) and each argument
    wrapped by hand cost microseconds, some 0.3 ms for the 41 capability drops alone."""
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    libc.prctl.restype = ctypes.c_int
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.mount.restype = ctypes.c_int
    for name in ("unshare", "setns", "capset"):
        getattr(libc, name)


def _lambda_rlimits(limit: int) -> None:
    # After every step that opens a descriptor: a child of the daemon still holds the
    # daemon's descriptors until exec, and with some 170 instances running those pass
    # 1,024, so an open under the new limit would fail with EMFILE. Before the uid drop,
    # which takes away the right to raise a hard limit.
    for which in (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC):
        resource.setrlimit(which, (limit, limit))


def unshare_mounts(libc: ctypes.CDLL) -> None:
    """A mount namespace of its own, where no mount propagates back to the host."""
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    _mounter(libc)(None, "/", None, MS_REC | MS_PRIVATE, None)


def _private_mounts(plan: Plan, libc: ctypes.CDLL) -> None:
    mount = _mounter(libc)
    fds = {p: os.open(p, os.O_PATH) for p in plan["hidden"] if os.path.exists(p)}
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={plan['tmp_mb']}m,mode=1777")
    for path, fd in fds.items():
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        mount(None, path, None, locked_down(path), None)  # never writable, nosuid, nodev
        os.close(fd)
    for path in plan["readonly"]:
        if os.path.isdir(path):
            if path not in fds:
                mount(path, path, None, MS_BIND | MS_REC, None)
            mount(None, path, None, locked_down(path), None)
    bind_opt(mount, plan["opt"])
    os.chdir(plan["task_root"])


def drop_to(uid: int, last_cap: int, libc: ctypes.CDLL) -> None:
    """Become ``uid`` (and gid ``uid``) with no capability in any set."""
    # Drop every capability the child could ever regain, while it still may (without
    # CAP_SETPCAP, as in some containers, the bounding set stays; no new privileges still
    # keeps any exec from using it).
    drop_bounding(last_cap, libc)
    prctl(libc, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)  # clears permitted and effective; inheritable stays, so:
    clear_capabilities(libc)


def drop_bounding(last_cap: int, libc: ctypes.CDLL) -> None:
    """Every capability out of the bounding set (where the process may; see ``drop_to``)."""
    fn = libc.prctl
    if fn.argtypes:  # quickened: plain ints
        for cap in range(last_cap + 1):
            fn(PR_CAPBSET_DROP, cap, 0, 0, 0)
    else:
        for cap in range(last_cap + 1):
            fn(PR_CAPBSET_DROP, ctypes.c_ulong(cap), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def join(pid: int, plan: Plan, libc: ctypes.CDLL) -> None:
    """For another process of a running instance (an extension): the runtime ``pid``'s
    mount namespace (so its private /tmp), the same rlimits and uid, no privilege."""
    if plan["namespace"]:
        cwd = os.getcwd()
        fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNS) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        os.chdir(cwd)  # the same folder, as the namespace shows it
    _lambda_rlimits(plan["rlimit"])
    uid = plan["uid"]
    if uid is not None:
        drop_bounding(plan["last_cap"], libc)
        libc.prctl(PR_CAP_AMBIENT, ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), ctypes.c_ulong(0), ctypes.c_ulong(0),
                   ctypes.c_ulong(0))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        clear_capabilities(libc)
    libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


# -- system calls ----------------------------------------------------------------------------

MountFn = Callable[[str | None, str, str | None, int, str | None], None]


def _mounter(libc: ctypes.CDLL) -> MountFn:
    def mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
        enc = (lambda s: s.encode() if s is not None else None)
        if libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount {target}: {os.strerror(err)}")

    return mount


def prctl(libc: ctypes.CDLL, option: int, arg: int, arg3: int = 0) -> None:
    if libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl {option}: {os.strerror(err)}")


def locked_down(path: str) -> int:
    """Flags to remount a bind of ``path`` read-only, nosuid and nodev, keeping the
    restrictions its filesystem already had."""
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_REC
    have = os.statvfs(path).f_flag
    for st, ms in KEPT_FLAGS:
        if have & st:
            flags |= ms
    return flags


def bind_opt(mount: MountFn, merged: str) -> None:
    """In the instance's mount namespace: its merged layers at ``/opt``, read-only, nosuid, nodev."""
    if not merged:
        return
    os.makedirs("/opt", exist_ok=True)
    mount(merged, "/opt", None, MS_BIND | MS_REC, None)
    mount(None, "/opt", None, locked_down(merged), None)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_CapSets = _CapData * 2  # made once: a new array type in every child costs some 0.1 ms


def clear_capabilities(libc: ctypes.CDLL) -> None:
    """capset(2) with every set empty (version 3: two 32-bit words per set)."""
    header = _CapHeader(CAPABILITY_VERSION_3, 0)
    data = _CapSets()
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")
