"""Probe: may an unprivileged child take a user namespace that root then maps? Exit 0 if so.

A script, not a module to import: ``rapid.supervisor.userns.available()`` runs it in a fresh
interpreter (the daemon has threads, so it does not fork itself), and CI's
``.ci/steps/25-userns.sh`` runs it with the system's python before rapid is installed. It
uses only the standard library. A child drops to nobody and unshares its user and mount
namespaces; the parent (root) maps it onto another id; the child must then be able to
become that id.
"""

import ctypes
import os
import sys

CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x20000
NOBODY, MAPPED = 65534, 65533


def probe() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0:
                os.write(ready_w, b"u")
                if os.read(go_r, 1) == b"1":
                    os.setgid(MAPPED)
                    os.setuid(MAPPED)
                    code = 0 if os.getuid() == MAPPED else 1
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    ok = False
    try:
        if os.read(ready_r, 1) == b"u":
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(f"{MAPPED} {MAPPED} 1\n")
            os.write(go_w, b"1")
            ok = True
    except OSError:
        pass
    os.close(go_w)
    _, status = os.waitpid(pid, 0)
    return ok and os.waitstatus_to_exitcode(status) == 0


if __name__ == "__main__":
    sys.exit(0 if probe() else 1)
