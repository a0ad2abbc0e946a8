"""The Application Auto Scaling API (JSON 1.1, ``X-Amz-Target: AnyScaleFrontendService.<Op>``).

The subset tools use for Lambda's provisioned concurrency: Register/Deregister/
DescribeScalableTargets, Put/Delete/DescribeScalingPolicies (TargetTrackingScaling on
``LambdaProvisionedConcurrencyUtilization``), DescribeScalingActivities, and Put/Delete/
DescribeScheduledActions. Requests are checked here as the service checks them (required
members, enums, types, Lambda's TargetValue range); state checks and the work are
``rapid.autoscaling.service``. Errors are HTTP 400 with ``{"__type", "message"}`` and
``x-amzn-ErrorType``; only ServiceNamespace ``lambda`` is served (any other namespace is a
ValidationException saying so).
"""

from __future__ import annotations

import base64
from typing import Any


from rapid.api import awsjson
from rapid.autoscaling.model import DIMENSION, METRIC, NAMESPACE, Activity, Policy, ScalableTarget, ScheduledAction
from rapid.autoscaling.runner import Autoscaler
from rapid.autoscaling.service import AutoScaling, AutoScalingError, validation
from rapid.registry.store import StaleRecord
from rapid.http.message import Request, Response

CONTENT_TYPE = "application/x-amz-json-1.1"
_NAMESPACES = ("ecs", "elasticmapreduce", "ec2", "appstream", "dynamodb", "rds", "sagemaker", "custom-resource",
               "comprehend", "lambda", "cassandra", "kafka", "elasticache", "neptune", "workspaces")


def _member(body: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = False) -> Any:
    value = body.get(name)
    field = name[0].lower() + name[1:]
    if value is None:
        if required:
            raise validation(f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: "
                             "Member must not be null")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        raise AutoScalingError("SerializationException", f"{name} is not of the expected type")
    if isinstance(value, str) and not value and required:
        raise validation(f"1 validation error detected: Value '' at '{field}' failed to satisfy constraint: "
                         "Member must have length greater than or equal to 1")
    return value


def _scope(body: dict[str, Any], resource: bool = True) -> str | None:
    """Check ServiceNamespace (and ResourceId, ScalableDimension); the resource id."""
    ns = _member(body, "ServiceNamespace", str, True)
    if ns not in _NAMESPACES:
        raise validation(f"1 validation error detected: Value '{ns}' at 'serviceNamespace' failed to satisfy "
                         f"constraint: Member must satisfy enum value set: [{', '.join(_NAMESPACES)}]")
    if ns != NAMESPACE:
        raise validation(f"rapid serves Application Auto Scaling for the lambda namespace only, not {ns!r}")
    dim = _member(body, "ScalableDimension", str, resource)
    if dim is not None and dim != DIMENSION:
        raise validation(f"Unsupported scalable dimension {dim!r} for service namespace lambda: use {DIMENSION}")
    found: str | None = _member(body, "ResourceId", str, resource)
    return found


def _resource(body: dict[str, Any]) -> str:
    """The scope of an operation on one scalable target: its (required) resource id."""
    found = _scope(body)
    assert found is not None  # required: _member raised otherwise
    return found


def _page(items: list[Any], body: dict[str, Any], most: int = 50) -> tuple[list[Any], str | None]:
    limit = _member(body, "MaxResults", int)
    if limit is not None and not 1 <= limit <= most:
        raise validation(f"1 validation error detected: Value '{limit}' at 'maxResults' failed to satisfy "
                         f"constraint: Member must be between 1 and {most}")
    limit = limit or most
    token = _member(body, "NextToken", str)
    start = 0
    if token:
        try:
            start = int(base64.b64decode(token, validate=True).decode())
        except (ValueError, UnicodeDecodeError):
            raise AutoScalingError("InvalidNextTokenException", "Invalid token") from None
    chunk = items[start:start + limit]
    more = start + limit < len(items)
    return chunk, base64.b64encode(str(start + limit).encode()).decode() if more else None


def _listed(out: dict[str, Any], key: str, items: list[Any], token: str | None) -> dict[str, Any]:
    out[key] = items
    if token:
        out["NextToken"] = token
    return out


def target_shape(t: ScalableTarget) -> dict[str, Any]:
    return {
        "ServiceNamespace": NAMESPACE, "ResourceId": t.resource_id, "ScalableDimension": DIMENSION,
        "MinCapacity": t.min_capacity, "MaxCapacity": t.max_capacity, "RoleARN": t.role_arn,
        "CreationTime": t.created, "ScalableTargetARN": t.arn,
        "SuspendedState": {"DynamicScalingInSuspended": t.in_suspended, "DynamicScalingOutSuspended": t.out_suspended,
                           "ScheduledScalingSuspended": t.scheduled_suspended},
    }


