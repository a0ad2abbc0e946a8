"""Who is on the other end of a loopback connection: the Runtime API's identity check.

Every instance has its own Runtime API port, but any local process could connect to it. So
on each new connection the server asks the kernel which socket the peer holds (one
``sock_diag`` netlink query for that exact connection gives its socket inode and owner uid;
``/proc/net/tcp``, which lists every TCP socket of the host and costs milliseconds once
there are thousands, only where netlink is not available) and whether a process of the
instance holds that socket (its process tree's descriptors, or its cgroup's
processes). A connection from anywhere else is refused. Runtimes keep their connection
alive, so this costs once per connection, not per request.

Reading another process's descriptors (``/proc/PID/fd``) is a ptrace-class access: the
kernel allows it to a caller with the target's uid and gid, or with CAP_SYS_PTRACE. A
daemon running as root on a host has that capability; root in an unprivileged container
(Docker's and Podman's defaults) does not, so it could not see the sockets of instances
that run under their own uid, and refused every one of them. There the daemon looks with
the instance's uid instead: it switches its own thread's filesystem uid and gid
(``setfsuid``, per thread, for the few reads of the check; CAP_SETUID is in the default
set) and back. The check stays the same: the socket must be held by one of the
instance's processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import struct
from collections.abc import Iterable, Iterator


def _hex_address(host: str, port: int) -> str:
    # /proc/net/tcp writes an IPv4 address as the hex of its 32-bit value in host order.
    packed = socket.inet_aton(host)
    return "%08X:%04X" % (struct.unpack("=I", packed)[0], port)


_SOCK_DIAG_BY_FAMILY = 20
_NETLINK_SOCK_DIAG = 4
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NO_COOKIE = 0xFFFFFFFF
_TCP_STATES = 0xFFF  # any state: the lookup is by the exact four-tuple


def _diag_query(peer: tuple[str, int], local: tuple[str, int]) -> bytes:
    """A SOCK_DIAG_BY_FAMILY request for the one TCP socket at ``peer`` connected to
    ``local`` (struct inet_diag_req_v2 after its nlmsghdr)."""
    sockid = struct.pack(
        "!HH16s16s", peer[1], local[1], socket.inet_aton(peer[0]) + bytes(12), socket.inet_aton(local[0]) + bytes(12)
    ) + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
    body = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, _TCP_STATES) + sockid
    return struct.pack("=IHHII", 16 + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + body


def _diag_socket(peer: tuple[str, int], local: tuple[str, int]) -> tuple[int, int] | None | bool:
    """(inode, uid) through netlink; None if the kernel knows no such socket; False if
    netlink could not be asked."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
            nl.settimeout(1.0)
            nl.send(_diag_query(peer, local))
            reply = nl.recv(8192)
    except OSError:
        return False
    if len(reply) < 20:
        return False
    _length, kind = struct.unpack_from("=IH", reply, 0)
    if kind == _NLMSG_ERROR:
        return None  # e.g. ENOENT: no such connection
    if kind != _SOCK_DIAG_BY_FAMILY or len(reply) < 16 + 72:
        return False
    uid, inode = struct.unpack_from("=II", reply, 16 + 64)
    return inode, uid


def peer_socket(peer: tuple[str, int], local: tuple[str, int]) -> tuple[int, int] | None:
    """The (inode, uid) of the socket at ``peer`` connected to ``local``, or None."""
    found = _diag_socket(peer, local)
    if found is not False:
        return found  # type: ignore[return-value]
    return _scan_proc_net_tcp(peer, local)


def _scan_proc_net_tcp(peer: tuple[str, int], local: tuple[str, int]) -> tuple[int, int] | None:
    want_local, want_remote = _hex_address(*peer), _hex_address(*local)
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1] == want_local and fields[2] == want_remote:
                    return int(fields[9]), int(fields[7])
    except (OSError, StopIteration, IndexError, ValueError):
        pass
    return None


def process_tree(root: int) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo.extend(int(x) for x in f.read().split())
        except OSError:
            continue
    return out


def holds_socket(pids: Iterable[int], inode: int) -> bool:
    """Whether one of ``pids`` has the socket ``inode`` open. Raises PermissionError if
    it found no holder and the descriptors of some process were not readable."""
    target = f"socket:[{inode}]"
    denied = False
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except PermissionError:
            denied = True
            continue
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return True
            except PermissionError:
                denied = True
                break
            except OSError:
                continue
    if denied:
        raise PermissionError(f"cannot read the descriptors of every process holding {target}")
    return False


_libc: ctypes.CDLL | None = None


@contextlib.contextmanager
def filesystem_user(uid: int) -> Iterator[bool]:
    """Switch this thread's filesystem uid and gid to ``uid`` for the block; yields
    whether the switch took (it needs CAP_SETUID and CAP_SETGID)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    libc = _libc
    old_gid = libc.setfsgid(uid)
    old_uid = libc.setfsuid(uid)
    try:
        # setfsuid reports no error: asking with an invalid id (-1) returns the current one.
        yield libc.setfsuid(-1) == uid and libc.setfsgid(-1) == uid
    finally:
        libc.setfsuid(old_uid)
        libc.setfsgid(old_gid)


def _held_by(pids: list[int], inode: int, uid: int | None) -> bool:
    try:
        return holds_socket(pids, inode)
    except PermissionError:
        if uid is None or os.geteuid() != 0:
            return False
    with filesystem_user(uid) as switched:  # no CAP_SYS_PTRACE: look as the instance's user
        if not switched:
            return False
        try:
            return holds_socket(pids, inode)
        except PermissionError:
            return False


def is_peer_of(peer: tuple[str, int], port: int, uid: int | None, root: int, members: list[int]) -> bool:
    """Whether the process at ``peer``, connected to our loopback ``port``, belongs to the
    instance: its socket owned by the instance's uid (when it has its own) and held by one
    of its processes: the tree under its ``root`` pid, or its cgroup's ``members`` (which
    also know children that left the tree; a child forked before the runtime joined its
    cgroup is only in the tree)."""
    found = peer_socket(peer, ("127.0.0.1", port))
    if found is None:
        return False
    inode, owner = found
    if uid is not None and owner != uid:
        return False
    tree = process_tree(root)
    return _held_by(tree, inode, uid) or _held_by([p for p in members if p not in tree], inode, uid)
