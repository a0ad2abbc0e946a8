"""What this machine lets the isolation tests exercise, probed independently of rapid.

The product decides at start-up what it can do (``Sandbox.detect``) and says so on stderr.
A test that skipped whenever that line lacked a phrase would read a broken feature as "the
host cannot", so the probes here ask the kernel directly, without rapid's code:

- ``root``: the test runs as uid 0 (mount namespaces, uids, cgroups all need it).
- ``mount_namespace``: a child may take its own mount namespace and mount a tmpfs.
- ``user_namespace``: an unprivileged process may take a user namespace (SnapStart).
- ``system_python``: ``/usr/bin/python3`` exists (an interpreter an unprivileged uid can
  run; the test venv's may live under a 0700 home).
- ``memory_cgroup`` / ``freezer_cgroup``: this process's own cgroup folder (v2, or the v1
  controller's tree) is writable and offers the controller's files.
- ``curl``, ``node``, ``setpriv`` (util-linux, to run a root daemon without CAP_SYS_ADMIN):
  on PATH.

``need(name)`` is called by a test that needs one: where it is missing, the test skips with
the reason on a developer machine, and FAILS in CI (``CI`` set, as ``.ci/run`` sets it),
because CI is provisioned to have every one of them (``.ci/steps/``). ``exercised(path)``
records an isolation path a test has actually checked; ``conftest.py`` prints the list once
at the end of the run.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
_CGROUP = "/sys/fs/cgroup"

# Isolation paths a test checked for real in this run, and why others were not.
EXERCISED: set[str] = set()
PROBED: set[str] = set()  # capabilities some test asked for
ISOLATION_PATHS = (
    "namespace /tmp",
    "directory TMPDIR",
    "uid drop",
    "cgroup memory",
    "RSS watchdog",
    "cgroup freezer",
    "SIGSTOP freeze",
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _root() -> str | None:
    return None if os.geteuid() == 0 else "not root"


def _mount_namespace() -> str | None:
    if os.geteuid() != 0:
        return "not root (a mount namespace needs CAP_SYS_ADMIN)"
    probe = (
        "import ctypes,sys\n"
        "c=ctypes.CDLL(None,use_errno=True)\n"
        "ok=c.unshare(0x20000)==0 and c.mount(b'none',b'/',None,16384|262144,None)==0"
        " and c.mount(b'tmpfs',b'/mnt',b'tmpfs',0,b'size=1m')==0\n"
        "sys.exit(0 if ok else 1)\n"
    )
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", probe], timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot probe: {exc}"
    return None if done.returncode == 0 else "unshare(CLONE_NEWNS) or a tmpfs mount is refused"


def _user_namespace() -> str | None:
    """An unprivileged process may take a user namespace (SnapStart forks need it)."""
    if os.geteuid() != 0:
        return "not root"
    probe = (
        "import ctypes,os,sys\n"
        "c=ctypes.CDLL(None,use_errno=True)\n"
        "os.setgroups([]);os.setgid(65534);os.setuid(65534)\n"
        "sys.exit(0 if c.unshare(0x10000000|0x20000)==0 else 1)\n"
    )
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", probe], timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot probe: {exc}"
    return None if done.returncode == 0 else "an unprivileged unshare(CLONE_NEWUSER) is refused"


def _system_python() -> str | None:
    return None if os.access(SYSTEM_PYTHON, os.X_OK) else f"no {SYSTEM_PYTHON} (apt-get install python3)"


def own_cgroup(controller: str | None) -> str | None:
    """This process's cgroup folder: in the v2 tree (controller None) or a v1 controller's."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        hid, controllers, path = line.split(":", 2)
        if controller is None and hid == "0" and controllers == "":
            return os.path.join(_CGROUP, path.lstrip("/"))
        if controller is not None and controller in controllers.split(","):
            return os.path.join(_CGROUP, controller, path.lstrip("/"))
    return None


def _child_has(folder: str | None, name: str) -> bool:
    """Whether a child cgroup made under ``folder`` gets file ``name`` (made and removed)."""
    if not folder or not os.path.isdir(folder):
        return False
    child = os.path.join(folder, f"rapid-test-probe-{os.getpid()}")
    try:
        os.mkdir(child)
    except OSError:
        return False
    try:
        return os.path.exists(os.path.join(child, name))
    finally:
        try:
            os.rmdir(child)
        except OSError:
            pass


def _writable_cgroup(v1: str, v1_file: str, v2_file: str) -> str | None:
    if os.geteuid() != 0:
        return "not root"
    v2 = own_cgroup(None)
    if v2 and not os.path.exists(os.path.join(v2, "cgroup.controllers")):
        v2 = None  # not a cgroup v2 folder (a v1 host's /sys/fs/cgroup is a plain tmpfs)
    if _child_has(v2, v2_file) or _child_has(own_cgroup(v1), v1_file):
        return None
    return f"no writable {v1} cgroup (v2 {v2_file} or v1 {v1_file} in a child of this process's cgroup)"


def _memory_cgroup() -> str | None:
    return _writable_cgroup("memory", "memory.limit_in_bytes", "memory.max")


def _freezer_cgroup() -> str | None:
    return _writable_cgroup("freezer", "freezer.state", "cgroup.freeze")


def _on_path(name: str) -> str | None:
    return None if shutil.which(name) else f"{name} is not installed"


_PROBES = {
    "root": _root,
    "mount_namespace": _mount_namespace,
    "system_python": _system_python,
    "user_namespace": _user_namespace,
    "memory_cgroup": _memory_cgroup,
    "freezer_cgroup": _freezer_cgroup,
    "setpriv": lambda: _on_path("setpriv"),  # util-linux: a root daemon without CAP_SYS_ADMIN
    "curl": lambda: _on_path("curl"),
    "node": lambda: _on_path("node"),
}


@functools.cache
def missing(name: str) -> str | None:
    """Why capability ``name`` is missing here, or None if the machine has it."""
    PROBED.add(name)
    return _PROBES[name]()


def has(name: str) -> bool:
    return missing(name) is None


def need(*names: str) -> None:
    """Skip (developer machine) or fail (CI) unless this machine has every capability."""
    for name in names:
        why = missing(name)
        if why is None:
            continue
        text = f"needs {name}: {why}"
        if in_ci():
            pytest.fail(f"CI must provide this capability ({text}); see .ci/steps/", pytrace=False)
        pytest.skip(text)


def exercised(path: str) -> None:
    assert path in ISOLATION_PATHS, path
    EXERCISED.add(path)


def cgroup_of(pid: int, controller: str) -> str | None:
    """The folder of ``pid``'s cgroup that holds ``controller``: its v1 tree's, or the v2
    folder where the v2 tree offers it (or None)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    v2 = None
    for line in lines:
        hid, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return os.path.join(_CGROUP, controller, path.lstrip("/"))
        if hid == "0" and controllers == "":
            v2 = os.path.join(_CGROUP, path.lstrip("/"))
    return v2
