"""A function: its settings, its queue of invocations and its pool of instances.

The function owns the FIFO queue and the instances; which instance gets which invocation,
when to start one and when to throttle is decided by ``rapid.core.scheduler.plan`` and
merely carried out here. Its instance limit comes from the host: the reserved concurrency
if the function has one, else what the host's unreserved pool has left.

Provisioned instances are started with the host, kept warm, never stopped for idleness and
replaced when they die; traffic beyond them spills onto on-demand instances.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from typing import TYPE_CHECKING

from rapid.core import scheduler
from rapid.core.errors import ServiceError, throttled
from rapid.core.invocation import Invocation, InvocationEvent, Outcome
from rapid.core.naming import LATEST, function_arn, log_stream_name
from rapid.host.code import Code
from rapid.host.function_logs import FunctionLogs
from rapid.host.instance import Instance
from rapid.host.snap_template import SnapTemplate

if TYPE_CHECKING:
    from rapid.config import FunctionConfig
    from rapid.host.host import Host

# Kept from the daemon's environment for every runtime: what a process needs to run at all,
# and the credentials a role would give it on Lambda.
# How long an instance that just answered counts as about to take more work, before the
# pool starts another for the waiting queue.
FINISHING_GRACE = 0.05
# Provisioned instances whose init fails this many times in a row are not started again
# (the provisioned concurrency config is FAILED), rather than in a loop.
PROVISIONED_TRIES = 3

_PASSED_THROUGH = ("PATH", "HOME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class Function(FunctionLogs):
    def __init__(self, host: Host, name: str, config: FunctionConfig, code: Code, *, tagged: bool) -> None:
        self.host = host
        self.name = name
        self.config = config
        self.code = code
        self.version = config.version or LATEST
        self.memory = config.memory
        self.timeout = float(config.timeout)
        self.per_instance = config.per_instance_concurrency
        self.reserved = config.reserved_concurrency
        self.provisioned = config.provisioned_concurrency
        self.arn = function_arn(host.config.region, host.config.account_id, name)
        self.json_logs = host.config.log_format == "json"
        self.queue: deque[Invocation] = deque()
        self.instances: dict[int, Instance] = {}
        self.idle: list[Instance] = []  # one entry per held /next, least recently used first
        self.resets = 0
        self._next_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._regrace: asyncio.TimerHandle | None = None
        self.last_answered: Instance | None = None  # the instance that finished an invocation last
        self.provisioned_failures = 0  # provisioned inits failed in a row: past PROVISIONED_TRIES, no more
        self.provisioned_error: str | None = None
        self.retired = False  # replaced or deleted: takes no new work, its instances drain
        self._prefix = f"[{name}] " if tagged else ""
        self._static_env = self._build_static_env()
        # SnapStart: instances are forked from one initialised template (rapid.host.snap_template).
        self.snap = SnapTemplate(self) if config.snap_start and config.runtime == "python" else None

    # -- environment ----------------------------------------------------------------------

    def _build_static_env(self) -> dict[str, str]:
        cfg, host = self.config, self.host
        code = self.code
        if cfg.inherit_environment:
            env = dict(os.environ)
        else:
            env = {k: os.environ[k] for k in _PASSED_THROUGH if k in os.environ}
        path = env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        opt = layer_root(code, host.sandbox.namespaces)
        libs = [code.runtime_dir, f"{code.runtime_dir}/lib", code.task_root, f"{code.task_root}/lib", f"{opt}/lib"]
        if env.get("LD_LIBRARY_PATH"):
            libs.insert(0, env["LD_LIBRARY_PATH"])
        env.update(TZ=":UTC", LANG="en_US.UTF-8", PATH=f"{path}:{opt}/bin", LD_LIBRARY_PATH=":".join(libs))
        if code.opt:
            env.update(layer_paths(code.opt, opt))
        env.update(cfg.environment)  # the function's own variables may override the above
        env.update(
            _HANDLER=cfg.handler,
            LAMBDA_TASK_ROOT=code.task_root,
            LAMBDA_RUNTIME_DIR=code.runtime_dir,
            AWS_LAMBDA_FUNCTION_NAME=self.name,
            AWS_LAMBDA_FUNCTION_VERSION=self.version,
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(self.memory),
            AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{self.name}",
            AWS_REGION=host.region,
            AWS_DEFAULT_REGION=host.region,
        )
        if self.per_instance > 1:
            env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(self.per_instance)
        if self.json_logs:
            env.setdefault("AWS_LAMBDA_LOG_FORMAT", "JSON")
        return env

    def environment(self, instance: Instance, tmpdir: str) -> dict[str, str]:
        env = dict(self._static_env)
        env["AWS_LAMBDA_RUNTIME_API"] = instance.address
        env["AWS_LAMBDA_LOG_STREAM_NAME"] = log_stream_name(instance.hex, self.version)
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = self.init_type(instance)
        env["TMPDIR"] = tmpdir
        if instance.snapped:  # as Lambda: no log variables
            env.pop("AWS_LAMBDA_LOG_GROUP_NAME", None)
            env.pop("AWS_LAMBDA_LOG_STREAM_NAME", None)
        return env

    def init_type(self, instance: Instance) -> str:
        if instance.provisioned:
            return "provisioned-concurrency"
        return "snap-start" if instance.snapped else "on-demand"

    def template_environment(self) -> dict[str, str]:
        """A SnapStart template's environment: no instance yet, so no Runtime API, no log
        stream (Lambda gives SnapStart functions neither log variable)."""
        env = dict(self._static_env)
        env.pop("AWS_LAMBDA_LOG_GROUP_NAME", None)
        env["AWS_LAMBDA_RUNTIME_API"] = ""
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
        env["TMPDIR"] = "/tmp"
        return env

    # -- scheduling -----------------------------------------------------------------------

    def submit(self, inv: Invocation) -> None:
        """Queue ``inv``; it is dispatched, starts an instance, or is throttled (settled
        with a 429 ``service_error``) at once."""
        if not self.host.gate.enter(self, inv):  # admission (rapid.host.gate): throttled, settled
            return
        self.queue.append(inv)
        self._schedule()

    def take(self) -> Invocation | None:
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
        while instance in self.idle:
            self.idle.remove(instance)
        if reset:
            self.resets += 1
        self.host.instance_left(self, instance)
        if self.retired:
            if not self.instances:
                self.host.drained(self)
                if self.snap is not None:
                    self.snap.close()
            return
        if instance.provisioned and not instance.initialized:
            self.provisioned_failures += 1
        if instance.provisioned and not self.host.stopping:
            if self.provisioned_failures < PROVISIONED_TRIES:
                self._start(None, provisioned=True)  # Lambda keeps the provisioned count
            elif self.provisioned_failures == PROVISIONED_TRIES:
                self.log_line(f"provisioned concurrency FAILED after {PROVISIONED_TRIES} failed inits in a row "
                              f"({self.provisioned_error}); on-demand instances serve the invokes")
        self._schedule()

    @property
    def limit(self) -> int:
        """The most instances this function may run now."""
        k = self.per_instance
        if self.reserved is not None:
            # ceil: reserved counts invocations; shared by every version of the function
            return max(0, -(-self.reserved // k) - self.host.sibling_instances(self))
        return len(self.instances) + self.host.unreserved_room()

    def _view(self) -> scheduler.PoolView:
        starting = busy = finishing = 0
        idle_ids = {inst.id for inst in self.idle}
        now = time.monotonic()
        for inst in self.instances.values():
            if inst.id in idle_ids:
                continue
            if inst.starting and inst.bound is None:
                starting += 1
            elif not inst.running and not inst.retiring and now - inst.answered_at < FINISHING_GRACE:
                finishing += 1
            else:
                busy += 1
        if finishing and self._regrace is None:
            # If they do not come back in time, plan again without counting on them.
            self._regrace = asyncio.get_running_loop().call_later(FINISHING_GRACE, self._regraced)
        return scheduler.PoolView(
            idle=[inst.id for inst in self.idle],
            starting=starting,
            busy=busy,
            finishing=finishing,
            queued=len(self.queue),
            limit=self.limit,
            resets=self.resets,
            per_instance=self.per_instance,
            throttle=self.host.config.overflow == "throttle",
        )

    def _schedule(self) -> None:
        if not self.queue or self.host.stopping:
            return
        if self.retired:  # a late arrival (an async attempt that picked this pool)
            successor = self.host.functions.get(self.name)
            if successor is not None and successor is not self and not successor.retired:
                queued, self.queue = self.queue, deque()
                for inv in queued:
                    successor.submit(inv)
                return
        idle, queue = self.idle, self.queue
        if len(queue) <= len(idle):
            # Rule 1 of ``scheduler.plan`` and all it decides when every queued invocation
            # has an idle slot: the oldest to the most recently used. Done without building
            # the pool's view, so an invoke costs the same with 1 or 1,000 instances.
            while queue:
                idle.pop().deliver(queue.popleft())
            return
        if not idle and len(queue) <= self.per_instance and self._finishing(self.last_answered):
            # Rule 2 of ``scheduler.plan`` when an instance that just answered will take the
            # queue head at its next /next (a sequential caller's next invoke, which often
            # beats the runtime back): nothing starts, nothing is throttled. Only the
            # re-plan for an instance that does not come back is armed, as ``_view`` does.
            if self._regrace is None:
                self._regrace = asyncio.get_running_loop().call_later(FINISHING_GRACE, self._regraced)
            return
        if not idle and self.host.config.overflow != "throttle" and self.limit <= len(self.instances):
            # And all it decides with no idle slot, no room to start one and nothing to
            # throttle (the queue waits): nothing. A pool at its limit under a queueing load
            # meets this on every submit; the view is not built for it.
            return
        actions = scheduler.plan(self._view())
        if any(isinstance(a, scheduler.Throttle) for a in actions) and self.reserved is None:
            # Before refusing work, take room back from other functions' idle instances.
            if self.host.reclaim_idle(for_function=self):
                actions = scheduler.plan(self._view())
        for action in actions:
            if isinstance(action, scheduler.Dispatch):
                inst = self.instances[action.instance]
                _remove_last(self.idle, inst)
                inst.deliver(self.queue.popleft())
            elif isinstance(action, scheduler.Start):
                bound = None
                if action.suppressed:
                    self.resets -= 1
                    bound = self.queue.popleft()
                self._start(bound)
            else:
                self._throttle(action.count)

    def _finishing(self, inst: Instance | None) -> bool:
        """Whether ``inst`` counts as *finishing* in ``_view`` (answered just now, expected
        back at /next)."""
        return (inst is not None and not inst.running and not inst.dead and not inst.retiring
                and not inst.starting and inst.id in self.instances
                and time.monotonic() - inst.answered_at < FINISHING_GRACE)

    def _regraced(self) -> None:
        self._regrace = None
        self._schedule()

    def _throttle(self, count: int) -> None:
        reason = (
            "ReservedFunctionConcurrentInvocationLimitExceeded"
            if self.reserved is not None
            else "ConcurrentInvocationLimitExceeded"
        )
        error = throttled(reason)
        refused = [self.queue.pop() for _ in range(min(count, len(self.queue)))]
        self.host.feed.throttle(self.name, len(refused), self.version)
        for inv in reversed(refused):
            inv.settle(InvocationEvent.FAIL, Outcome(b"", status="error", service_error=error))

    def _start(self, bound: Invocation | None, *, provisioned: bool = False) -> None:
        self._next_id += 1
        inst = Instance(self, self._next_id, bound, provisioned=provisioned)
        self.instances[inst.id] = inst
        self.host.instance_joined(self, inst)
        task = asyncio.get_running_loop().create_task(inst.start())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start_provisioned(self) -> None:
        for _ in range(self.provisioned):
            self._start(None, provisioned=True)

    def retire(self, successor: Function | None, error: ServiceError | None = None) -> None:
        """Take no new work: queued invocations move to ``successor`` (or fail with
        ``error``), idle instances stop, busy ones finish their invocation and stop."""
        self.retired = True
        queued, self.queue = self.queue, deque()
        for inv in queued:
            if successor is not None:
                successor.submit(inv)
            else:
                inv.settle(InvocationEvent.FAIL, Outcome(b"", status="error", service_error=error))
        for inst in list(self.instances.values()):
            inst.stop()
        if not self.instances:
            self.host.drained(self)
            if self.snap is not None:
                self.snap.close()

    def set_provisioned(self, count: int) -> None:
        """Keep ``count`` provisioned instances: start the missing ones, stop the extra."""
        self.provisioned = count
        self.provisioned_failures, self.provisioned_error = 0, None
        have = [inst for inst in self.instances.values() if inst.provisioned and not inst.dead]
        for _ in range(count - len(have)):
            self._start(None, provisioned=True)
        for inst in have[count:]:
            inst.provisioned = False
            inst.stop()

    @property
    def provisioned_ready(self) -> int:
        return sum(1 for inst in self.instances.values() if inst.provisioned and inst.initialized and not inst.dead)

    # -- upkeep (called by the host's sweep) ----------------------------------------------

    def sweep(self, now: float, idle_timeout: float, max_lifetime: float) -> None:
        """Stop idle on-demand instances past the idle timeout; recycle instances past
        their lifetime (a busy one finishes its invocation first)."""
        for inst in list(self.instances.values()):
            if inst.dead or inst.starting:
                continue
            old = now - inst.born > max_lifetime
            idle = not inst.running and inst.idle_slots > 0
            if old or idle and not inst.provisioned and now - inst.idle_since > idle_timeout:
                inst.stop()

    def stop_one_idle(self) -> bool:
        """Stop the least recently used idle on-demand instance, to make room elsewhere."""
        for inst in self.idle:
            if not inst.provisioned and not inst.running:
                inst.stop()
                return True
        return False

    # -- shutdown -------------------------------------------------------------------------

    def refuse_queued(self, error: ServiceError) -> None:
        while self.queue:
            inv = self.queue.popleft()
            inv.settle(InvocationEvent.FAIL, Outcome(b"", service_error=error))

    @property
    def running(self) -> int:
        return sum(len(inst.running) + (inst.bound is not None) for inst in self.instances.values())

    def __repr__(self) -> str:
        return (
            f"<Function {self.name} instances={len(self.instances)} idle={len(self.idle)} "
            f"queued={len(self.queue)} resets={self.resets} limit={self.limit}>"
        )


def layer_root(code: Code, namespaces: bool) -> str:
    """Where the runtime finds its layers: ``/opt`` (bound there in a mount namespace, or
    the host's own), else the merged folder itself."""
    return code.opt if code.opt and not namespaces else "/opt"


def layer_paths(merged: str, root: str) -> dict[str, str]:
    """The language paths AWS gives for layers, seen at ``root`` (``/opt`` or the folder)."""
    python = [f"{root}/python"]
    lib = os.path.join(merged, "python", "lib")
    if os.path.isdir(lib):
        python += [f"{root}/python/lib/{d}/site-packages" for d in sorted(os.listdir(lib)) if d.startswith("python3")]
    return {"PYTHONPATH": ":".join(python), "NODE_PATH": f"{root}/nodejs/node_modules"}


def _remove_last(items: list[Instance], inst: Instance) -> None:
    for i in range(len(items) - 1, -1, -1):
        if items[i] is inst:
            del items[i]
            return
