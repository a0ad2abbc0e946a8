"""The one voice of asynchronous invocation on stderr: ``rapid: async: ...``."""

from __future__ import annotations

import sys


def say(text: str) -> None:
    print(f"rapid: async: {text}", file=sys.stderr, flush=True)
