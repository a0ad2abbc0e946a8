"""Peak memory of a runtime, read cheaply.

With a memory cgroup, its peak counter (``memory.peak``, or v1's
``memory.max_usage_in_bytes``) covers the whole process tree. Without one, ``VmHWM`` in
``/proc/<pid>/status`` is the kernel's high-water mark of the runtime's resident set. Either
way it is a peak the kernel keeps, read with one ``pread`` on a descriptor opened once at
spawn: no sampling, no recursive process scan (psutil's ``children()`` costs milliseconds).
"""

from __future__ import annotations

import os


class PeakMemory:
    __slots__ = ("_cgroup", "_fd", "peak_kb")

    def __init__(self, pid: int, cgroup: str | None = None) -> None:
        self._cgroup = cgroup is not None
        path = f"/proc/{pid}/status"
        if cgroup is not None:
            v2 = os.path.join(cgroup, "memory.peak")
            path = v2 if os.path.exists(v2) else os.path.join(cgroup, "memory.max_usage_in_bytes")
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY)
        except OSError:
            self._fd = None
        self.peak_kb = 0

    def sample(self) -> int:
        """Read the peak now; returns it in MB (Lambda's MB: MiB), at least 1."""
        if self._fd is not None:
            try:
                data = os.pread(self._fd, 4096, 0)
                if self._cgroup:
                    kb = int(data) // 1024
                else:
                    at = data.find(b"VmHWM:")
                    kb = int(data[at + 6 : data.index(b"kB", at)]) if at >= 0 else 0
                self.peak_kb = max(self.peak_kb, kb)
            except (OSError, ValueError):
                pass
        return max(1, round(self.peak_kb / 1024))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
