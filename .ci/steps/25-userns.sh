#!/usr/bin/env bash
# SnapStart's forks (rapid.supervisor.userns) each take a user namespace as an unprivileged
# process, which the daemon then maps onto the instance's uid; tests/test_snapstart_isolation.py
# needs that for real. Debian kernels gate it behind kernel.unprivileged_userns_clone (on by
# default since Debian 11): turned on here if a machine has it off. Then the whole move is
# probed, and this step fails loudly if the kernel still refuses it.
set -euo pipefail
if [ -e /proc/sys/kernel/unprivileged_userns_clone ] && [ "$(cat /proc/sys/kernel/unprivileged_userns_clone)" = 0 ]; then
  echo 1 > /proc/sys/kernel/unprivileged_userns_clone
fi
if [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 0)" = 0 ]; then
  echo "user.max_user_namespaces is 0: SnapStart forks cannot take a user namespace" >&2
  exit 1
fi
/usr/bin/python3 - <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
ready_r, ready_w = os.pipe()
go_r, go_w = os.pipe()
pid = os.fork()
if pid == 0:
    code = 1
    try:
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
        if libc.unshare(0x10000000 | 0x20000) == 0:
            os.write(ready_w, b"u")
            if os.read(go_r, 1) == b"1":
                os.setgid(65533); os.setuid(65533)
                code = 0 if os.getuid() == 65533 else 1
    finally:
        os._exit(code)
os.close(ready_w)
os.close(go_r)
ok = os.read(ready_r, 1) == b"u"
if ok:
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write("65533 65533 1\n")
    os.write(go_w, b"1")
os.close(go_w)
_, status = os.waitpid(pid, 0)
if not ok or os.waitstatus_to_exitcode(status) != 0:
    sys.exit("CI's machine refuses an unprivileged process a user namespace mapped by root (SnapStart forks need it)")
PY
