"""The host: every function this daemon serves, and what they share.

It holds the log stream, the guardian, the sandbox, the process backend (what starts
runtimes: real processes, or a test's fake) and the host-wide concurrency: a
function with reserved concurrency owns exactly that many instances; every other function
draws on the unreserved pool (``max_concurrency`` less all reservations, at least 100 of
it, as on AWS). When the pool is full, an idle instance of another function is stopped to
make room before anything is throttled. A sweep, once a second, stops idle instances past
the idle timeout, recycles instances past their lifetime, and (without a memory cgroup)
kills instances over their memory size.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from typing import TYPE_CHECKING, Any, Protocol

from rapid.config import Config, FunctionConfig
from rapid.core.errors import function_not_found, shutting_down
from rapid.core.naming import LATEST, Target, function_arn
from rapid.dashboard.feed import Feed
from rapid.host.code import Code
from rapid.host.function import Function
from rapid.host.gate import Gate
from rapid.logs import LogSink
from rapid.supervisor.backend import ProcessBackend, Processes
from rapid.supervisor.guardian import Guardian
from rapid.supervisor.peers import process_tree
from rapid.supervisor.sandbox import Sandbox

if TYPE_CHECKING:
    from rapid.api.runtime import RuntimeTap

_SWEEP_SECONDS = 1.0


class Catalog(Protocol):
    """Functions the host learns at run time (``rapid.host.deployment.Deployment``)."""

    def knows(self, name: str) -> bool: ...

    def pool(self, target: Target) -> Function: ...


class Host:
    def __init__(self, config: Config, logs: LogSink, processes: ProcessBackend | None = None) -> None:
        self.config = config
        self.logs = logs
        self.feed = Feed()  # the recent past, for the dashboard (bounded)
        self.region = config.region
        self.functions: dict[str, Function] = {}  # the $LATEST pool (or a declared version) of each name
        self.pools: dict[tuple[str, str], Function] = {}  # published versions' pools, made on first use
        self._versions: dict[str, dict[str, Function]] = {}  # the same pools by name, then version
        self.retired: set[Function] = set()  # replaced or deleted pools whose instances still drain
        self.catalog: Catalog | None = None  # functions of the API (rapid.host.deployment)
        self.deployments: Any = None  # gradual deployments (rapid.deployments.service), set by the daemon
        self._reserved: dict[str, int] = {}  # reserved concurrency by function name
        self._reserved_total = 0
        self._unreserved_used = 0  # instances of functions without reserved concurrency
        self.gate = Gate(self)  # admission: one rule for sync, async and event-source work (rapid.host.gate)
        self.stopping = False
        # Private TMPDIRs (when there is no mount namespace) live here, created 0700.
        self.tmp_root = tempfile.mkdtemp(prefix="rapid-tmp-")
        os.chmod(self.tmp_root, 0o711)  # instances under their own uid reach their own folder
        self.sandbox = Sandbox(config, self.tmp_root)
        self.guardian = Guardian()
        for folder in self.sandbox.cgroup_folders():
            self.guardian.cgroup_folder(folder)
        self.guardian.scratch_folder(self.tmp_root)
        # What starts runtimes: real processes, or a test's fake backend.
        self.processes: ProcessBackend = processes if processes is not None else Processes(
            self.guardian, namespaces=self.sandbox.namespaces)
        self.max_concurrency = config.max_concurrency
        self._sweeper: asyncio.Task[None] | None = None
        # Sees every Runtime API request when set (rapid check / bench); None in the daemon.
        self.runtime_tap: RuntimeTap | None = None
        self.log_store: Any = None  # rapid.logs.store.LogStore: function logs kept in the data dir

    def add(self, name: str, config: FunctionConfig, code: Code, *, tagged: bool) -> Function:
        fn = Function(self, name, config, code, tagged=tagged)
        self.functions[name] = fn
        if fn.reserved is not None:
            self._reserved[name] = fn.reserved
            self._reserved_total += fn.reserved
        return fn

    # -- live changes (the API's functions) -----------------------------------------------

    def replace(self, name: str, config: FunctionConfig, code: Code, *, tagged: bool = True) -> Function:
        """A new ``$LATEST`` pool for ``name``; the old one retires (in-flight invocations
        finish on their instances, queued ones move to the new pool)."""
        new = Function(self, name, config, code, tagged=tagged)
        old = self.functions.get(name)
        self.functions[name] = new
        if old is not None:
            self._retire(old, new)
        self.set_reserved(name, new.reserved)
        return new

    def add_version(self, name: str, config: FunctionConfig, code: Code, *, tagged: bool = True) -> Function:
        fn = Function(self, name, config, code, tagged=tagged)
        fn.reserved = self.functions[name].reserved if name in self.functions else None
        self.pools[(name, fn.version)] = fn
        self._versions.setdefault(name, {})[fn.version] = fn
        return fn

    def remove(self, name: str, version: str | None = None) -> None:
        """Remove one published version's pool, or (``version`` None) every pool of the
        function: queued invocations fail with 404, running ones finish."""
        error = function_not_found(function_arn(self.region, self.config.account_id, name, version))
        if version is not None:
            pool = self.pools.pop((name, version), None)
            self._versions.get(name, {}).pop(version, None)
            if pool is not None:
                self._retire(pool, None, error)
            return
        self.set_reserved(name, None)
        for version in self._versions.pop(name, {}):
            self._retire(self.pools.pop((name, version)), None, error)
        fn = self.functions.pop(name, None)
        if fn is not None:
            self._retire(fn, None, error)

    def _retire(self, fn: Function, successor: Function | None, error: Any = None) -> None:
        self.retired.add(fn)
        fn.retire(successor, error)

    def drained(self, fn: Function) -> None:
        self.retired.discard(fn)

    def pools_of(self, name: str) -> list[Function]:
        out = list(self._versions.get(name, {}).values())
        if name in self.functions:
            out.append(self.functions[name])
        return out

    def set_reserved(self, name: str, reserved: int | None) -> None:
        """Reserved concurrency of a function: shared by all its pools, counted host-wide."""
        self._reserved_total -= self._reserved.pop(name, 0)
        if reserved is not None:
            self._reserved[name] = reserved
            self._reserved_total += reserved
        for fn in self.pools_of(name) + [f for f in self.retired if f.name == name]:
            if (fn.reserved is None) != (reserved is None):
                self._unreserved_used += len(fn.instances) * (1 if reserved is None else -1)
            fn.reserved = reserved
        self.gate.changed(name)

    def sibling_instances(self, fn: Function) -> int:
        """Instances of the other pools of ``fn``'s function (reserved concurrency is shared)."""
        if fn.name not in self._versions and not self.retired:
            return 0
        return sum(len(p.instances) for p in self.pools_of(fn.name) + list(self.retired)
                   if p is not fn and p.name == fn.name)

    def instance_joined(self, fn: Function, inst: object) -> None:
        if fn.reserved is None:
            self._unreserved_used += 1

    def instance_left(self, fn: Function, inst: object) -> None:
        if fn.reserved is None:
            self._unreserved_used -= 1

    def all_pools(self) -> list[Function]:
        return [*self.functions.values(), *self.pools.values(), *self.retired]

    def start(self) -> None:
        """Start provisioned instances and the sweep; call once the functions are added."""
        for fn in self.functions.values():
            fn.start_provisioned()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def resolve(self, target: Target) -> Function:
        """The pool an invocation of ``target`` runs on (an alias picks by weight)."""
        if self.catalog is not None and self.catalog.knows(target.name):
            return self.catalog.pool(target)
        fn = self.functions.get(target.name)
        if fn is None and target.name == "function" and self.config.dropin_function:
            # Drop-in mode answers at `function` whatever its real name, as the RIE does.
            fn = self.functions.get(self.config.dropin_function)
        if fn is None or (target.qualifier not in (None, LATEST, fn.version)):
            raise function_not_found(
                function_arn(self.region, self.config.account_id, target.name, target.qualifier)
            )
        return fn

    @property
    def started(self) -> bool:
        """Whether ``start`` ran (new pools then start their provisioned instances at once)."""
        return self._sweeper is not None

    # -- host-wide concurrency ------------------------------------------------------------

    @property
    def unreserved_total(self) -> int:
        return self.max_concurrency - self._reserved_total

    @property
    def reserved_total(self) -> int:
        return self._reserved_total

    def unreserved_room(self) -> int:
        """Kept as running counts: no per-invoke work grows with the number of functions."""
        return max(0, self.unreserved_total - self._unreserved_used)

    def reclaim_idle(self, for_function: Function) -> bool:
        """Stop one idle on-demand instance of another unreserved function; True if one was."""
        for fn in self.all_pools():
            if fn is not for_function and fn.reserved is None and fn.stop_one_idle():
                return True
        return False

    # -- upkeep ---------------------------------------------------------------------------

    async def _sweep(self) -> None:
        cfg = self.config
        watchdog = self.sandbox.cgroups.memory is None and cfg.memory_limit in ("auto", "watchdog")
        rounds = 0
        while not self.stopping:
            await asyncio.sleep(_SWEEP_SECONDS if not watchdog else 0.25)
            now = time.monotonic()
            rounds += 1
            for fn in self.all_pools():
                fn.sweep(now, cfg.idle_timeout, cfg.max_lifetime)
                if watchdog:
                    _watch_memory(fn)
                if not self.sandbox.namespaces and rounds % 40 == 0:
                    _watch_tmpdirs(fn)

    # -- shutdown -------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop taking work, let running invocations finish (up to the shutdown timeout),
        then SIGTERM every runtime, SIGKILL what is left after a grace period."""
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for fn in self.all_pools():
            fn.refuse_queued(shutting_down())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_timeout
        while loop.time() < deadline and any(fn.running for fn in self.all_pools()):
            await asyncio.sleep(0.02)
        instances = [i for fn in self.all_pools() for i in fn.instances.values()]
        for inst in instances:
            inst.terminate()
        deadline = loop.time() + 2.0
        while loop.time() < deadline and any(i.alive for i in instances):
            await asyncio.sleep(0.02)
        for inst in instances:
            inst.kill()
        deadline = loop.time() + 2.0
        while loop.time() < deadline and any(i.alive for i in instances):
            await asyncio.sleep(0.02)
        for fn in self.all_pools():  # SnapStart templates, once their forks are gone
            if fn.snap is not None:
                fn.snap.close()
        self.close()

    def close(self) -> None:
        """Give back what the host holds: the guardian (which kills any runtime left), the
        cgroups, the TMPDIR folder. Safe to call twice, and on a host that never started.
        Both helper processes are told first and waited for after, so their exits (some
        20 ms each) overlap instead of adding up on every daemon's shutdown."""
        processes = self.processes if isinstance(self.processes, Processes) else None  # not a test's fake
        self.guardian.end()
        if processes is not None:
            processes.end()  # the spawner (rapid.supervisor.spawner)
        self.guardian.close()
        if processes is not None:
            processes.close()
        self.sandbox.close()
        shutil.rmtree(self.tmp_root, ignore_errors=True)
        self.logs.flush()

    def __repr__(self) -> str:
        return (
            f"<Host functions={len(self.functions)} versions={len(self.pools)} retired={len(self.retired)} "
            f"unreserved={self._unreserved_used}/{self.unreserved_total} stopping={self.stopping}>"
        )


