"""A function: its settings, its queue of invocations and its pool of instances.

The function owns the FIFO queue and the instances; which instance gets which invocation,
and when to start one, is decided by ``rapid.core.scheduler.plan`` and merely carried out
here. Versions, aliases and larger pools arrive by giving the host more ``Function`` objects
(one per version) and a larger ``limit``; nothing here assumes one instance.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from typing import TYPE_CHECKING

from rapid.core import scheduler
from rapid.core.errors import ServiceError
from rapid.core.invocation import Invocation, InvocationEvent, Outcome
from rapid.core.naming import LATEST, function_arn, log_stream_name
from rapid.core.runtime_state import RuntimeState
from rapid.host.code import Code
from rapid.host.instance import Instance

if TYPE_CHECKING:
    from rapid.config import FunctionConfig
    from rapid.host.host import Host

# Kept from the daemon's environment for every runtime: what a process needs to run at all,
# and the credentials a role would give it on Lambda.
_PASSED_THROUGH = ("PATH", "HOME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class Function:
    def __init__(self, host: Host, name: str, config: FunctionConfig, code: Code, *, tagged: bool) -> None:
        self.host = host
        self.name = name
        self.config = config
        self.code = code
        self.version = config.version or LATEST
        self.memory = config.memory
        self.timeout = float(config.timeout)
        self.arn = function_arn(host.config.region, host.config.account_id, name)
        self.json_logs = host.config.log_format == "json"
        self.limit = 1 if config.concurrency is None else config.concurrency
        self.queue: deque[Invocation] = deque()
        self.instances: dict[int, Instance] = {}
        self.idle: list[Instance] = []  # least recently used first
        self.resets = 0
        self._next_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._prefix = f"[{name}] " if tagged else ""
        self._static_env = self._build_static_env()

    # -- environment ----------------------------------------------------------------------

    def _build_static_env(self) -> dict[str, str]:
        cfg, host = self.config, self.host.config
        code = self.code
        if cfg.inherit_environment:
            env = dict(os.environ)
        else:
            env = {k: os.environ[k] for k in _PASSED_THROUGH if k in os.environ}
        path = env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        libs = [code.runtime_dir, f"{code.runtime_dir}/lib", code.task_root, f"{code.task_root}/lib", "/opt/lib"]
        if env.get("LD_LIBRARY_PATH"):
            libs.insert(0, env["LD_LIBRARY_PATH"])
        env.update(
            TZ=":UTC",
            LANG="en_US.UTF-8",
            PATH=f"{path}:/opt/bin",
            LD_LIBRARY_PATH=":".join(libs),
        )
        env.update(cfg.environment)  # the function's own variables may override the above
        env.update(
            _HANDLER=cfg.handler,
            LAMBDA_TASK_ROOT=code.task_root,
            LAMBDA_RUNTIME_DIR=code.runtime_dir,
            AWS_LAMBDA_FUNCTION_NAME=self.name,
            AWS_LAMBDA_FUNCTION_VERSION=self.version,
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(self.memory),
            AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{self.name}",
            AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
            AWS_REGION=host.region,
            AWS_DEFAULT_REGION=host.region,
        )
        if self.json_logs:
            env.setdefault("AWS_LAMBDA_LOG_FORMAT", "JSON")
        return env

    def environment(self, instance: Instance) -> dict[str, str]:
        env = dict(self._static_env)
        env["AWS_LAMBDA_RUNTIME_API"] = instance.address
        env["AWS_LAMBDA_LOG_STREAM_NAME"] = log_stream_name(instance.hex, self.version)
        env["TMPDIR"] = instance.tmpdir
        return env

    # -- logs -----------------------------------------------------------------------------

    def log_line(self, text: str) -> None:
        self.host.logs.line(self._prefix + text if self._prefix else text)

    def log_platform(self, inv: Invocation, text: str) -> None:
        self.log_line(text)
        if inv.log_lines is not None:
            inv.log_lines.append(text)

    # -- scheduling -----------------------------------------------------------------------

    def submit(self, inv: Invocation) -> None:
        self.queue.append(inv)
        self._schedule()

    def take(self, instance: Instance) -> Invocation | None:
        """An instance is at ``/next``: the oldest queued invocation, if any. If none, the
        instance parks its ``/next`` and calls ``became_idle``."""
        if self.queue:
            return self.queue.popleft()
        return None

    def became_idle(self, instance: Instance) -> None:
        self.idle.append(instance)

    def not_idle(self, instance: Instance) -> None:
        if instance in self.idle:
            self.idle.remove(instance)

    def instance_gone(self, instance: Instance, reset: bool) -> None:
        self.instances.pop(instance.id, None)
        self.not_idle(instance)
        if reset:
            self.resets += 1
        self._schedule()

    def _view(self) -> scheduler.PoolView:
        starting = busy = 0
        for inst in self.instances.values():
            if inst.idle:
                continue
            if inst.machine.state is RuntimeState.INITIALIZING and inst.bound is None:
                starting += 1
            else:
                busy += 1
        return scheduler.PoolView(
            idle=[inst.id for inst in self.idle],
            starting=starting,
            busy=busy,
            queued=len(self.queue),
            limit=self.limit,
            resets=self.resets,
        )

    def _schedule(self) -> None:
        if not self.queue or self.host.stopping:
            return
        for action in scheduler.plan(self._view()):
            if isinstance(action, scheduler.Dispatch):
                inst = self.instances[action.instance]
                self.idle.remove(inst)
                inst.deliver(self.queue.popleft())
            else:
                bound = None
                if action.suppressed:
                    self.resets -= 1
                    bound = self.queue.popleft()
                self._start(bound)

    def _start(self, bound: Invocation | None) -> None:
        self._next_id += 1
        inst = Instance(self, self._next_id, bound)
        self.instances[inst.id] = inst
        task = asyncio.get_running_loop().create_task(inst.start())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- shutdown -------------------------------------------------------------------------

    def refuse_queued(self, error: ServiceError) -> None:
        while self.queue:
            inv = self.queue.popleft()
            inv.settle(InvocationEvent.FAIL, Outcome(b"", service_error=error))

    @property
    def running(self) -> int:
        return sum(1 for inst in self.instances.values() if inst.current is not None or inst.bound is not None)

    def __repr__(self) -> str:
        return (
            f"<Function {self.name} instances={len(self.instances)} idle={len(self.idle)} "
            f"queued={len(self.queue)} resets={self.resets}>"
        )
