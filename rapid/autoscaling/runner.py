"""The autoscaler at work: measure each alias's utilization, let its policies decide, fire
scheduled actions, keep every target within its bounds, change provisioned concurrency.

Theory of operation
-------------------
A task wakes a dozen times per metric minute of the autoscaler's clock (at most once a
second). Each wake:

1. **Measure.** For every function qualifier with provisioned concurrency, the pool of the
   version it names is read: invocations running on its ready provisioned instances, and
   how many are ready. The sample goes to that qualifier's ``Meter``; a minute that closes
   is one datapoint (``rapid.autoscaling.tracking``).
2. **Decide.** Each datapoint of a registered target goes to each of its policies'
   ``Tracker``; the largest scale-out any policy asks for wins, and a scale-in happens
   only when no policy asks for more.
3. **Schedule.** Scheduled actions whose time came set their target's Min and Max.
4. **Bound.** A target whose provisioned concurrency lies outside its Min and Max is moved
   inside them (this is also how a freshly registered target reaches its Min).

A change goes through the registry (``Registry.set_provisioned``), exactly as
PutProvisionedConcurrencyConfig does after the same checks, so the host starts or stops
provisioned instances and ``GetProvisionedConcurrencyConfig`` shows it. Every change, and
every one refused, is recorded as a scaling activity with AWS's wording.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from rapid.autoscaling.model import DIMENSION
from rapid.autoscaling.scheduled import next_run
from rapid.autoscaling.service import AutoScaling, parse_resource
from rapid.autoscaling.tracking import MINUTE, Decision, Meter, Tracker, bounded, utilization
from rapid.core.errors import ServiceError
from rapid.core.scaled_clock import ScaledClock
from rapid.host.host import Host

Check = Callable[[str, str, int], None]  # raises ServiceError when the count is refused


class Autoscaler:
    def __init__(self, service: AutoScaling, host: Host, clock: ScaledClock, check: Check,
                 say: Callable[[str], None] | None = None) -> None:
        self.service = service
        self.say = say or host.logs.line
        self.host = host
        self.registry = service.registry
        self.clock = clock
        self.check = check
        self.meters: dict[tuple[str, str], Meter] = {}
        self.trackers: dict[tuple[str, str], Tracker] = {}  # (resource id, policy name)
        self.next_runs: dict[tuple[str, str], float | None] = {}  # (resource id, action name)
        self._refused: dict[str, tuple[int, float]] = {}  # a refused count is not retried for a minute
        self._task: asyncio.Task[None] | None = None
        service.changed.append(self._changed)
        # In a cluster (rapid.cluster.control_owner): only the node holding the control lease
        # acts, and a version's figures are the sum over every node's part.
        self.active: Callable[[], bool] = lambda: True
        self.figures: Callable[[str, str], tuple[int, int]] = self._local_figures
        self.rounds = 0  # rounds this node acted in

    @property
    def interval(self) -> float:
        return min(1.0, self.clock.real_seconds(MINUTE) / 12)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while not self.host.stopping:
            await asyncio.sleep(self.interval)
            try:
                self.tick(self.clock.now())
            except Exception as exc:  # noqa: BLE001 - one bad round must not stop autoscaling
                self.say(f"autoscaling: {type(exc).__name__}: {exc}")

    def _changed(self, resource_id: str) -> None:
        """A target, policy or action changed: forget its trackers and schedule times."""
        for k in [k for k in self.next_runs if k[0] == resource_id]:
            del self.next_runs[k]
        live = self.service.policies.get(resource_id, {})
        for k in [k for k in self.trackers if k[0] == resource_id and k[1] not in live]:
            del self.trackers[k]

    # -- one round ------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        if not self.active():
            return
        self.rounds += 1
        svc = self.service
        for (name, qualifier), (in_flight, ready) in self.measure().items():
            meter = self.meters.setdefault((name, qualifier), Meter())
            for point in meter.sample(now, utilization(in_flight, ready)):
                resource = f"function:{name}:{qualifier}"
                if resource in svc.targets and self._exists(resource):
                    self._evaluate(resource, point, now)
        for resource in list(svc.targets):
            if not self._exists(resource):
                continue  # its function or alias was deleted: the target waits, as on AWS
            self._schedule(resource, now)
            self._bound(resource)
        for k in [k for k in self.meters if not self._provisioned(*k)]:
            del self.meters[k]

    def measure(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(in-flight on ready provisioned instances, ready provisioned capacity) per
        function qualifier that has provisioned concurrency, and per registered target."""
        out: dict[tuple[str, str], tuple[int, int]] = {}
        reg = self.registry
        wanted = {(n, q) for n, fs in reg.settings.items() for q in fs.provisioned}
        for resource in self.service.targets:
            try:
                wanted.add(parse_resource(resource))
            except Exception:  # noqa: BLE001 - stored before the check existed
                continue
        for name, qualifier in wanted:
            try:
                version = reg.version(name, qualifier).version
            except ServiceError:
                continue
            out[(name, qualifier)] = self.figures(name, version)
        return out

    def _local_figures(self, name: str, version: str) -> tuple[int, int]:
        """(in-flight, ready capacity) of this node's provisioned instances of a version."""
        pool = self.host.pools.get((name, version))
        in_flight = ready = 0
        if pool is not None:
            for inst in pool.instances.values():
                if inst.provisioned and inst.initialized and not inst.dead:
                    ready += pool.per_instance
                    in_flight += len(inst.running) + (inst.bound is not None)
        return in_flight, ready

    def _exists(self, resource: str) -> bool:
        try:
            name, qualifier = parse_resource(resource)
            self.registry.version(name, qualifier)
        except Exception:  # noqa: BLE001 - a malformed stored id, or a function gone
            return False
        return name not in self.registry.declared

    def _provisioned(self, name: str, qualifier: str) -> bool:
        fs = self.registry.settings.get(name)
        return fs is not None and qualifier in fs.provisioned or f"function:{name}:{qualifier}" in self.service.targets

    def current(self, resource: str) -> int:
        name, qualifier = parse_resource(resource)
        fs = self.registry.settings.get(name)
        return fs.provisioned.get(qualifier, 0) if fs is not None else 0

    def _evaluate(self, resource: str, point: float | None, now: float) -> None:
        svc = self.service
        target = svc.targets[resource]
        current = self.current(resource)
        decisions: list[tuple[str, Decision]] = []
        held: list[str] = []
        for name, policy in svc.policies.get(resource, {}).items():
            tracker = self.trackers.setdefault((resource, name), Tracker())
            d = tracker.evaluate(
                point, now, current=current, target=policy.target_value, min_capacity=target.min_capacity,
                max_capacity=target.max_capacity, out_cooldown=policy.out_cooldown, in_cooldown=policy.in_cooldown,
                disable_in=policy.disable_in,
            )
            if d is not None:
                decisions.append((name, d))
            elif tracker.held:
                held.append(tracker.held)
        outs = [(n, d) for n, d in decisions if d.direction == "out" and not target.out_suspended]
        ins = [(n, d) for n, d in decisions if d.direction == "in" and not target.in_suspended]
        if outs:
            name, d = max(outs, key=lambda nd: nd[1].capacity)
        elif ins and len(ins) == len(svc.policies.get(resource, {})):
            name, d = max(ins, key=lambda nd: nd[1].capacity)
        else:
            if "already at the maximum" in held:
                svc.note_not_scaled(resource, self._not_scaled(resource, target.max_capacity, current))
            return
        policy = svc.policies[resource][name]
        alarm = next((a for a, _ in policy.alarms if f"-{d.alarm}-" in a), d.alarm)
        self.apply(resource, d.capacity,
                   f"monitor alarm {alarm} in state ALARM triggered policy {policy.name}")

    def _not_scaled(self, resource: str, max_capacity: int, current: int) -> dict[str, object]:
        now = self.clock.now()
        return {
            "ActivityId": f"not-scaled-{resource}-{int(now)}", "ServiceNamespace": "lambda", "ResourceId": resource,
            "ScalableDimension": DIMENSION, "Description": "Attempting to scale due to alarm triggered",
            "Cause": "monitor alarm in state ALARM", "StartTime": now, "EndTime": now, "StatusCode": "Unfulfilled",
            "StatusMessage": "Already at the maximum capacity",
            "NotScaledReasons": [{"Code": "AlreadyAtMaxCapacity", "MaxCapacity": max_capacity,
                                  "CurrentCapacity": current}],
        }

    def _schedule(self, resource: str, now: float) -> None:
        svc = self.service
        target = svc.targets[resource]
        for name, action in list(svc.actions.get(resource, {}).items()):
            k = (resource, name)
            if k not in self.next_runs:
                self.next_runs[k] = next_run(action, max(now, action.created))
            due = self.next_runs[k]
            if due is None or due > now:
                continue
            self.next_runs[k] = next_run(action, now)
            if target.scheduled_suspended:
                continue
            parts = []
            if action.min_capacity is not None:
                parts.append(f"min capacity to {action.min_capacity}")
            if action.max_capacity is not None:
                parts.append(f"max capacity to {action.max_capacity}")
            target = svc.set_bounds(resource, action.min_capacity, action.max_capacity)
            svc.record(resource, "Setting " + " and ".join(parts or ["nothing"]),
                       f"scheduled action name {name} was triggered", "Successful",
                       f"Successfully set {' and '.join(parts or ['nothing'])}.", start=due)

    def _bound(self, resource: str) -> None:
        target = self.service.targets[resource]
        current = self.current(resource)
        want = bounded(current, target.min_capacity, target.max_capacity)
        if want == current:
            return
        why = "minimum" if want > current else "maximum"
        self.apply(resource, want, f"{why} capacity was set to {want}")

    def apply(self, resource: str, count: int, cause: str) -> None:
        """Set the provisioned concurrency of ``resource`` to ``count`` (0: none), recording
        the activity; a refused count is recorded Failed and not retried for a minute."""
        svc = self.service
        now = self.clock.now()
        refused = self._refused.get(resource)
        if refused is not None and refused[0] == count and now - refused[1] < MINUTE:
            return
        name, qualifier = parse_resource(resource)
        description = f"Setting desired concurrency to {count}."
        try:
            if count > 0:
                self.check(name, qualifier, count)
            self.registry.set_provisioned(name, qualifier, count if count > 0 else None)
        except ServiceError as exc:
            self._refused[resource] = (count, now)
            svc.record(resource, description, cause, "Failed",
                       f"Failed to set desired concurrency to {count}. {exc.message}")
            return
        self._refused.pop(resource, None)
        svc.record(resource, description, cause, "Successful",
                   f"Successfully set desired concurrency to {count}. Change successfully fulfilled by lambda.")

    # -- /metrics -------------------------------------------------------------------------

    def metrics(self) -> str:
        """Prometheus text: requested and ready provisioned concurrency and the last
        minute's utilization, per function qualifier ("" while there is none)."""
        measured = self.measure()
        if not measured:
            return ""
        rows = sorted(measured.items())
        out = [
            "# HELP rapid_provisioned_concurrency Provisioned concurrency requested per function qualifier.",
            "# TYPE rapid_provisioned_concurrency gauge",
        ]
        for (name, q), _ in rows:
            out.append(f'rapid_provisioned_concurrency{{function="{name}",qualifier="{q}"}} '
                       f'{self.current(f"function:{name}:{q}")}')
        out += ["# HELP rapid_provisioned_concurrency_ready Provisioned instances ready, per function qualifier.",
                "# TYPE rapid_provisioned_concurrency_ready gauge"]
        for (name, q), (_, ready) in rows:
            out.append(f'rapid_provisioned_concurrency_ready{{function="{name}",qualifier="{q}"}} {ready}')
        out += ["# HELP rapid_provisioned_concurrency_utilization Invocations on provisioned instances over "
                "ready provisioned capacity, the last minute's average (the current sample before one closed).",
                "# TYPE rapid_provisioned_concurrency_utilization gauge"]
        for (name, q), (in_flight, ready) in rows:
            meter = self.meters.get((name, q))
            value = meter.last if meter is not None and meter.last is not None else utilization(in_flight, ready)
            out.append(f'rapid_provisioned_concurrency_utilization{{function="{name}",qualifier="{q}"}} '
                       f'{0.0 if value is None else round(value, 4)}')
        return "\n".join(out) + "\n"

    def __repr__(self) -> str:
        return f"<Autoscaler {self.service!r} meters={len(self.meters)} {self.clock!r}>"
