#!/usr/bin/env bash
# The isolation tests run for real in CI (tests/capabilities.py fails them, not skips them,
# when CI=true and a capability is missing). Installed here: /usr/bin/python3, an
# interpreter an unprivileged uid can execute (the uid-per-instance, signal-isolation and
# read-only-code tests run their runtime on it), and setpriv (util-linux). Root, mount namespaces and writable
# memory/freezer cgroups come with CI's machine (root on a Debian host); this step checks
# them and fails loudly if one is missing, rather than let the suite find out.
set -euo pipefail
need=()
[ -x /usr/bin/python3 ] || need+=(python3)
command -v setpriv >/dev/null || need+=(util-linux)  # setpriv: a root daemon without CAP_SYS_ADMIN
bash "$(dirname "$0")/../apt-install" "CI" "${need[@]}"
if [ "$(id -u)" != 0 ]; then
  echo "CI runs the isolation tests as root (mount namespaces, uids, cgroups); this is uid $(id -u)" >&2
  exit 1
fi
/usr/bin/python3 - <<'PY'
import ctypes, os, sys
problems = []
if os.fork() == 0:  # a mount namespace and a tmpfs, in a child that then exits
    libc = ctypes.CDLL(None, use_errno=True)
    ok = libc.unshare(0x20000) == 0 and libc.mount(b"none", b"/", None, 16384 | 262144, None) == 0
    ok = ok and libc.mount(b"tmpfs", b"/mnt", b"tmpfs", 0, b"size=1m") == 0
    os._exit(0 if ok else 1)
if os.wait()[1] != 0:
    problems.append("no mount namespace with a tmpfs (CAP_SYS_ADMIN)")
def child_has(folder, name):
    child = os.path.join(folder, f"rapid-ci-probe-{os.getpid()}")
    try:
        os.mkdir(child)
    except OSError:
        return False
    try:
        return os.path.exists(os.path.join(child, name))
    finally:
        os.rmdir(child)
own = {}
for line in open("/proc/self/cgroup").read().splitlines():
    hid, ctrls, path = line.split(":", 2)
    for c in (ctrls.split(",") if ctrls else [""]):
        own[c] = path.lstrip("/")
v2 = os.path.join("/sys/fs/cgroup", own.get("", ""))
for ctrl, v1file, v2file in (("memory", "memory.limit_in_bytes", "memory.max"), ("freezer", "freezer.state", "cgroup.freeze")):
    v1 = os.path.join("/sys/fs/cgroup", ctrl, own.get(ctrl, ""))
    is_v2 = os.path.exists(os.path.join(v2, "cgroup.controllers"))
    if not ((is_v2 and child_has(v2, v2file)) or child_has(v1, v1file)):
        problems.append(f"no writable {ctrl} cgroup")
if problems:
    sys.exit("CI's machine lacks what the isolation tests need: " + "; ".join(problems))
PY
