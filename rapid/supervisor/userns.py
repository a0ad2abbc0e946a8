"""User namespaces for SnapStart forks: how an unprivileged template's child gets its own uid.

Theory of operation
-------------------
A SnapStart template (``rapid.host.snap_template``) runs the function's init, so it is
sandboxed exactly like an ordinary instance: its own uid T, no capabilities, no new
privileges, read-only code. Yet each instance forked from it must run under a uid X of
its own, and an unprivileged process cannot change its uid. The kernel's way out is a user
namespace: the fork (still T, and still holding nothing) calls
``unshare(CLONE_NEWUSER | CLONE_NEWNS)``, which any process may do, and the daemon, root
in the parent namespace, writes the new namespace's ``uid_map`` and ``gid_map`` with one
line, ``X X 1``: only X exists in there. The fork then has every capability *inside* that
namespace, which lets it ``setuid(X)``, mount its own tmpfs on ``/tmp`` and bind what the
tmpfs would hide; then it drops every capability and runs. What was mounted read-only,
nosuid and nodev in the template's namespace comes into the fork's locked (a namespace
owned by a less privileged user namespace cannot unmount them or clear those flags).

Why this holds even if the template's code is hostile (it runs the user's init, and could
rewrite the fork code): the only id a fork's namespace maps is its own X, so the most it
can ever be is X, with capabilities that reach no further than objects of its own
namespace. Mapping more (root, to show root-owned files as root) would let it become
that id while it still holds its namespace's capabilities, so nothing else is mapped:
inside a fork, files of unmapped owners (root's) show as the overflow id, 65534.
``map_ids`` also checks that the pid it is told to map is a child of the template, still
under the template's uid, so a template cannot get the daemon to map another process.

``available()`` tries the whole move once for real (a child drops to an unprivileged uid,
unshares, the parent maps it, the child becomes the mapped uid); where the kernel refuses
(``user.max_user_namespaces`` = 0, a seccomp filter, an LSM), SnapStart templates keep the
daemon's privileges as before, with a warning at start.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys


class NotAChild(OSError):
    """The pid is not the template's own child (or has left its uid): it is not mapped."""


def map_ids(pid: int, uid: int, parent: int, parent_uid: int) -> None:
    """Map ``uid`` (and gid ``uid``) as the only ids of ``pid``'s user namespace, once.
    ``pid`` must be a child of ``parent`` running as ``parent_uid``. Raises ``OSError``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read()
    except FileNotFoundError as exc:
        raise NotAChild(f"process {pid} is gone") from exc
    ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
    uids = next((line.split()[1:] for line in status.splitlines() if line.startswith(b"Uid:")), [])
    if ppid != parent or any(int(u) != parent_uid for u in uids):
        raise NotAChild(f"process {pid} is not the SnapStart template's child")
    line = f"{uid} {uid} 1\n".encode()
    for name in ("uid_map", "gid_map"):
        fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


# The probe is a stand-alone script (CI runs it too, before rapid is installed), run in a
# fresh interpreter: the daemon has threads, so it does not fork itself.
_PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "userns_probe.py")


@functools.cache
def available() -> bool:
    """Whether an unprivileged child may take a user namespace that root then maps (tried
    once, for real, in a separate interpreter)."""
    if os.geteuid() != 0:
        return False
    try:
        return subprocess.run([sys.executable, "-I", "-S", _PROBE], timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
