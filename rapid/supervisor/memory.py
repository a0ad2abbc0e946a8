"""Peak memory of a runtime, read cheaply.

``VmHWM`` in ``/proc/<pid>/status`` is the kernel's high-water mark of the runtime's
resident set. With a memory cgroup, its peak counter (``memory.peak``, or v1's
``memory.max_usage_in_bytes``) also covers the runtime's children; but a runtime joins its
cgroup just after it starts, and what it touched before stays charged elsewhere. So the
peak is the larger of the two. Either is a peak the kernel keeps, read with one ``pread`` on
a descriptor opened once at spawn: no sampling, no recursive process scan (psutil's
``children()`` costs milliseconds).

``/proc/<pid>/status`` is the dear one (the kernel formats some 1.5 KB, about 7 us here),
so with a cgroup it is read only when the high-water mark may have moved: on the first
sample, when the cgroup's peak grew, when the current resident set (``statm``, about 1 us)
passed the mark last read, and every ``REFRESH`` samples. Between those, an invoke that
touched no new memory costs two cheap reads.
"""

from __future__ import annotations

import os


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


REFRESH = 64  # with a cgroup: samples between unconditional reads of VmHWM
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


class PeakMemory:
    __slots__ = ("_cgroup", "_cgroup_kb", "_folder", "_hwm_kb", "_pid", "_skipped", "_statm", "_status", "peak_kb")

    def __init__(self, pid: int, cgroup: str | None = None) -> None:
        self._pid = pid
        self._status = _open(f"/proc/{pid}/status")
        self._statm = None
        self._cgroup = None
        self._folder = cgroup  # until its peak file is open (the folder may be made a moment later)
        self._open_cgroup()
        self.peak_kb = 0
        self._hwm_kb = -1  # VmHWM as last read; -1: never
        self._cgroup_kb = 0
        self._skipped = 0

    def _open_cgroup(self) -> None:
        cgroup = self._folder
        if cgroup is None:
            return
        v2 = os.path.join(cgroup, "memory.peak")
        self._cgroup = _open(v2 if os.path.exists(v2) else os.path.join(cgroup, "memory.max_usage_in_bytes"))
        if self._cgroup is not None:
            self._folder = None
            self._statm = _open(f"/proc/{self._pid}/statm")

    def sample(self) -> int:
        """Read the peak now; returns it in MB (Lambda's MB: MiB), at least 1."""
        if self._folder is not None:
            self._open_cgroup()
        kb = self.peak_kb
        look = True
        if self._cgroup is not None:
            try:
                cgroup_kb = int(os.pread(self._cgroup, 64, 0)) // 1024
            except (OSError, ValueError):
                cgroup_kb = 0
            kb = max(kb, cgroup_kb)
            look = self._hwm_kb < 0 or cgroup_kb > self._cgroup_kb or self._skipped >= REFRESH
            self._cgroup_kb = cgroup_kb
            if not look and self._statm is not None:
                try:
                    look = int(os.pread(self._statm, 128, 0).split()[1]) * _PAGE_KB > self._hwm_kb
                except (OSError, ValueError, IndexError):
                    look = True
        if look and self._status is not None:
            self._skipped = 0
            try:
                data = os.pread(self._status, 4096, 0)
                at = data.find(b"VmHWM:")
                if at >= 0:
                    self._hwm_kb = int(data[at + 6 : data.index(b"kB", at)])
                    kb = max(kb, self._hwm_kb)
            except (OSError, ValueError):
                pass
        else:
            self._skipped += 1
        if kb > self.peak_kb:
            self.peak_kb = kb
        return max(1, round(self.peak_kb / 1024))

    def close(self) -> None:
        for fd in (self._status, self._statm, self._cgroup):
            if fd is not None:
                os.close(fd)
        self._status = self._statm = self._cgroup = self._folder = None

    def __repr__(self) -> str:
        return f"<PeakMemory {self.peak_kb} kB>"
