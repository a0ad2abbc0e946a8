"""``--watch``: notice when a template or the code it names changes.

A ``Snapshot`` is the (path, size, mtime) of every file under the watched paths; the
``Watcher`` takes one every ``interval`` seconds (polling works on every filesystem and in
every container, where inotify may not) and calls ``changed()`` when two differ. A burst
of saves is taken as one change: the watcher waits until a snapshot stays the same for one
interval before it calls back.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable

_SKIP = {".aws-sam", "__pycache__", ".git", "node_modules", ".venv"}
Snapshot = frozenset[tuple[str, int, int]]


def snapshot(paths: Iterable[str]) -> Snapshot:
    out: set[tuple[str, int, int]] = set()
    for top in paths:
        try:
            st = os.stat(top)
        except OSError:
            out.add((top, -1, -1))
            continue
        if not os.path.isdir(top):
            out.add((top, st.st_size, st.st_mtime_ns))
            continue
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d not in _SKIP]
            for name in files:
                path = os.path.join(root, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                out.add((path, st.st_size, st.st_mtime_ns))
    return frozenset(out)


class Watcher:
    def __init__(self, paths: Callable[[], list[str]], changed: Callable[[], Awaitable[None]],
                 interval: float = 0.4) -> None:
        self.paths = paths
        self.changed = changed
        self.interval = interval
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        seen = await loop.run_in_executor(None, snapshot, self.paths())
        while True:
            await asyncio.sleep(self.interval)
            now = await loop.run_in_executor(None, snapshot, self.paths())
            self.rounds += 1
            if now == seen:
                continue
            while True:  # settle: the same twice in a row
                await asyncio.sleep(self.interval)
                again = await loop.run_in_executor(None, snapshot, self.paths())
                if again == now:
                    break
                now = again
            seen = now
            await self.changed()
            seen = await loop.run_in_executor(None, snapshot, self.paths())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def __repr__(self) -> str:
        return f"<Watcher rounds={self.rounds} interval={self.interval}>"