def _watch_memory(fn: Function) -> None:
    """Without a cgroup: kill an instance whose process tree's RSS passed its memory size."""
    limit_kb = fn.memory * 1024
    for inst in list(fn.instances.values()):
        process = inst.process
        if process is None or not process.alive:
            continue
        total = 0
        for pid in process_tree(process.pid):
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
            except (OSError, ValueError, IndexError):
                continue
        if total > limit_kb:
            process.kill()  # the invoker sees Runtime.ExitError "signal: killed"


def _watch_tmpdirs(fn: Function) -> None:
    """Without a sized tmpfs: say when an instance's private TMPDIR passes its ephemeral
    storage (on Lambda, writes past it fail with ENOSPC; here they cannot be stopped)."""
    limit = fn.config.ephemeral_storage * 1024 * 1024
    for inst in fn.instances.values():
        if not inst.tmpdir or inst.tmp_warned:
            continue
        used = 0
        for folder, _dirs, files in os.walk(inst.tmpdir):
            for name in files:
                try:
                    used += os.lstat(os.path.join(folder, name)).st_blocks * 512
                except OSError:
                    continue
        if used > limit:
            inst.tmp_warned = True
            fn.log_line(
                f"WARNING: instance {inst.hex} has {used // 1048576} MB in its TMPDIR, over its "
                f"ephemeral storage of {fn.config.ephemeral_storage} MB"
            )
