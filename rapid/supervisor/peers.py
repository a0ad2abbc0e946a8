"""Who is on the other end of a loopback connection: the Runtime API's identity check.

Every instance has its own Runtime API port, but any local process could connect to it. So
on each new connection the server asks the kernel which socket the peer holds
(``/proc/net/tcp`` maps the peer's address to its socket inode and owner uid) and whether a
process of the instance holds that socket (its process tree's descriptors, or its cgroup's
processes). A connection from anywhere else is refused. Runtimes keep their connection
alive, so this costs once per connection, not per request.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable


def _hex_address(host: str, port: int) -> str:
    # /proc/net/tcp writes an IPv4 address as the hex of its 32-bit value in host order.
    packed = socket.inet_aton(host)
    return "%08X:%04X" % (struct.unpack("=I", packed)[0], port)


def peer_socket(peer: tuple[str, int], local: tuple[str, int]) -> tuple[int, int] | None:
    """The (inode, uid) of the socket at ``peer`` connected to ``local``, or None."""
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
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return True
            except OSError:
                continue
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
    return holds_socket(tree, inode) or holds_socket([p for p in members if p not in tree], inode)
