"""The daemon's log stream: one buffered writer, flushed once per event-loop tick.

Every line (platform lines and the functions' own output) goes through ``LogSink.line``,
which appends to a buffer and, the first time in a tick, schedules one flush. A burst of
lines costs one ``write`` syscall, and Python's ``logging`` (about 21 us a record) stays off
the hot path.
"""

from __future__ import annotations

import asyncio
import os
import sys


class LogSink:
    __slots__ = ("_buf", "_fd", "_loop", "_scheduled")

    def __init__(self, fd: int | None = None) -> None:
        self._fd = sys.stdout.fileno() if fd is None else fd
        self._buf: list[str] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def line(self, text: str) -> None:
        self._buf.append(text)
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop
            if loop is None:
                try:
                    loop = self._loop = asyncio.get_running_loop()
                except RuntimeError:
                    self.flush()
                    return
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._buf:
            return
        data = ("\n".join(self._buf) + "\n").encode("utf-8", "replace")
        self._buf.clear()
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                continue
            except OSError:
                return  # nobody reads our stdout any more; losing logs beats crashing
            view = view[n:]

    def __repr__(self) -> str:
        return f"<LogSink fd={self._fd} buffered={len(self._buf)}>"
