"""A cgroup per instance: the memory limit the kernel enforces, the peak it measures, and
the freezer that stops an idle instance without it noticing.

Works with cgroup v2 (one tree: ``memory.max``, ``memory.peak``, ``cgroup.freeze``) and v1
(a tree per controller: ``memory.limit_in_bytes``, ``memory.max_usage_in_bytes``;
``freezer.state``). Each tree gets a folder of the daemon's own under the daemon's cgroup
(``.../rapid-<pid>``), removed at exit.

An instance's folders can be made later than they are named (``make(..., now=False)``,
then ``ensure`` from the worker thread that moves the runtime in): on cgroup v1 a
``mkdir`` takes the hierarchy's lock, which another instance's join holds through an RCU
grace period (up to ~15 ms, measured), so made on the event loop it stalled every cold
start behind the last one. Until ``ensure`` has run, the instance's runtime is merely not
limited yet, as before its join; its peak (``PeakMemory``) and freezer (``Freezer``) open
their files once they exist.
"""

from __future__ import annotations

import os
import threading

_ROOT = "/sys/fs/cgroup"


class CgroupTree:
    """The daemon's folder in one cgroup hierarchy, and one child folder per instance."""

    def __init__(self, base: str, v2: bool) -> None:
        self.base = base
        self.v2 = v2

    @classmethod
    def create(cls, controller: str, probe: str) -> CgroupTree | None:
        """A folder for this daemon's instances where ``controller`` works (``probe`` is a
        file a child folder must have), or None where cgroups cannot be written."""
        candidates = []
        own2 = _own_path(None)
        if own2 is not None and controller in _read(os.path.join(_ROOT, "cgroup.controllers")).split():
            candidates.append((os.path.join(_ROOT, own2.lstrip("/")), True))
        own1 = _own_path(controller)
        if own1 is not None:
            candidates.append((os.path.join(_ROOT, controller, own1.lstrip("/")), False))
        for parent, v2 in candidates:
            base = os.path.join(parent, f"rapid-{os.getpid()}")
            try:
                if not os.path.isdir(base):
                    os.mkdir(base)
                if v2 and controller != "freezer":  # v2 freezes any group: no controller
                    # A v2 child may use a controller only if its parent enables it.
                    with open(os.path.join(base, "cgroup.subtree_control"), "w") as f:
                        f.write(f"+{controller}")
                test = os.path.join(base, "probe")
                os.mkdir(test)
                ok = os.path.exists(os.path.join(test, probe))
                os.rmdir(test)
            except OSError:
                _rmdir(base)
                continue
            if ok:
                return cls(base, v2)
            _rmdir(base)
        return None

    def make(self, name: str) -> str:
        path = os.path.join(self.base, name)
        os.mkdir(path)
        return path

    def remove(self, name: str) -> None:
        _rmdir(os.path.join(self.base, name))

    def close(self) -> None:
        try:
            for name in os.listdir(self.base):
                full = os.path.join(self.base, name)
                if os.path.isdir(full):
                    _rmdir(full)
        except OSError:
            pass
        _rmdir(self.base)

    def __repr__(self) -> str:
        return f"<CgroupTree {'v2' if self.v2 else 'v1'} {self.base}>"