def policy_shape(p: Policy) -> dict[str, Any]:
    metric: dict[str, Any] = {"PredefinedMetricType": METRIC}
    if p.resource_label:
        metric["ResourceLabel"] = p.resource_label
    return {
        "PolicyARN": p.arn, "PolicyName": p.name, "ServiceNamespace": NAMESPACE, "ResourceId": p.resource_id,
        "ScalableDimension": DIMENSION, "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": p.target_value, "PredefinedMetricSpecification": metric,
            "ScaleOutCooldown": p.out_cooldown, "ScaleInCooldown": p.in_cooldown, "DisableScaleIn": p.disable_in,
        },
        "Alarms": [{"AlarmName": n, "AlarmARN": a} for n, a in p.alarms], "CreationTime": p.created,
    }


def action_shape(a: ScheduledAction) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ScheduledActionName": a.name, "ScheduledActionARN": a.arn, "ServiceNamespace": NAMESPACE,
        "Schedule": a.schedule, "ResourceId": a.resource_id, "ScalableDimension": DIMENSION,
        "CreationTime": a.created, "ScalableTargetAction": {},
    }
    if a.timezone:
        out["Timezone"] = a.timezone
    if a.start is not None:
        out["StartTime"] = a.start
    if a.end is not None:
        out["EndTime"] = a.end
    if a.min_capacity is not None:
        out["ScalableTargetAction"]["MinCapacity"] = a.min_capacity
    if a.max_capacity is not None:
        out["ScalableTargetAction"]["MaxCapacity"] = a.max_capacity
    return out


def activity_shape(a: Activity) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ActivityId": a.id, "ServiceNamespace": NAMESPACE, "ResourceId": a.resource_id, "ScalableDimension": DIMENSION,
        "Description": a.description, "Cause": a.cause, "StartTime": a.start, "StatusCode": a.status,
    }
    if a.end is not None:
        out["EndTime"] = a.end
    if a.message:
        out["StatusMessage"] = a.message
    if a.details:
        out["Details"] = a.details
    return out


