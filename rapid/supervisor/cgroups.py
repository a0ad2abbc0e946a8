"""A memory cgroup per instance: the limit the kernel enforces, and the peak it measures.

Works with cgroup v2 (``memory.max``, ``memory.peak``) and v1 (``memory.limit_in_bytes``,
``memory.max_usage_in_bytes``), under a folder of the daemon's own
(``<the daemon's memory cgroup>/rapid-<pid>``), removed at exit.
"""

from __future__ import annotations

import os

_V1_ROOT = "/sys/fs/cgroup/memory"
_V2_ROOT = "/sys/fs/cgroup"


class MemoryCgroups:
    def __init__(self, base: str, v2: bool) -> None:
        self.base = base
        self.v2 = v2
        self._limit_file = "memory.max" if v2 else "memory.limit_in_bytes"
        self._peak_file = "memory.peak" if v2 else "memory.max_usage_in_bytes"

    @classmethod
    def create(cls) -> MemoryCgroups | None:
        """A folder for this daemon's instances, or None where cgroups cannot be written."""
        for root, v2 in ((_V2_ROOT, True), (_V1_ROOT, False)):
            own = _own_path(v2)
            if own is None:
                continue
            parent = os.path.join(root, own.lstrip("/"))
            probe = "memory.max" if v2 else "memory.limit_in_bytes"
            if v2 and "memory" not in _read(os.path.join(root, "cgroup.controllers")):
                continue
            base = os.path.join(parent, f"rapid-{os.getpid()}")
            try:
                os.mkdir(base)
                if v2:
                    # A v2 child may use a controller only if its parent enables it.
                    with open(os.path.join(base, "cgroup.subtree_control"), "w") as f:
                        f.write("+memory")
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

    def make(self, name: str, memory_mb: int) -> str:
        path = os.path.join(self.base, name)
        os.mkdir(path)
        limit = str(memory_mb * 1024 * 1024)
        with open(os.path.join(path, self._limit_file), "w") as f:
            f.write(limit)
        if not self.v2:
            # Without this, a v1 group over its limit swaps instead of being killed.
            try:
                with open(os.path.join(path, "memory.memsw.limit_in_bytes"), "w") as f:
                    f.write(limit)
            except OSError:
                pass
        else:
            try:
                with open(os.path.join(path, "memory.swap.max"), "w") as f:
                    f.write("0")
            except OSError:
                pass
        return path

    def peak_bytes(self, path: str) -> int:
        try:
            return int(_read(os.path.join(path, self._peak_file)) or 0)
        except ValueError:
            return 0

    def members(self, path: str) -> list[int]:
        return [int(x) for x in _read(os.path.join(path, "cgroup.procs")).split()]

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
        return f"<MemoryCgroups {'v2' if self.v2 else 'v1'} {self.base}>"


def _own_path(v2: bool) -> str | None:
    for line in _read("/proc/self/cgroup").splitlines():
        hid, controllers, path = line.split(":", 2)
        if v2 and hid == "0" and controllers == "":
            return path
        if not v2 and "memory" in controllers.split(","):
            return path
    return None


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass
