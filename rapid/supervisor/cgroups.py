"""A cgroup per instance: the memory limit the kernel enforces, the peak it measures, and
the freezer that stops an idle instance without it noticing.

Works with cgroup v2 (one tree: ``memory.max``, ``memory.peak``, ``cgroup.freeze``) and v1
(a tree per controller: ``memory.limit_in_bytes``, ``memory.max_usage_in_bytes``;
``freezer.state``). Each tree gets a folder of the daemon's own under the daemon's cgroup
(``.../rapid-<pid>``), removed at exit.
"""

from __future__ import annotations

import os

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

    def make(self, name: str, memory_mb: int) -> tuple[str | None, str | None]:
        """Folders for a new instance: (memory cgroup, freezer cgroup)."""
        mem = frz = None
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
        if self.freezer is not None:
            frz = mem if self.freezer is self.memory else self.freezer.make(name)
        return mem, frz

    def remove(self, name: str) -> None:
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
    """Freeze and thaw one instance's cgroup: one ``pwrite`` each."""

    __slots__ = ("_fd", "_frozen", "_thawed")

    def __init__(self, path: str) -> None:
        v2 = os.path.join(path, "cgroup.freeze")
        if os.path.exists(v2):
            self._fd = os.open(v2, os.O_WRONLY)
            self._frozen, self._thawed = b"1", b"0"
        else:
            self._fd = os.open(os.path.join(path, "freezer.state"), os.O_WRONLY)
            self._frozen, self._thawed = b"FROZEN", b"THAWED"

    def freeze(self) -> None:
        os.pwrite(self._fd, self._frozen, 0)

    def thaw(self) -> None:
        os.pwrite(self._fd, self._thawed, 0)

    def close(self) -> None:
        os.close(self._fd)


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
