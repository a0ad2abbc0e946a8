"""The daemon's log stream: one buffered writer, flushed per invocation or within ~2 ms.

Every line (platform lines and the functions' own output) goes through ``LogSink.line``,
which appends to a buffer. A burst of lines costs one ``write`` syscall, and an
invocation's START, END and REPORT lines go out in one write rather than two (a write to a
file or a pipe costs about as much as the rest of a line's bookkeeping). Python's
``logging`` (about 21 us a record) stays off the hot path.

When the buffer is written:

- a line that finds the buffer ``LINGER`` old (by the loop's clock, which costs no call)
  has it written on the next turn of the loop: while lines keep coming, that is the only
  flush, and it costs no timer wake-up;
- a line into an empty buffer makes sure one timer is armed, for when no other line
  follows (the last lines of a burst wait at most ``2 * LINGER``). The timer is lazy, as
  ``rapid.host.deadlines``'s is: a flush does not cancel it, and when it fires with the
  buffer empty it stops, with younger lines it re-arms for the rest of their wait. So an
  invocation's START (into an empty buffer) and its flush at settle cost no timer each:
  one timer serves every invocation of a couple of milliseconds;
- ``EAGER`` lines in the buffer, or ``flush``, write at once: an instance flushes when an
  invocation settles (so its END and REPORT, and the START that waited for them, are on
  stdout before the invoker has its answer: one write per invocation), the host when it
  closes.
"""

from __future__ import annotations

import asyncio
import os
import sys

LINGER = 0.001  # seconds a line may wait for company before it is written
EAGER = 512  # lines buffered: written on the next turn of the loop, however young


class LogSink:
    __slots__ = ("_buf", "_fd", "_loop", "_since", "_soon", "_timer")

    def __init__(self, fd: int | None = None) -> None:
        self._fd = sys.stdout.fileno() if fd is None else fd
        self._buf: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._soon = False
        self._since = 0.0  # the loop's time when the oldest buffered line came
        self._loop: asyncio.AbstractEventLoop | None = None

    def line(self, text: str) -> None:
        buf = self._buf
        buf.append(text)
        loop = self._loop
        if loop is None:
            try:
                loop = self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
        if len(buf) == 1:
            self._since = loop.time()
            if self._timer is None:
                self._timer = loop.call_later(2 * LINGER, self._fire)
        elif not self._soon and (loop.time() - self._since >= LINGER or len(buf) >= EAGER):
            self._soon = True
            loop.call_soon(self.flush)

    def write_lines(self, texts: tuple[str, ...]) -> None:
        """``line`` for each of ``texts`` (an invocation's END and REPORT), in one call. (A
        subclass that overrides ``line`` and keeps the buffer empty gets every text through
        its ``line``.)"""
        buf = self._buf
        if not buf or len(texts) == 1:
            for text in texts:
                self.line(text)
            return
        buf.extend(texts)  # a buffer with lines in it has its flush on the way
        loop = self._loop
        if loop is not None and not self._soon and (loop.time() - self._since >= LINGER or len(buf) >= EAGER):
            self._soon = True
            loop.call_soon(self.flush)

    def _fire(self) -> None:
        """The lazy timer: write what waited its ``2 * LINGER``; re-arm for lines younger
        than that (the buffer was flushed and refilled since it was armed)."""
        self._timer = None
        if not self._buf:
            return
        loop = self._loop
        left = self._since + 2 * LINGER - loop.time() if loop is not None else 0.0
        if left > 0.0:
            self._timer = loop.call_later(left, self._fire)  # type: ignore[union-attr]
            return
        self.flush()

    def flush(self) -> None:
        self._soon = False
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
