"""What the autoscaler keeps, as immutable msgspec Structs written to the registry's store.

Kinds in the store (``rapid.registry.store``): ``scaling-target`` (key: the resource id,
``function:NAME:QUALIFIER``), ``scaling-policy`` and ``scheduled-action`` (key: resource id,
``|``, name), ``scaling-activity`` (key: resource id, ``|``, start time, ``|``, id: in time
order). Times are epoch seconds on the autoscaler's clock (``rapid.core.scaled_clock``).
"""

from __future__ import annotations

import msgspec
from msgspec import Struct

NAMESPACE = "lambda"
DIMENSION = "lambda:function:ProvisionedConcurrency"
METRIC = "LambdaProvisionedConcurrencyUtilization"


class ScalableTarget(Struct, frozen=True, kw_only=True):
    resource_id: str
    min_capacity: int
    max_capacity: int
    arn: str
    role_arn: str
    created: float
    in_suspended: bool = False  # SuspendedState.DynamicScalingInSuspended
    out_suspended: bool = False  # DynamicScalingOutSuspended
    scheduled_suspended: bool = False  # ScheduledScalingSuspended
    tags: dict[str, str] = {}


class Policy(Struct, frozen=True, kw_only=True):
    """A TargetTrackingScaling policy on LambdaProvisionedConcurrencyUtilization."""

    name: str
    resource_id: str
    arn: str
    target_value: float
    out_cooldown: int = 0  # seconds; Lambda's default is 0 for both
    in_cooldown: int = 0
    disable_in: bool = False
    resource_label: str | None = None
    alarms: tuple[tuple[str, str], ...] = ()  # (AlarmName, AlarmARN): AlarmHigh, AlarmLow
    created: float


class ScheduledAction(Struct, frozen=True, kw_only=True):
    name: str
    resource_id: str
    arn: str
    schedule: str
    timezone: str | None = None
    start: float | None = None
    end: float | None = None
    min_capacity: int | None = None
    max_capacity: int | None = None
    created: float


class Activity(Struct, frozen=True, kw_only=True):
    id: str
    resource_id: str
    description: str
    cause: str
    start: float
    end: float | None = None
    status: str = "Successful"  # Pending | InProgress | Successful | Overridden | Unfulfilled | Failed
    message: str | None = None
    details: str | None = None


encode = msgspec.json.Encoder().encode


def key(resource_id: str, name: str) -> str:
    return f"{resource_id}|{name}"
