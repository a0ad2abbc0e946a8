"""Peak memory of a runtime, read cheaply.

``VmHWM`` in ``/proc/<pid>/status`` is the kernel's own high-water mark of the resident set:
a peak, kept for us, read with one ``pread`` on a descriptor opened once at spawn. No
sampling, no recursive process scan (psutil's ``children()`` costs milliseconds).
"""

from __future__ import annotations

import os


class PeakMemory:
    __slots__ = ("_fd", "peak_kb")

    def __init__(self, pid: int) -> None:
        try:
            self._fd: int | None = os.open(f"/proc/{pid}/status", os.O_RDONLY)
        except OSError:
            self._fd = None
        self.peak_kb = 0

    def sample(self) -> int:
        """Read the peak now; returns it in MB (Lambda's MB: MiB), at least 1."""
        if self._fd is not None:
            try:
                data = os.pread(self._fd, 4096, 0)
                at = data.find(b"VmHWM:")
                if at >= 0:
                    kb = int(data[at + 6 : data.index(b"kB", at)])
                    if kb > self.peak_kb:
                        self.peak_kb = kb
            except (OSError, ValueError):
                pass
        return max(1, round(self.peak_kb / 1024))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