class Cgroups:
    """Memory and freezer cgroups for instances, as far as this host allows each."""

    def __init__(self, memory: bool, freezer: bool) -> None:
        self._lock = threading.Lock()
        self._maker = threading.Lock()
        self._pending: dict[str, int] = {}  # named, not made yet: memory size in MB
        self._making: set[str] = set()  # being made by ``ensure`` right now
        self._doomed: set[str] = set()  # removed while being made: ``ensure`` removes them after
        self.memory: CgroupTree | None = None
        if memory:
            self.memory = CgroupTree.create("memory", "memory.max") or CgroupTree.create(
                "memory", "memory.limit_in_bytes")
        self.freezer: CgroupTree | None = None
        if freezer:
            if self.memory is not None and self.memory.v2:
                self.freezer = self.memory  # v2: one tree; cgroup.freeze lives beside memory.max
            else:
                self.freezer = CgroupTree.create("freezer", "freezer.state") or CgroupTree.create(
                    "freezer", "cgroup.freeze")

    def make(self, name: str, memory_mb: int, now: bool = True) -> tuple[str | None, str | None]:
        """Folders for a new instance: (memory cgroup, freezer cgroup). ``now=False``: only
        named; ``ensure(name)`` makes them (off the event loop)."""
        mem = os.path.join(self.memory.base, name) if self.memory is not None else None
        frz = None
        if self.freezer is not None:
            frz = mem if self.freezer is self.memory else os.path.join(self.freezer.base, name)
        if now:
            self._create(name, memory_mb)
        elif mem is not None or frz is not None:
            with self._lock:
                self._pending[name] = memory_mb
        return mem, frz

    def ensure(self, name: str) -> None:
        """Make the folders ``make(name, ..., now=False)`` named, if not made yet. Blocking
        (on v1 it may wait behind another join): run it off the loop. Thread-safe."""
        # One maker at a time (the kernel takes them one at a time anyway): a second join of
        # the same instance (an extension's, from another worker) waits here until the
        # folders it joins exist. ``remove`` on the loop never waits for it.
        with self._maker:
            with self._lock:
                memory_mb = self._pending.pop(name, None)
                if memory_mb is None:
                    return
                self._making.add(name)
            try:
                self._create(name, memory_mb)
            finally:
                with self._lock:
                    self._making.discard(name)
                    doomed = name in self._doomed
                    self._doomed.discard(name)
                if doomed:
                    self._remove(name)

    def _create(self, name: str, memory_mb: int) -> None:
        if self.memory is not None:
            mem = self.memory.make(name)
            limit = str(memory_mb * 1024 * 1024)
            if self.memory.v2:
                _write(os.path.join(mem, "memory.max"), limit)
                _write(os.path.join(mem, "memory.swap.max"), "0", quiet=True)
            else:
                _write(os.path.join(mem, "memory.limit_in_bytes"), limit)
                # Without this, a v1 group over its limit swaps instead of being killed.
                _write(os.path.join(mem, "memory.memsw.limit_in_bytes"), limit, quiet=True)
        if self.freezer is not None and self.freezer is not self.memory:
            self.freezer.make(name)

    def remove(self, name: str) -> None:
        with self._lock:
            if self._pending.pop(name, None) is not None:
                return  # never made
            if name in self._making:
                self._doomed.add(name)  # ``ensure`` removes it once made
                return
        self._remove(name)

    def _remove(self, name: str) -> None:
        for tree in self._trees():
            tree.remove(name)

    def close(self) -> None:
        for tree in self._trees():
            tree.close()

    def folders(self) -> list[str]:
        return [tree.base for tree in self._trees()]

    def _trees(self) -> list[CgroupTree]:
        return list({id(t): t for t in (self.memory, self.freezer) if t is not None}.values())


class Freezer:
    """Freeze and thaw one instance's cgroup: one ``pwrite`` each. Its file is opened once
    the folder exists (it may be made just after the runtime starts: ``Cgroups.ensure``);
    before that there is nothing in it to freeze."""

    __slots__ = ("_fd", "_frozen", "_path", "_thawed")

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None
        self._frozen, self._thawed = b"1", b"0"
        self._open()

    def _open(self) -> bool:
        v2 = os.path.join(self._path, "cgroup.freeze")
        try:
            if os.path.exists(v2):
                self._fd = os.open(v2, os.O_WRONLY)
            else:
                self._fd = os.open(os.path.join(self._path, "freezer.state"), os.O_WRONLY)
                self._frozen, self._thawed = b"FROZEN", b"THAWED"
        except OSError:
            return False
        return True

    def freeze(self) -> None:
        if self._fd is not None or self._open():
            os.pwrite(self._fd, self._frozen, 0)  # type: ignore[arg-type]

    def thaw(self) -> None:
        if self._fd is not None or self._open():
            os.pwrite(self._fd, self._thawed, 0)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _own_path(controller: str | None) -> str | None:
    """This process's cgroup: in the v2 tree (controller None) or in a v1 controller's tree."""
    for line in _read("/proc/self/cgroup").splitlines():
        hid, controllers, path = line.split(":", 2)
        if controller is None and hid == "0" and controllers == "":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    return None


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _write(path: str, value: str, quiet: bool = False) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError:
        if not quiet:
            raise


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass
