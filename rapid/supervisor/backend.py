"""The process backend: how an instance gets its runtime started, and what it can do to it.

An instance never starts a process itself. It asks the host's backend to ``spawn`` its
runtime (command, environment, working directory, the sandbox the supervisor prepared) and
gets a ``RuntimeHandle`` back: output arrives line by line through ``on_line``, the end
through ``on_exit`` (once, with the exit status, negative for a signal), and the instance
drives it with ``kill``, ``terminate``, ``freeze`` and ``thaw``.

``Processes`` is the real backend: each runtime is started by the spawner
(``rapid.supervisor.spawner``: a small helper process that forks and enters the sandbox,
so the daemon never forks itself), or, where the spawner cannot run, by the daemon with the
sandbox as a ``preexec`` (``RuntimeProcess``). Either way it is a child in its own session,
registered with the guardian and joined to its cgroups off the event loop.
Tests pass a fake one whose runtimes are coroutines in the test's own process speaking the
Runtime API over loopback (``tests/unit/fake_backend.py``), so the pool and the instance
lifecycle are exercised with no subprocess.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from rapid.supervisor.guardian import Guardian
from rapid.supervisor.process import RuntimeProcess
from rapid.supervisor.sandbox import SandboxSpec
from rapid.supervisor.spawner import SpawnedProcess, Spawner, SpawnerGone


class RuntimeHandle(Protocol):
    """A started runtime, as its instance sees it."""

    pid: int  # the process whose descriptors may hold the runtime's connections

    @property
    def alive(self) -> bool: ...

    def kill(self) -> None:
        """End it at once (its exit still comes through ``on_exit``)."""

    def terminate(self) -> None:
        """Ask it to end (SIGTERM)."""

    def freeze(self) -> None:
        """Stop it between invokes, as Lambda freezes an idle environment."""

    def thaw(self) -> None: ...

    def drain(self) -> None:
        """Deliver through ``on_line`` whatever output it has written so far."""

    def peak_memory_mb(self) -> int: ...

    def members(self) -> list[int]:
        """Its processes, where a cgroup knows them (else empty)."""


class ProcessBackend(Protocol):
    def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        on_line: Callable[[bytes], None],
        on_exit: Callable[[int], None],
        sandbox: SandboxSpec,
    ) -> RuntimeHandle:
        """Start a runtime; raise ``OSError`` (or ``subprocess.SubprocessError``) if it
        cannot be started."""


class Processes:
    """The real backend: one ``SpawnedProcess`` (or ``RuntimeProcess``) per runtime."""

    def __init__(self, guardian: Guardian, spawner: bool = True, namespaces: bool = False) -> None:
        self.guardian = guardian
        # namespaces: whether runtimes get a mount namespace (the spawner readies one ahead)
        self.spawner = Spawner(namespaces=namespaces) if spawner else None
        try:  # the worker thread that joins cgroups, started now rather than on the first cold start
            asyncio.get_running_loop().run_in_executor(None, int)
        except RuntimeError:
            pass  # no loop yet: it starts with the first spawn

    def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        on_line: Callable[[bytes], None],
        on_exit: Callable[[int], None],
        sandbox: SandboxSpec,
    ) -> RuntimeProcess:
        process: RuntimeProcess | None = None
        spawner = self.spawner
        if spawner is not None and spawner.usable and sandbox.plan is not None:
            try:
                process = SpawnedProcess(spawner, argv, env, cwd, on_line, on_exit, self.guardian,
                                         plan=sandbox.plan, cgroup=sandbox.cgroup, freezer=sandbox.freezer)
            except SpawnerGone:
                process = None  # it said why; this runtime and the next start the direct way
        if process is None:
            process = RuntimeProcess(
                argv, env, cwd, on_line, on_exit, self.guardian, preexec=sandbox.preexec, cgroup=sandbox.cgroup,
                freezer=sandbox.freezer,
            )
        if sandbox.cgroup or sandbox.freezer:
            asyncio.get_running_loop().run_in_executor(None, sandbox.attach, process.pid)
        return process

    def end(self) -> None:
        """Tell the spawner to exit, without waiting (``close`` waits)."""
        if self.spawner is not None:
            self.spawner.end()

    def close(self) -> None:
        """Stop the spawner (once the runtimes are gone)."""
        if self.spawner is not None:
            self.spawner.close()

    def __repr__(self) -> str:
        return f"<Processes {self.guardian!r} {self.spawner!r}>"
