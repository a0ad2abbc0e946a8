"""Peak memory of a runtime, read cheaply.

``VmHWM`` in ``/proc/<pid>/status`` is the kernel's high-water mark of the runtime's
resident set. With a memory cgroup, its peak counter (``memory.peak``, or v1's
``memory.max_usage_in_bytes``) also covers the runtime's children; but a runtime joins its
cgroup just after it starts, and what it touched before stays charged elsewhere. So the
peak is the larger of the two. Either is a peak the kernel keeps, read with one ``pread`` on
a descriptor opened once at spawn: no sampling, no recursive process scan (psutil's
``children()`` costs milliseconds).
"""

from __future__ import annotations

import os


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


class PeakMemory:
    __slots__ = ("_status", "_cgroup", "peak_kb")

    def __init__(self, pid: int, cgroup: str | None = None) -> None:
        self._status = _open(f"/proc/{pid}/status")
        self._cgroup = None
        if cgroup is not None:
            v2 = os.path.join(cgroup, "memory.peak")
            self._cgroup = _open(v2 if os.path.exists(v2) else os.path.join(cgroup, "memory.max_usage_in_bytes"))
        self.peak_kb = 0

    def sample(self) -> int:
        """Read the peak now; returns it in MB (Lambda's MB: MiB), at least 1."""
        kb = 0
        if self._status is not None:
            try:
                data = os.pread(self._status, 4096, 0)
                at = data.find(b"VmHWM:")
                if at >= 0:
                    kb = int(data[at + 6 : data.index(b"kB", at)])
            except (OSError, ValueError):
                pass
        if self._cgroup is not None:
            try:
                kb = max(kb, int(os.pread(self._cgroup, 64, 0)) // 1024)
            except (OSError, ValueError):
                pass
        if kb > self.peak_kb:
            self.peak_kb = kb
        return max(1, round(self.peak_kb / 1024))

    def close(self) -> None:
        for fd in (self._status, self._cgroup):
            if fd is not None:
                os.close(fd)
        self._status = self._cgroup = None

    def __repr__(self) -> str:
        return f"<PeakMemory {self.peak_kb} kB>"
