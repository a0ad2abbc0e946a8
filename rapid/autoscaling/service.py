"""The autoscaler's state and operations: scalable targets, policies, scheduled actions,
activities; kept in memory and written through the registry's store before answering.

Each operation checks what depends on state (the function and qualifier exist, the target
is registered) and raises ``AutoScalingError`` in Application Auto Scaling's terms; the
shape of the request was checked by the API edge (``rapid.api.autoscaling``). What the
autoscaler does over time (measure, decide, change the provisioned concurrency) is
``rapid.autoscaling.runner``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from rapid.autoscaling.model import (
    DIMENSION, NAMESPACE, Activity, Policy, ScalableTarget, ScheduledAction, encode, key,
)
from rapid.core.errors import ServiceError
from rapid.core.routing import LATEST
from rapid.core.schedules import ScheduleError
from rapid.registry.registry import Registry

ACTIVITIES_KEPT = 200  # per scalable target, newest kept


class AutoScalingError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validation(message: str) -> AutoScalingError:
    return AutoScalingError("ValidationException", message)


def not_registered(resource_id: str) -> AutoScalingError:
    return AutoScalingError(
        "ObjectNotFoundException",
        f"No scalable target registered for service namespace: {NAMESPACE}, resource ID: {resource_id}, "
        f"scalable dimension: {DIMENSION}",
    )


def parse_resource(resource_id: str) -> tuple[str, str]:
    """``function:NAME:QUALIFIER`` -> (NAME, QUALIFIER)."""
    parts = resource_id.split(":")
    if len(parts) != 3 or parts[0] != "function" or not parts[1] or not parts[2]:
        raise validation(f"Unsupported resource ID {resource_id!r}: a Lambda scalable target is "
                         "function:FUNCTION_NAME:ALIAS_OR_VERSION")
    return parts[1], parts[2]


class AutoScaling:
    def __init__(self, registry: Registry, now: Callable[[], float]) -> None:
        self.registry = registry
        self.store = registry.store
        self.now = now
        self.region, self.account = registry.region, registry.account
        self.targets: dict[str, ScalableTarget] = {}
        self.policies: dict[str, dict[str, Policy]] = {}  # resource id -> name -> policy
        self.actions: dict[str, dict[str, ScheduledAction]] = {}
        self.activities: dict[str, list[Activity]] = {}  # oldest first
        self.not_scaled: dict[str, list[dict[str, Any]]] = {}  # IncludeNotScaledActivities (memory only)
        self.changed: list[Callable[[str], None]] = []  # told the resource id after each change

    def load(self) -> None:
        dec = msgspec.json.Decoder
        for _, body in self.store.load("scaling-target"):
            t = dec(ScalableTarget).decode(body)
            self.targets[t.resource_id] = t
        for _, body in self.store.load("scaling-policy"):
            p = dec(Policy).decode(body)
            self.policies.setdefault(p.resource_id, {})[p.name] = p
        for _, body in self.store.load("scheduled-action"):
            a = dec(ScheduledAction).decode(body)
            self.actions.setdefault(a.resource_id, {})[a.name] = a
        for _, body in self.store.load("scaling-activity"):  # keys sort by time
            act = dec(Activity).decode(body)
            self.activities.setdefault(act.resource_id, []).append(act)

    def _tell(self, resource_id: str) -> None:
        for hook in self.changed:
            hook(resource_id)

    # -- targets --------------------------------------------------------------------------

    def check_resource(self, resource_id: str) -> tuple[str, str]:
        name, qualifier = parse_resource(resource_id)
        reg = self.registry
        if name in reg.declared or name not in reg.latest:
            raise validation(f"Unable to register scalable target: function {reg.arn(name)} does not exist "
                             "(or is declared in rapid's configuration, which autoscaling cannot change)")
        if qualifier == LATEST:
            raise validation("Provisioned concurrency cannot be scaled on $LATEST: use an alias or a version")
        try:
            reg.version(name, qualifier)
        except ServiceError:
            raise validation(f"Unable to register scalable target: {reg.arn(name, qualifier)} does not exist") from None
        return name, qualifier

    def register(self, resource_id: str, min_capacity: int | None, max_capacity: int | None,
                 role_arn: str | None, suspended: dict[str, bool] | None, tags: dict[str, str] | None) -> str:
        self.check_resource(resource_id)
        old = self.targets.get(resource_id)
        if old is None and (min_capacity is None or max_capacity is None):
            raise validation("MinCapacity and MaxCapacity are required to register a new scalable target")
        lo = min_capacity if min_capacity is not None else old.min_capacity  # type: ignore[union-attr]
        hi = max_capacity if max_capacity is not None else old.max_capacity  # type: ignore[union-attr]
        if lo < 0 or hi < 0:
            raise validation("MinCapacity and MaxCapacity must be 0 or more")
        if lo > hi:
            raise validation(f"Minimum capacity {lo} cannot be greater than maximum capacity {hi}")
        s = suspended or {}
        if old is None:
            target = ScalableTarget(
                resource_id=resource_id, min_capacity=lo, max_capacity=hi, created=self.now(),
                arn=f"arn:aws:application-autoscaling:{self.region}:{self.account}:scalable-target/"
                    f"056{uuid.uuid4().hex[:29]}",
                role_arn=role_arn or (f"arn:aws:iam::{self.account}:role/aws-service-role/lambda.application-"
                                      "autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_"
                                      "LambdaConcurrency"),
                in_suspended=bool(s.get("DynamicScalingInSuspended", False)),
                out_suspended=bool(s.get("DynamicScalingOutSuspended", False)),
                scheduled_suspended=bool(s.get("ScheduledScalingSuspended", False)),
                tags=dict(tags or {}),
            )
        else:
            target = msgspec.structs.replace(
                old, min_capacity=lo, max_capacity=hi, role_arn=role_arn or old.role_arn,
                in_suspended=bool(s.get("DynamicScalingInSuspended", old.in_suspended)),
                out_suspended=bool(s.get("DynamicScalingOutSuspended", old.out_suspended)),
                scheduled_suspended=bool(s.get("ScheduledScalingSuspended", old.scheduled_suspended)),
                tags={**old.tags, **(tags or {})},
            )
        self._put_target(target)
        return target.arn

    def _put_target(self, target: ScalableTarget) -> None:
        self.store.put("scaling-target", target.resource_id, encode(target))
        self.targets[target.resource_id] = target
        self._tell(target.resource_id)

    def target(self, resource_id: str) -> ScalableTarget:
        found = self.targets.get(resource_id)
        if found is None:
            raise not_registered(resource_id)
        return found

    def deregister(self, resource_id: str) -> None:
        """The target goes with its policies and scheduled actions (the provisioned
        concurrency stays where it is, as on AWS)."""
        self.target(resource_id)
        self.store.delete("scaling-target", resource_id)
        self.store.delete_prefix("scaling-policy", resource_id + "|")
        self.store.delete_prefix("scheduled-action", resource_id + "|")
        del self.targets[resource_id]
        self.policies.pop(resource_id, None)
        self.actions.pop(resource_id, None)
        self._tell(resource_id)

    # -- policies -------------------------------------------------------------------------

    def put_policy(self, resource_id: str, name: str, target_value: float, out_cooldown: int | None,
                   in_cooldown: int | None, disable_in: bool, label: str | None) -> Policy:
        self.target(resource_id)
        old = self.policies.get(resource_id, {}).get(name)
        pid = old.arn.split(":")[5] if old is not None else str(uuid.uuid4())
        arn = (f"arn:aws:autoscaling:{self.region}:{self.account}:scalingPolicy:{pid}:resource/lambda/"
               f"{resource_id}:policyName/{name}")
        alarms = tuple(
            (f"TargetTracking-{resource_id}-{which}-{uuid.uuid5(uuid.NAMESPACE_URL, arn + which)}",
             f"arn:aws:cloudwatch:{self.region}:{self.account}:alarm:TargetTracking-{resource_id}-{which}-"
             f"{uuid.uuid5(uuid.NAMESPACE_URL, arn + which)}")
            for which in ("AlarmHigh", "AlarmLow")
        )
        policy = Policy(
            name=name, resource_id=resource_id, arn=arn, target_value=target_value,
            out_cooldown=out_cooldown or 0, in_cooldown=in_cooldown or 0, disable_in=disable_in,
            resource_label=label, alarms=alarms, created=old.created if old is not None else self.now(),
        )
        self.store.put("scaling-policy", key(resource_id, name), encode(policy))
        self.policies.setdefault(resource_id, {})[name] = policy
        self._tell(resource_id)
        return policy

    def delete_policy(self, resource_id: str, name: str) -> None:
        if name not in self.policies.get(resource_id, {}):
            raise AutoScalingError("ObjectNotFoundException", f"No scaling policy found for service namespace: "
                                   f"{NAMESPACE}, resource ID: {resource_id}, scalable dimension: {DIMENSION}, "
                                   f"policy name: {name}")
        self.store.delete("scaling-policy", key(resource_id, name))
        del self.policies[resource_id][name]
        self._tell(resource_id)

    # -- scheduled actions ----------------------------------------------------------------

    def put_action(self, resource_id: str, name: str, schedule: str | None, timezone: str | None,
                   start: float | None, end: float | None, lo: int | None, hi: int | None) -> ScheduledAction:
        self.target(resource_id)
        old = self.actions.get(resource_id, {}).get(name)
        if schedule is None:
            if old is None:
                raise validation("Schedule is required to create a scheduled action")
            schedule = old.schedule
        if lo is not None and hi is not None and lo > hi:
            raise validation(f"Minimum capacity {lo} cannot be greater than maximum capacity {hi}")
        if start is not None and end is not None and start > end:
            raise validation("EndTime cannot be before StartTime")
        action = ScheduledAction(
            name=name, resource_id=resource_id, schedule=schedule, timezone=timezone, start=start, end=end,
            min_capacity=lo, max_capacity=hi, created=old.created if old is not None else self.now(),
            arn=old.arn if old is not None else (
                f"arn:aws:autoscaling:{self.region}:{self.account}:scheduledAction:{uuid.uuid4()}:resource/lambda/"
                f"{resource_id}:scheduledActionName/{name}"),
        )
        from rapid.autoscaling.scheduled import schedule_of

        try:
            schedule_of(action)
        except ScheduleError as exc:
            raise validation(f"Schedule {schedule!r} is not valid: {exc.detail}") from None
        except (KeyError, ValueError) as exc:  # an unknown time zone
            raise validation(f"Timezone {timezone!r} is not valid: {exc}") from None
        self.store.put("scheduled-action", key(resource_id, name), encode(action))
        self.actions.setdefault(resource_id, {})[name] = action
        self._tell(resource_id)
        return action

    def delete_action(self, resource_id: str, name: str) -> None:
        if name not in self.actions.get(resource_id, {}):
            raise AutoScalingError("ObjectNotFoundException", f"No scheduled action found for service namespace: "
                                   f"{NAMESPACE}, resource ID: {resource_id}, scalable dimension: {DIMENSION}, "
                                   f"scheduled action name: {name}")
        self.store.delete("scheduled-action", key(resource_id, name))
        del self.actions[resource_id][name]
        self._tell(resource_id)

    def set_bounds(self, resource_id: str, lo: int | None, hi: int | None) -> ScalableTarget:
        """A scheduled action's new Min/Max (a lone Min above Max raises Max too, and back)."""
        t = self.targets[resource_id]
        new_lo = lo if lo is not None else t.min_capacity
        new_hi = hi if hi is not None else t.max_capacity
        if lo is not None and hi is None:
            new_hi = max(new_hi, new_lo)
        if hi is not None and lo is None:
            new_lo = min(new_lo, new_hi)
        target = msgspec.structs.replace(t, min_capacity=new_lo, max_capacity=new_hi)
        self._put_target(target)
        return target

    # -- activities -----------------------------------------------------------------------

    def record(self, resource_id: str, description: str, cause: str, status: str, message: str | None,
               start: float | None = None) -> Activity:
        now = self.now()
        act = Activity(id=str(uuid.uuid4()), resource_id=resource_id, description=description, cause=cause,
                       start=start if start is not None else now, end=now, status=status, message=message)
        self.store.put("scaling-activity", _activity_key(act), encode(act))
        kept = self.activities.setdefault(resource_id, [])
        kept.append(act)
        while len(kept) > ACTIVITIES_KEPT:
            self.store.delete("scaling-activity", _activity_key(kept.pop(0)))
        return act

    def note_not_scaled(self, resource_id: str, entry: dict[str, Any]) -> None:
        kept = self.not_scaled.setdefault(resource_id, [])
        if kept and kept[-1]["NotScaledReasons"] == entry["NotScaledReasons"]:
            return  # the same reason again: one entry says it
        kept.append(entry)
        del kept[:-50]

    def __repr__(self) -> str:
        return (f"<AutoScaling targets={len(self.targets)} policies={sum(map(len, self.policies.values()))} "
                f"actions={sum(map(len, self.actions.values()))}>")


def _activity_key(act: Activity) -> str:
    return f"{act.resource_id}|{act.start:017.6f}|{act.id}"
