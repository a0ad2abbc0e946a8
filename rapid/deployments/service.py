"""Gradual deployments: an alias's traffic moved to a new version step by step, guarded by
hooks and alarms, rolled back at once when one fails.

Theory of operation
-------------------
``start(function_name=, alias=, from_version=, to_version=, preference=)`` (what the
template applier calls for a function with AutoPublishAlias and DeploymentPreference)
records a deployment and runs it as a task, following ``rapid.deployments.machine``:

1. The alias is put on ``from_version`` alone, then the PreTraffic hook (if any) is
   invoked with ``{"DeploymentId", "LifecycleEventHookExecutionId"}``, as CodeDeploy does.
   Its verdict is what it reports through CodeDeploy's PutLifecycleEventHookExecutionStatus
   (``rapid.api.codedeploy``); a hook that returns without reporting is judged by its
   invocation (a function error fails it). A failed hook ends the deployment before any
   traffic moved.
2. Each step of the Type (``rapid.deployments.preferences``) sets the alias's
   AdditionalVersionWeights (``{to_version: w}`` on ``from_version``; the last step points
   the alias at ``to_version`` alone) through the registry, and holds for its interval on
   the deployments' clock.
3. The PostTraffic hook runs once all traffic is on the new version; then Succeeded.

From the first step on, every finished or throttled invocation of the function (the
host's feed, batched every 250 ms) is checked against the deployment's alarms
(``rapid.deployments.alarms``). When one fires, the alias goes back to ``from_version``
alone in that same callback, before the next batch of invocations is routed, and the
deployment fails with the alarm's reason. An alias change is atomic for routing (each
invocation draws its version once, at submission), so no invocation is lost or sees a
half-made alias; invocations already running on the new version finish there.

A second deployment of the same alias stops the first (rolled back, Stopped). At shutdown
running deployments roll back and stop; a deployment found in progress at start-up (rapid
was killed) is rolled back and marked Failed.
"""

from __future__ import annotations

import asyncio
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rapid.core.errors import ServiceError
from rapid.core.scaled_clock import ScaledClock
from rapid.deployments import machine
from rapid.deployments.alarms import Record, Rule, Window, guards, rule_of
from rapid.deployments.machine import Event, Phase
from rapid.deployments.hooks import Hooks
from rapid.deployments.model import Deployment, DeploymentError, Step, decode, encode
from rapid.deployments.preferences import Preference, PreferenceError, preference_of, steps
from rapid.host.host import Host
from rapid.registry.registry import Registry
from rapid.wake import wait_set

KEPT = 100  # deployments kept, newest


