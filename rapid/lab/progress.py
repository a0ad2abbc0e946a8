"""A plain-text progress bar on stderr, for long measurements (the benchmark harness and
``rapid bench``): redrawn in place on a terminal; off a terminal, one line per step, or
nothing when ``lines_off_tty`` is false (``rapid bench`` keeps a redirected stderr clean)."""

from __future__ import annotations

import sys
import time


class Progress:
    """A plain-text progress bar on stderr."""

    def __init__(self, steps: int, lines_off_tty: bool = True) -> None:
        self.steps = max(1, steps)
        self.done = 0
        self.label = ""
        self.frac = 0.0
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._shown = False
        self.lines = lines_off_tty

    def step(self, label: str) -> None:
        self.label, self.frac = label, 0.0
        if self.tty:
            self.render(force=True)
        elif self.lines:
            print(f"[{self.done + 1}/{self.steps}] {label}  ({self._elapsed()})", file=sys.stderr, flush=True)

    def update(self, frac: float) -> None:
        self.frac = min(1.0, max(0.0, frac))
        if self.tty:
            self.render()

    def finish_step(self) -> None:
        self.done += 1
        self.frac = 0.0
        if self.tty and self.done >= self.steps:
            self.render(force=True)

    def render(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        total = (self.done + self.frac) / self.steps
        width = 30
        filled = int(total * width)
        bar = "#" * filled + "." * (width - filled)
        text = f"[{bar}] {total * 100:3.0f}%  {min(self.done + 1, self.steps)}/{self.steps}  {self.label}"
        sys.stderr.write("\r\033[K" + text[:150] + f"  {self._elapsed()}")
        sys.stderr.flush()
        self._shown = True

    def clear(self) -> None:
        if self.tty and self._shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self.t0)
        return f"{s // 60}:{s % 60:02d}"