class AutoScalingAPI:
    def __init__(self, service: AutoScaling, runner: Autoscaler) -> None:
        self.service = service
        self.runner = runner
        self._ops = {name: getattr(self, "op_" + name) for name in (
            "RegisterScalableTarget", "DeregisterScalableTarget", "DescribeScalableTargets", "PutScalingPolicy",
            "DeleteScalingPolicy", "DescribeScalingPolicies", "DescribeScalingActivities", "PutScheduledAction",
            "DeleteScheduledAction", "DescribeScheduledActions")}

    def __call__(self, req: Request, rid: str) -> Response:
        try:
            _, handler, body = awsjson.read(req, self._ops, AutoScalingError)
            result = handler(body)
        except AutoScalingError as exc:
            return awsjson.refusal(exc.code, exc.message, rid, CONTENT_TYPE)
        except StaleRecord:  # a cluster: another node changed the same record first
            return awsjson.refusal("ConcurrentUpdateException", "Another request changed this resource at the "
                                   "same time; describe it and try again.", rid, CONTENT_TYPE)
        return awsjson.answer(result, rid, CONTENT_TYPE)

    # -- targets --------------------------------------------------------------------------

    def op_RegisterScalableTarget(self, body: dict[str, Any]) -> dict[str, Any]:
        resource = _resource(body)
        suspended = _member(body, "SuspendedState", dict)
        tags = _member(body, "Tags", dict)
        arn = self.service.register(resource, _member(body, "MinCapacity", int), _member(body, "MaxCapacity", int),
                                    _member(body, "RoleARN", str), suspended, tags)
        self.runner.tick(self.runner.clock.now())  # a new Min takes effect at once
        return {"ScalableTargetARN": arn}

    def op_DeregisterScalableTarget(self, body: dict[str, Any]) -> dict[str, Any]:
        self.service.deregister(_resource(body))
        return {}

    def op_DescribeScalableTargets(self, body: dict[str, Any]) -> dict[str, Any]:
        _scope(body, resource=False)
        wanted = _member(body, "ResourceIds", list)
        items = [t for r, t in sorted(self.service.targets.items()) if wanted is None or r in wanted]
        chunk, token = _page(items, body)
        return _listed({}, "ScalableTargets", [target_shape(t) for t in chunk], token)

    # -- policies -------------------------------------------------------------------------

    def op_PutScalingPolicy(self, body: dict[str, Any]) -> dict[str, Any]:
        resource = _resource(body)
        name = _member(body, "PolicyName", str, True)
        kind = _member(body, "PolicyType", str) or "StepScaling"
        if kind != "TargetTrackingScaling":
            raise validation(f"rapid supports PolicyType TargetTrackingScaling for Lambda provisioned concurrency, "
                             f"not {kind}")
        config = _member(body, "TargetTrackingScalingPolicyConfiguration", dict)
        if config is None:
            raise validation("TargetTrackingScalingPolicyConfiguration is required for a TargetTrackingScaling policy")
        if config.get("CustomizedMetricSpecification") is not None:
            raise validation(f"rapid supports the predefined metric {METRIC}, not a customized metric")
        metric = _member(config, "PredefinedMetricSpecification", dict, True)
        if metric.get("PredefinedMetricType") != METRIC:
            raise validation(f"PredefinedMetricType {metric.get('PredefinedMetricType')!r} is not valid for "
                             f"lambda:function:ProvisionedConcurrency: use {METRIC}")
        value = _member(config, "TargetValue", (int, float), True)
        if not 0.1 <= value <= 0.9:
            raise validation(f"Target value {value} is out of range for {METRIC}: it must be between 0.1 and 0.9")
        cooldowns = [_member(config, k, int) for k in ("ScaleOutCooldown", "ScaleInCooldown")]
        if any(c is not None and c < 0 for c in cooldowns):
            raise validation("ScaleOutCooldown and ScaleInCooldown must be 0 or more")
        policy = self.service.put_policy(resource, name, float(value), cooldowns[0], cooldowns[1],
                                         bool(_member(config, "DisableScaleIn", bool)),
                                         _member(metric, "ResourceLabel", str))
        return {"PolicyARN": policy.arn, "Alarms": [{"AlarmName": n, "AlarmARN": a} for n, a in policy.alarms]}

    def op_DeleteScalingPolicy(self, body: dict[str, Any]) -> dict[str, Any]:
        resource = _resource(body)
        self.service.delete_policy(resource, _member(body, "PolicyName", str, True))
        return {}

    def op_DescribeScalingPolicies(self, body: dict[str, Any]) -> dict[str, Any]:
        resource = _scope(body, resource=False)
        names = _member(body, "PolicyNames", list)
        items = [p for r, ps in sorted(self.service.policies.items()) if resource in (None, r)
                 for n, p in sorted(ps.items()) if names is None or n in names]
        chunk, token = _page(items, body, 50)
        return _listed({}, "ScalingPolicies", [policy_shape(p) for p in chunk], token)

    # -- activities -----------------------------------------------------------------------

    def op_DescribeScalingActivities(self, body: dict[str, Any]) -> dict[str, Any]:
        resource = _scope(body, resource=False)
        rows: list[dict[str, Any]] = [activity_shape(a) for r, acts in self.service.activities.items()
                                      if resource in (None, r) for a in acts]
        if _member(body, "IncludeNotScaledActivities", bool):
            rows += [e for r, es in self.service.not_scaled.items() if resource in (None, r) for e in es]
        rows.sort(key=lambda a: a["StartTime"], reverse=True)  # newest first, as AWS lists them
        chunk, token = _page(rows, body)
        return _listed({}, "ScalingActivities", chunk, token)

    # -- scheduled actions ----------------------------------------------------------------

    def op_PutScheduledAction(self, body: dict[str, Any]) -> dict[str, Any]:
        resource = _resource(body)
        name = _member(body, "ScheduledActionName", str, True)
        if any(c in name for c in ":/|") or name != name.strip():
            raise validation(f"1 validation error detected: Value '{name}' at 'scheduledActionName' failed to "
                             "satisfy constraint: Member must not contain ':', '/' or '|', nor begin or end with a space")
        action = _member(body, "ScalableTargetAction", dict) or {}
        lo, hi = _member(action, "MinCapacity", int), _member(action, "MaxCapacity", int)
        self.service.put_action(resource, name, _member(body, "Schedule", str), _member(body, "Timezone", str),
                                _member(body, "StartTime", (int, float)), _member(body, "EndTime", (int, float)),
                                lo, hi)
        return {}

    def op_DeleteScheduledAction(self, body: dict[str, Any]) -> dict[str, Any]:
        resource = _resource(body)
        self.service.delete_action(resource, _member(body, "ScheduledActionName", str, True))
        return {}

    def op_DescribeScheduledActions(self, body: dict[str, Any]) -> dict[str, Any]:
        resource = _scope(body, resource=False)
        names = _member(body, "ScheduledActionNames", list)
        items = [a for r, acts in sorted(self.service.actions.items()) if resource in (None, r)
                 for n, a in sorted(acts.items()) if names is None or n in names]
        chunk, token = _page(items, body)
        return _listed({}, "ScheduledActions", [action_shape(a) for a in chunk], token)

    def __repr__(self) -> str:
        return f"<AutoScalingAPI {self.service!r}>"
