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

from rapid.config import Config, FunctionConfig
from rapid.core.errors import function_not_found, shutting_down
from rapid.core.naming import LATEST, Target, function_arn
from rapid.host.code import Code
from rapid.host.function import Function
from rapid.logs import LogSink
from rapid.supervisor.backend import ProcessBackend, Processes
from rapid.supervisor.guardian import Guardian
from rapid.supervisor.peers import process_tree
from rapid.supervisor.sandbox import Sandbox

_SWEEP_SECONDS = 1.0


class Host:
    def __init__(self, config: Config, logs: LogSink, processes: ProcessBackend | None = None) -> None:
        self.config = config
        self.logs = logs
        self.region = config.region
        self.functions: dict[str, Function] = {}
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
        self.processes: ProcessBackend = processes if processes is not None else Processes(self.guardian)
        self.max_concurrency = config.max_concurrency
        self._sweeper: asyncio.Task[None] | None = None

    def add(self, name: str, config: FunctionConfig, code: Code, *, tagged: bool) -> Function:
        fn = Function(self, name, config, code, tagged=tagged)
        self.functions[name] = fn
        return fn

    def start(self) -> None:
        """Start provisioned instances and the sweep; call once the functions are added."""
        for fn in self.functions.values():
            fn.start_provisioned()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def resolve(self, target: Target) -> Function:
        fn = self.functions.get(target.name)
        if fn is None or (target.qualifier not in (None, LATEST, fn.version)):
            raise function_not_found(
                function_arn(self.region, self.config.account_id, target.name, target.qualifier)
            )
        return fn

    # -- host-wide concurrency ------------------------------------------------------------

    @property
    def unreserved_total(self) -> int:
        reserved = sum(fn.reserved or 0 for fn in self.functions.values())
        return self.max_concurrency - reserved

    def unreserved_room(self) -> int:
        used = sum(len(fn.instances) for fn in self.functions.values() if fn.reserved is None)
        return max(0, self.unreserved_total - used)

    def reclaim_idle(self, for_function: Function) -> bool:
        """Stop one idle on-demand instance of another unreserved function; True if one was."""
        for fn in self.functions.values():
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
            for fn in self.functions.values():
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
        for fn in self.functions.values():
            fn.refuse_queued(shutting_down())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_timeout
        while loop.time() < deadline and any(fn.running for fn in self.functions.values()):
            await asyncio.sleep(0.02)
        instances = [i for fn in self.functions.values() for i in fn.instances.values()]
        for inst in instances:
            inst.terminate()
        deadline = loop.time() + 2.0
        while loop.time() < deadline and any(i.process and i.process.alive for i in instances):
            await asyncio.sleep(0.02)
        for inst in instances:
            inst.kill()
        deadline = loop.time() + 2.0
        while loop.time() < deadline and any(i.process and i.process.alive for i in instances):
            await asyncio.sleep(0.02)
        self.close()

    def close(self) -> None:
        """Give back what the host holds: the guardian (which kills any runtime left), the
        cgroups, the TMPDIR folder. Safe to call twice, and on a host that never started."""
        self.guardian.close()
        self.sandbox.close()
        shutil.rmtree(self.tmp_root, ignore_errors=True)
        self.logs.flush()

    def __repr__(self) -> str:
        return f"<Host functions={sorted(self.functions)} stopping={self.stopping}>"


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