@dataclass
class _Live:
    deployment: Deployment
    rules: list[Rule]
    window: Window = field(default_factory=Window)
    alarm: str | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Deployments:
    def __init__(self, registry: Registry, host: Host, clock: ScaledClock, say: Callable[[str], None]) -> None:
        self.registry = registry
        self.store = registry.store
        self.host = host
        self.clock = clock
        self.say = say
        self.hooks = Hooks(host)
        self.records: dict[str, Deployment] = {}
        self.alarm_definitions: dict[str, dict[str, Any]] = {}  # AWS::CloudWatch::Alarm properties by name
        # The template's alarms as they are now (its logical ids: what !Ref gives), read at each start.
        self.alarm_source: Callable[[], dict[str, dict[str, Any]]] | None = None
        self._live: dict[str, _Live] = {}
        self._unsubscribe: Callable[[], None] | None = None

    # -- records --------------------------------------------------------------------------

    def load(self, recover: bool = True) -> None:
        """Deployments kept in the store; one rapid did not finish is rolled back, Failed
        (unless not ``recover``: in a cluster the node that runs the deployments does it)."""
        for _, body in self.store.load("deployment"):
            d = decode(body)
            self.records[d.id] = d
        if recover:
            self.abandon("rapid stopped during the deployment")
            self._trim()

    def abandon(self, reason: str) -> list[str]:
        """Deployments recorded as running that no task here runs (their runner stopped):
        rolled back if traffic had moved, and Failed; their ids."""
        ended = []
        for d in list(self.records.values()):
            if d.status in ("Created", "InProgress") and d.id not in self._live:
                self._finish(d, Phase.FAILED, reason, rollback=machine.moved(Phase(d.phase)), code="INTERNAL_ERROR")
                ended.append(d.id)
        return ended

    def listed(self) -> list[Deployment]:
        """Newest first."""
        return sorted(self.records.values(), key=lambda d: d.created, reverse=True)

    def _save(self, d: Deployment) -> None:
        self.store.put("deployment", d.id, encode(d))

    def _trim(self) -> None:
        for d in self.listed()[KEPT:]:
            if d.id not in self._live:
                self.store.delete("deployment", d.id)
                del self.records[d.id]

    def _step(self, d: Deployment, event: str, status: str = "Succeeded", detail: str = "",
              weight: float | None = None) -> None:
        d.events.append(Step(at=self.clock.now(), event=event, status=status, detail=detail, weight=weight))
        self._save(d)

    # -- start ----------------------------------------------------------------------------

    async def start(self, *, function_name: str, alias: str, from_version: str | None, to_version: str,
                    preference: dict[str, Any] | Preference, again: bool = False,
                    alarms: dict[str, dict[str, Any]] | None = None) -> str:
        """Begin moving ``alias`` of ``function_name`` to ``to_version``; its id (the
        deployment runs on; ``wait(id)`` awaits its end). Raises ``DeploymentError``.

        Applied again while the same move runs, it goes on (the same id). A version whose
        last deployment failed its alarms or hooks is not deployed again from the same
        version (a template applied again with that code unchanged) unless ``again``.
        ``alarms`` gives CloudWatch alarm properties by name (a remote ``rapid deploy``'s
        template), beside those the daemon's own template defines."""
        try:
            pref = preference if isinstance(preference, Preference) else preference_of(preference)
        except PreferenceError as exc:
            raise DeploymentError("InvalidDeploymentConfigNameException", str(exc)) from None
        reg = self.registry
        try:
            reg.alias(function_name, alias)
            reg.version(function_name, to_version)
        except ServiceError as exc:
            raise DeploymentError("DeploymentTargetDoesNotExistException", exc.message) from None
        for lv in self._live.values():
            if (lv.deployment.function, lv.deployment.alias, lv.deployment.to_version) == (
                    function_name, alias, to_version):
                return lv.deployment.id  # applied again while it runs: it goes on
        last = next((d for d in self.listed() if (d.function, d.alias) == (function_name, alias)), None)
        if not again and last is not None and last.to_version == to_version and last.error_code in (
                "ALARM_ACTIVE", "HOOK_EXECUTION_FAILURE") and from_version == last.from_version:
            self.say(f"deployment of {function_name}:{alias} to version {to_version} not started again: "
                     f"{last.id} failed ({last.reason}); change the code to deploy a new version")
            return last.id
        d = Deployment(
            id="d-" + "".join(random.choices(string.ascii_uppercase + string.digits, k=9)),
            function=function_name, alias=alias, from_version=from_version, to_version=to_version, type=pref.type,
            created=self.clock.now(), pre_traffic=pref.pre_traffic, post_traffic=pref.post_traffic,
            alarms=tuple(a if isinstance(a, str) else str(a.get("AlarmName", "alarm")) for a in pref.alarms),
        )
        for other in [lv for lv in self._live.values()
                      if (lv.deployment.function, lv.deployment.alias) == (function_name, alias)]:
            await self._stop(other, f"superseded by deployment {d.id}")
        self.records[d.id] = d
        self._trim()
        if from_version is None or from_version == to_version or not pref.enabled:
            why = ("DeploymentPreference is disabled" if not pref.enabled else
                   "the alias had no earlier version")
            self._set_alias(d, 1.0)
            self._step(d, "AllowTraffic", detail=f"{why}: all traffic at once", weight=1.0)
            self._finish(d, Phase.SUCCEEDED, None, rollback=False)
            return d.id
        rules = guards(to_version)
        definitions = {**self.alarm_definitions, **(alarms or {})}
        if self.alarm_source is not None and any(isinstance(a, str) for a in pref.alarms):
            try:
                definitions.update(self.alarm_source())
            except Exception as exc:  # noqa: BLE001 - a template gone bad: its alarms are reported missing
                self.say(f"deployment {d.id}: the template's alarms could not be read: {exc}")
        for alarm in pref.alarms:
            name, props = (alarm, definitions.get(alarm)) if isinstance(alarm, str) else (
                str(alarm.get("AlarmName", "alarm")), alarm)
            if props is None:
                self._step(d, "Start", "Skipped", f"alarm {name} is not defined in the template; "
                           "only the built-in error and throttle guards watch it")
                continue
            try:
                rules.append(rule_of(name, props, function_name, alias, (from_version, to_version)))
            except ValueError as exc:
                self._step(d, "Start", "Skipped", str(exc))
        live = _Live(d, rules)
        self._live[d.id] = live
        self._advance(d, Event.START)
        self._step(d, "Start", detail=f"{pref.type} of {function_name}:{alias} from version {from_version} "
                                      f"to {to_version}")
        live.task = asyncio.get_running_loop().create_task(self._run(live, pref))
        return d.id

    async def wait(self, deployment_id: str) -> Deployment:
        live = self._live.get(deployment_id)
        if live is not None and live.task is not None:
            await asyncio.shield(live.task)
        return self.records[deployment_id]

    # -- the run --------------------------------------------------------------------------

    def _advance(self, d: Deployment, event: Event) -> Phase:
        phase = machine.advance(Phase(d.phase), event)
        d.phase, d.status = phase.value, machine.status(phase)
        return phase

    async def _run(self, live: _Live, pref: Preference) -> None:
        d = live.deployment
        try:
            self._set_alias(d, 0.0)
            if pref.pre_traffic:
                ok, detail = await self._hook(d, "BeforeAllowTraffic", pref.pre_traffic)
                if not ok:
                    self._advance(d, Event.HOOK_FAILED)
                    self._finish(d, Phase.FAILED, f"PreTraffic hook {pref.pre_traffic} failed: {detail}",
                                 rollback=False, code="HOOK_EXECUTION_FAILURE")
                    return
            self._advance(d, Event.HOOK_OK)
            self._watch()
            plan = steps(pref.type)
            for i, step in enumerate(plan):
                self._set_alias(d, step.weight)
                self._step(d, "AllowTraffic", weight=step.weight,
                           detail=f"{step.weight:.0%} of {d.function}:{d.alias} on version {d.to_version}")
                if step.hold > 0:
                    await wait_set(live.wake, self.clock.real_seconds(step.hold))
                if live.alarm is not None:
                    return self._alarmed(live)
                self._advance(d, Event.STEP_DONE if i < len(plan) - 1 else Event.SHIFTED)
            if pref.post_traffic:
                ok, detail = await self._hook(d, "AfterAllowTraffic", pref.post_traffic)
                if live.alarm is not None:
                    return self._alarmed(live)
                if not ok:
                    self._advance(d, Event.HOOK_FAILED)
                    self._finish(d, Phase.FAILED, f"PostTraffic hook {pref.post_traffic} failed: {detail}",
                                 rollback=True, code="HOOK_EXECUTION_FAILURE")
                    return
            self._advance(d, Event.HOOK_OK)
            self._finish(d, Phase.SUCCEEDED, None, rollback=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a deployment that breaks must still roll back
            if Phase(d.phase) not in machine.ENDS:
                self._advance(d, Event.STOP)
                self._finish(d, Phase.STOPPED, f"rapid could not continue: {type(exc).__name__}: {exc}",
                             rollback=True, code="INTERNAL_ERROR")
        finally:
            self._live.pop(d.id, None)
            self._watch()

    def _alarmed(self, live: _Live) -> None:
        d = live.deployment
        self._advance(d, Event.ALARM)
        self._finish(d, Phase.FAILED, live.alarm, rollback=False, code="ALARM_ACTIVE")  # rolled back as it fired

    def _finish(self, d: Deployment, phase: Phase, reason: str | None, *, rollback: bool,
                code: str | None = None) -> None:
        if rollback:
            self._rollback(d, reason or "")
        d.phase, d.status = phase.value, machine.status(phase)
        d.reason, d.completed, d.error_code = reason, self.clock.now(), code
        self._step(d, "End", "Succeeded" if phase is Phase.SUCCEEDED else phase.value, reason or "")
        self.say(f"deployment {d.id} of {d.function}:{d.alias} (version {d.from_version} -> {d.to_version}): "
                 f"{d.status}" + (f": {reason}" if reason else ""))

    def _set_alias(self, d: Deployment, weight: float) -> None:
        if weight >= 1.0:
            changes: dict[str, Any] = {"version": d.to_version, "weights": {}}
        elif weight <= 0.0:
            changes = {"version": d.from_version or d.to_version, "weights": {}}
        else:
            changes = {"version": d.from_version, "weights": {d.to_version: weight}}
        current = self.registry.alias(d.function, d.alias)
        if current.version != changes["version"] or current.weights != changes["weights"]:
            self.registry.update_alias(d.function, d.alias, changes, None)
        d.weight = max(0.0, min(1.0, weight))

    def _rollback(self, d: Deployment, reason: str) -> None:
        if d.from_version is None:
            return
        try:
            self._set_alias(d, 0.0)
        except ServiceError as exc:  # the alias or function is gone
            self._step(d, "Rollback", "Failed", exc.message)
            return
        self._step(d, "Rollback", detail=f"all traffic back on version {d.from_version}: {reason}", weight=0.0)

    async def _stop(self, live: _Live, reason: str) -> None:
        d = live.deployment
        if live.task is not None:
            live.task.cancel()
            await asyncio.gather(live.task, return_exceptions=True)
        if Phase(d.phase) not in machine.ENDS:
            moved = machine.moved(Phase(d.phase))
            self._advance(d, Event.STOP)
            self._finish(d, Phase.STOPPED, reason, rollback=moved, code="MANUAL_STOP")
        self._live.pop(d.id, None)
        self._watch()

    def stop_one(self, deployment_id: str, reason: str) -> None:
        """Stop a running deployment (StopDeployment): it rolls back."""
        live = self._live.get(deployment_id)
        if live is not None:
            asyncio.get_running_loop().create_task(self._stop(live, reason))

    async def stop(self, reason: str = "rapid is shutting down") -> None:
        """Shutdown: running deployments roll back and stop."""
        for live in list(self._live.values()):
            await self._stop(live, reason)

    # -- hooks ----------------------------------------------------------------------------

    async def _hook(self, d: Deployment, lifecycle: str, function: str) -> tuple[bool, str]:
        self._step(d, lifecycle, "InProgress", f"invoking {function}")
        ok, detail = await self.hooks.run(d.id, function)
        self._step(d, lifecycle, "Succeeded" if ok else "Failed", detail)
        return ok, detail

    def hook_status(self, deployment_id: str, hook_id: str, status: str) -> None:
        """PutLifecycleEventHookExecutionStatus."""
        if deployment_id not in self.records:
            raise DeploymentError("DeploymentDoesNotExistException", f"The deployment {deployment_id} could not "
                                  "be found.")
        self.hooks.report(deployment_id, hook_id, status)

    # -- alarms ---------------------------------------------------------------------------

    def _watch(self) -> None:
        """Listen to the host's feed while a deployment moves traffic, not otherwise."""
        wanted = any(machine.moved(Phase(lv.deployment.phase)) for lv in self._live.values())
        if wanted and self._unsubscribe is None:
            self._unsubscribe = self.host.feed.subscribe(self._batch)
        elif not wanted and self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _batch(self, batch: dict[str, Any]) -> None:
        at = self.clock.at
        for live in list(self._live.values()):
            d = live.deployment
            if live.alarm is not None or not machine.moved(Phase(d.phase)):
                continue
            started = next((s.at for s in d.events if s.event == "AllowTraffic"), None)
            if started is None:
                continue
            for r in batch["invocations"]:  # (seq, time, function, version, rid, duration, ..., status, error)
                if r[2] == d.function and at(r[1]) >= started:
                    live.window.add(Record(at(r[1]), r[3], r[5], error=r[9] != "success"))
            for t in batch["throttles"]:  # (function, count, time, version)
                if t[0] == d.function and at(t[2]) >= started:
                    for _ in range(t[1]):
                        live.window.add(Record(at(t[2]), t[3] if len(t) > 3 else "", throttle=True))
            now = self.clock.now()
            live.window.prune(now - max(rule.span for rule in live.rules))
            for rule in live.rules:
                reason = rule.evaluate(live.window, now)
                if reason is not None:
                    live.alarm = reason
                    self._rollback(d, reason)  # at once: the next invocation routes to the old version
                    live.wake.set()
                    break

    def __repr__(self) -> str:
        return f"<Deployments {len(self.records)} kept, {len(self._live)} running, {self.clock!r}>"

