"""Isolation of each instance: private /tmp, its own user, rlimits, a memory limit.

What the daemon may do decides the mode, once, at start (``Sandbox.detect``):

- **private /tmp**: with CAP_SYS_ADMIN each runtime starts in its own mount namespace with a
  tmpfs on ``/tmp`` sized to the function's ephemeral storage. A task root, runtime or
  interpreter that lives under the host's ``/tmp`` is bound back into the namespace at the
  same path (read-only for code), so nothing the runtime needs disappears. Without the
  capability: a private directory exported as ``TMPDIR``, removed with the instance, its
  size watched.
- **own user**: as root, each instance runs as its own unprivileged uid/gid from a range,
  so instances cannot read each other's files or signal each other's processes. A function
  whose runtime an unprivileged user cannot execute (Python under ``/root``, say) keeps
  root, with a warning at start: it is better to run than to fail every invoke.
- **freeze**: SIGSTOP/SIGCONT on the process group; or, with ``freeze_with = "cgroup"``, a
  freezer cgroup per instance (v2's ``cgroup.freeze``, or v1's freezer), which the runtime
  cannot observe but which costs 80-150 us more daemon CPU per invoke on a v1 host.
- **memory**: a memory cgroup per instance (v2, or v1 as on some hosts) with the function's
  memory size as its limit; the kernel OOM-kills an instance over it, and the cgroup's peak
  is the REPORT's ``Max Memory Used``. Without cgroups, the host's watchdog samples RSS.
- **rlimits**: 1,024 open files and 1,024 processes, as on Lambda.
- **no privilege, ever**: every runtime starts with ``PR_SET_NO_NEW_PRIVS``, so no setuid or
  file-capability binary (the host's ``su``, a setuid copy in a ZIP) can raise it; one that
  runs under its own uid also has every capability set emptied (bounding, ambient,
  inheritable, permitted, effective). The code folders are mounted ``nosuid,nodev`` and
  read-only in the instance's mount namespace.

What must happen in the child is written down as a plan of plain values (``Sandbox.plan``)
and carried out between fork and exec by ``rapid.supervisor.spawn_sandbox.enter``: in a
child of the spawner (``rapid.supervisor.spawner``), or, where the spawner cannot run, in a
``preexec`` of the daemon. Joining the cgroups happens from a worker thread right after the
spawn (``SandboxSpec.attach``), since on cgroup v1 it costs milliseconds that would
otherwise stall the event loop and every cold start.
"""

from __future__ import annotations

import ctypes
import functools
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rapid.supervisor.cgroups import Cgroups
from rapid.supervisor.needed_paths import needed_paths as _needed_paths
from rapid.supervisor.needed_paths import shebang as _shebang
from rapid.supervisor.needed_paths import under as _under
from rapid.supervisor.spawn_sandbox import CLONE_NEWNS, LAMBDA_RLIMITS, MS_PRIVATE, MS_REC, Plan, enter, join

if TYPE_CHECKING:
    from rapid.config import Config
    from rapid.host.code import Code

_LAMBDA_RLIMITS = LAMBDA_RLIMITS


