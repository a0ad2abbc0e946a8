"""A wall clock that can run faster than real time, for what waits minutes (tests).

``ScaledClock(scale)`` reads ``anchor + (real - anchor) / scale``: at scale 1 it is the
wall clock; at 0.01 a minute passes in 0.6 real seconds, counted from the moment the clock
was made. Autoscaling (metric minutes, cooldowns, schedules) and gradual deployments
(canary and linear intervals) read their time from one of these; the pure rules they use
take ``now`` as a number and never read a clock themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class ScaledClock:
    def __init__(self, scale: float = 1.0, real: Callable[[], float] = time.time) -> None:
        if not scale > 0:
            raise ValueError("scale must be positive")
        self.scale = scale
        self._real = real
        self.anchor = real()

    def now(self) -> float:
        """Epoch seconds on this clock."""
        return self.anchor + (self._real() - self.anchor) / self.scale

    def at(self, real: float) -> float:
        """This clock's reading at the real epoch time ``real`` (a record's timestamp)."""
        return self.anchor + (real - self.anchor) / self.scale

    def real_seconds(self, seconds: float) -> float:
        """How long ``seconds`` of this clock take in real time."""
        return seconds * self.scale

    def __repr__(self) -> str:
        return f"<ScaledClock scale={self.scale} ahead={self.now() - self._real():.1f}s>"