@dataclass(slots=True)
class SandboxSpec:
    tmpdir: str  # TMPDIR as the runtime sees it
    tmpdir_on_host: str  # a host folder to remove with the instance, or ""
    uid: int | None
    preexec: Callable[[], None] | None
    cgroup: str | None  # the memory cgroup
    freezer: str | None  # the freezer cgroup (the same folder on v2)
    # For the instance's other processes (extensions): given the runtime's pid, a preexec
    # that joins its mount namespace (its /tmp) and drops to the same uid.
    joiner: Callable[[int], Callable[[], None]] | None = None
    # What ``preexec`` does, as plain values: for the spawner (rapid.supervisor.spawner),
    # which carries it out in its own child instead of the daemon's.
    plan: Plan | None = None
    # Makes the cgroup folders if ``prepare(..., deferred=True)`` only named them.
    ensure: Callable[[], None] | None = None

    def attach(self, pid: int) -> None:
        """Move a spawned runtime into its cgroups (made first, if they were deferred).
        Blocking, and slow on cgroup v1 (each write waits for an RCU grace period, some
        5 ms): run it off the event loop, while the runtime starts up. Until it lands, the
        runtime is merely unlimited."""
        if self.ensure is not None:
            try:
                self.ensure()
            except OSError:
                return  # no folder: the runtime runs unlimited, as where cgroups cannot be written
        for folder in dict.fromkeys(f for f in (self.cgroup, self.freezer) if f):
            try:
                with open(os.path.join(folder, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError:
                pass  # it has already exited


class Sandbox:
    def __init__(self, config: Config, tmp_root: str) -> None:
        self.config = config
        self.tmp_root = tmp_root
        self.root = os.geteuid() == 0
        self.namespaces = config.private_tmp != "directory" and _can_unshare()
        if config.private_tmp == "namespace" and not self.namespaces:
            raise RuntimeError("private_tmp = 'namespace' needs CAP_SYS_ADMIN (run as root)")
        self.cgroups = Cgroups(
            memory=config.memory_limit in ("auto", "cgroup"), freezer=config.freeze and config.freeze_with == "cgroup"
        )
        if config.memory_limit == "cgroup" and self.cgroups.memory is None:
            raise RuntimeError("memory_limit = 'cgroup' needs a writable memory cgroup")
        self.drop = self.root and config.drop_privileges == "auto"
        low, _, high = config.user_range.partition("-")
        self._uids = range(int(low), int(high) + 1)
        self._taken: set[int] = set()
        self._runs_as_root: set[str] = set()  # functions whose runtime others cannot execute
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._last_cap = _last_capability()

    def describe(self) -> str:
        tmp = "private tmpfs per instance (mount namespace)" if self.namespaces else "private TMPDIR per instance"
        users = f"uids {self.config.user_range}" if self.drop else "the daemon's user"
        if self.cgroups.memory is not None:
            memory = "cgroup limit"
        else:
            memory = "RSS watchdog" if self.config.memory_limit != "off" else "off"
        if not self.config.freeze:
            freeze = "off"
        else:
            freeze = "cgroup freezer" if self.cgroups.freezer is not None else "SIGSTOP/SIGCONT"
        return f"isolation: /tmp {tmp}; runtimes run as {users}; memory {memory}; idle freeze {freeze}"

    def check_function(self, name: str, code: Code) -> str | None:
        """A warning if this function cannot run as an unprivileged user (it then keeps root)."""
        if not self.drop or code.argv is None:
            return None
        blocked = _blocked_for_others(code, self.namespaces)
        if blocked is None:
            return None
        self._runs_as_root.add(name)
        return f"function {name!r} runs as root: {blocked} is not reachable by unprivileged users"

    # -- per instance ---------------------------------------------------------------------

    def prepare(self, key: str, function: str, code: Code, memory_mb: int, tmp_mb: int,
                deferred: bool = False) -> SandboxSpec:
        """A sandbox for one instance (``key``: its hex id, naming its cgroups and TMPDIR)
        of ``function``, whose code is ``code``; plain values only, never the instance.
        ``deferred``: its cgroup folders are only named, and made by ``attach`` (off the
        event loop) just before the runtime joins them."""
        uid = None
        if self.drop and function not in self._runs_as_root:
            uid = next((u for u in self._uids if u not in self._taken), None)
            if uid is None:
                raise OSError(f"every uid of user_range {self.config.user_range} is taken by a running instance")
            self._taken.add(uid)
        cgroup, freezer = self.cgroups.make(key, memory_mb, now=not deferred)
        tmpdir_on_host = ""
        if self.namespaces:
            tmpdir = "/tmp"
        else:
            tmpdir = tmpdir_on_host = os.path.join(self.tmp_root, key)
            os.mkdir(tmpdir, 0o700)
            if uid is not None:
                os.chown(tmpdir, uid, uid)
        plan = self.plan(code, tmp_mb, uid)
        preexec = functools.partial(enter, plan, self._libc)
        ensure = functools.partial(self.cgroups.ensure, key) if deferred and (cgroup or freezer) else None
        return SandboxSpec(tmpdir, tmpdir_on_host, uid, preexec, cgroup, freezer, self._joiner(uid), plan, ensure)

    def release(self, key: str, uid: int | None) -> None:
        """The instance ``key`` is gone: its uid is free again, its cgroups are removed."""
        if uid is not None:
            self._taken.discard(uid)
        self.cgroups.remove(key)

    def close(self) -> None:
        self.cgroups.close()

    def cgroup_folders(self) -> list[str]:
        return self.cgroups.folders()

    # -- SnapStart (rapid.host.snap_template) -----------------------------------------------

    def template_preexec(self, code: Code, tmp_mb: int) -> Callable[[], None]:
        """For a SnapStart template: its own private /tmp and rlimits, no new privileges,
        but the daemon's uid and capabilities, which it needs to put each fork in its own."""
        return self._preexec(code, tmp_mb, None)

    def fork_spec(self, code: Code, tmp_mb: int, uid: int | None) -> dict[str, object]:
        """What a fork of a SnapStart template does to enter an instance's sandbox, as plain
        values (the template applies them in the child: ``snapstart_template._enter_sandbox``)."""
        return {
            "rlimit": _LAMBDA_RLIMITS, "namespace": self.namespaces, "tmp_mb": tmp_mb, "uid": uid,
            "hidden": [p for p in _needed_paths(code) if _under(p, "/tmp")], "last_cap": self._last_cap,
        }

    def plan(self, code: Code, tmp_mb: int, uid: int | None) -> Plan:
        """What the runtime of an instance of ``code`` does to itself before it execs, as
        plain values (``rapid.supervisor.spawn_sandbox.enter`` carries it out)."""
        # Paths the runtime needs that a tmpfs on /tmp would hide: bound back in, read-only.
        hidden = [p for p in _needed_paths(code) if _under(p, "/tmp")] if self.namespaces else []
        return {
            "rlimit": _LAMBDA_RLIMITS, "namespace": self.namespaces, "tmp_mb": tmp_mb, "hidden": hidden,
            "readonly": [code.task_root, code.runtime_dir], "opt": code.opt or "", "task_root": code.task_root,
            "uid": uid, "last_cap": self._last_cap,
        }

    def _preexec(self, code: Code, tmp_mb: int, uid: int | None) -> Callable[[], None]:
        return functools.partial(enter, self.plan(code, tmp_mb, uid), self._libc)

    def _joiner(self, uid: int | None) -> Callable[[int], Callable[[], None]]:
        """Preexecs for a process that shares a running runtime's sandbox: the same mount
        namespace (entered with setns, so the same private /tmp), rlimits, uid, no privilege."""
        plan = {"rlimit": _LAMBDA_RLIMITS, "namespace": self.namespaces, "uid": uid, "last_cap": self._last_cap}
        libc = self._libc

        def for_runtime(pid: int) -> Callable[[], None]:
            return functools.partial(join, pid, plan, libc)

        return for_runtime

    def __repr__(self) -> str:
        return f"<Sandbox namespaces={self.namespaces} drop={self.drop} {self.cgroups!r}>"


def _last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40  # CAP_CHECKPOINT_RESTORE, the last one as of Linux 5.9


def _blocked_for_others(code: Code, namespaces: bool) -> str | None:
    """The first path an unprivileged user could not reach to run this function, or None."""
    assert code.argv is not None
    exe = os.path.realpath(code.argv[0])
    targets = [(exe, stat.S_IXOTH), (code.task_root, stat.S_IXOTH | stat.S_IROTH)]
    interpreter = _shebang(exe)
    if interpreter:
        targets.append((os.path.realpath(interpreter), stat.S_IXOTH))
    # Scripts named on the command line (a bundled runtime's bootstrap) must be readable.
    targets += [(os.path.realpath(a), stat.S_IROTH) for a in code.argv[1:] if os.path.isabs(a) and os.path.exists(a)]
    for path, need in targets:
        for part in _ancestors(path, namespaces):
            try:
                mode = os.stat(part).st_mode
            except OSError:
                return part
            if part != path and not mode & stat.S_IXOTH:
                return part
        try:
            if os.stat(path).st_mode & need != need:
                return path
        except OSError:
            return path
    return None


def _ancestors(path: str, namespaces: bool) -> list[str]:
    """The folders an unprivileged user must traverse to reach ``path``. Under /tmp in a
    mount namespace the path is bound in with fresh 0755 parents: only it counts."""
    if namespaces and _under(path, "/tmp"):
        return []
    out, cur = [], os.path.dirname(path)
    while True:
        out.append(cur)
        if cur == "/":
            return out
        cur = os.path.dirname(cur)


@functools.cache
def _can_unshare() -> bool:
    """Whether a child may take its own mount namespace and mount a tmpfs (tried for real).

    Tried in a fork of this process that does the three calls and exits: some 1 ms, where a
    fresh interpreter running them took 20-30 ms of every daemon start. The answer cannot
    change while the process lives (its euid and capabilities are the daemon's), so it is
    kept for the next ``Sandbox``."""
    if os.geteuid() != 0:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        pid = os.fork()
    except OSError:
        return False
    if pid == 0:  # the child: three system calls, then gone without running any Python exit path
        code = 1
        try:
            if (libc.unshare(CLONE_NEWNS) == 0
                    and libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0
                    and libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, b"size=1m") == 0):
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0
