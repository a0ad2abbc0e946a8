"""Event source mappings of the Lambda REST API, on the built-in SQS queues and Kinesis streams.

===============================================================  ==========================
``POST   /2015-03-31/event-source-mappings``                       CreateEventSourceMapping (202)
``GET    /2015-03-31/event-source-mappings?FunctionName&EventSourceArn``  ListEventSourceMappings
``GET    /2015-03-31/event-source-mappings/{UUID}``                GetEventSourceMapping
``PUT    /2015-03-31/event-source-mappings/{UUID}``                UpdateEventSourceMapping (202)
``DELETE /2015-03-31/event-source-mappings/{UUID}``                DeleteEventSourceMapping (202)
===============================================================  ==========================

A request is checked as Lambda checks it (the batching rules of ``rapid.sources.batching``,
the filter syntax of ``rapid.sources.filters``, the stream retry limits of
``rapid.sources.stream_retry``), the mapping is written to the registry's store in state
``Creating`` / ``Updating`` / ``Deleting`` and answered; ``rapid.sources.pollers`` then
carries the change out and moves the state on (``Enabled``, ``Disabled``, or gone).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec

from rapid.api.shapes import Context, body_of, ok, page, query_of
from rapid.core.errors import ServiceError, invalid_parameter, resource_conflict, resource_not_found, validation
from rapid.core.naming import parse_function_name
from rapid.core.routing import LATEST
from rapid.http.message import Request, Response
from rapid.http.router import Router
from rapid.registry.mappings import Mapping
from rapid.sources import batching, filters, stream_retry
from rapid.sources.pollers import Pollers

BASE = "/2015-03-31/event-source-mappings"
REPORT = "ReportBatchItemFailures"
_STARTS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
_SQS_ONLY = ("ScalingConfig",)
_STREAM_ONLY = ("StartingPosition", "StartingPositionTimestamp", "BisectBatchOnFunctionError",
                "MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "ParallelizationFactor",
                "TumblingWindowInSeconds", "DestinationConfig")


def _int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise validation(f"1 validation error detected: Value '{value}' at '{key[0].lower() + key[1:]}' failed to "
                         "satisfy constraint: Member must be of type integer")
    return value


class MappingsAPI:
    def __init__(self, ctx: Context, pollers: Pollers) -> None:
        self.ctx = ctx
        self.pollers = pollers
        self.store = pollers.store

    def routes(self, router: Router) -> None:
        router.add("POST", BASE, self.create)
        router.add("GET", BASE, self.list)
        router.add("GET", BASE + "/{uuid}", self.get)
        router.add("PUT", BASE + "/{uuid}", self.update)
        router.add("DELETE", BASE + "/{uuid}", self.delete)

    # -- shapes ---------------------------------------------------------------------------

    def shape(self, m: Mapping) -> dict[str, Any]:
        ctx = self.ctx
        out: dict[str, Any] = {
            "UUID": m.uuid,
            "BatchSize": m.batch_size,
            "MaximumBatchingWindowInSeconds": m.window,
            "EventSourceArn": m.source_arn,
            "FunctionArn": ctx.registry.arn(m.function, m.qualifier),
            "LastModified": m.modified,
            "State": m.state,
            # AWS's own words: SQS mappings say USER_INITIATED, stream mappings "User action"
            "StateTransitionReason": "USER_INITIATED" if m.kind == "sqs" else "User action",
            "FunctionResponseTypes": list(m.response_types),
            "EventSourceMappingArn": f"arn:aws:lambda:{ctx.region}:{ctx.account}:event-source-mapping:{m.uuid}",
        }
        if m.filters:
            out["FilterCriteria"] = {"Filters": [{"Pattern": p} for p in m.filters]}
        if m.kind == "sqs":
            if m.max_concurrency is not None:
                out["ScalingConfig"] = {"MaximumConcurrency": m.max_concurrency}
        else:
            out.update(StartingPosition=m.starting_position, ParallelizationFactor=m.parallelization,
                       BisectBatchOnFunctionError=m.bisect, MaximumRetryAttempts=m.max_retries,
                       MaximumRecordAgeInSeconds=m.max_age, TumblingWindowInSeconds=m.tumbling_window,
                       LastProcessingResult=stats.last_result if (stats := self.pollers.stats.get(m.uuid))
                       else m.last_result,
                       DestinationConfig={"OnFailure": {"Destination": m.on_failure} if m.on_failure else {}})
            if m.starting_timestamp is not None:
                out["StartingPositionTimestamp"] = m.starting_timestamp
        return out

    # -- checks ---------------------------------------------------------------------------

    def _function(self, raw: Any) -> tuple[str, str | None]:
        if not isinstance(raw, str) or not raw:
            raise validation("1 validation error detected: Value null at 'functionName' failed to satisfy "
                             "constraint: Member must not be null")
        name, qualifier = self.ctx.target(raw)
        self.ctx.spec(name, qualifier)  # 404 for an unknown version or alias
        return name, (None if qualifier == LATEST else qualifier)

    def _source(self, arn: Any) -> tuple[str, str]:
        """(kind, queue or stream name) of a built-in source's ARN."""
        if not isinstance(arn, str) or not arn:
            raise invalid_parameter("Unrecognized event source, must be kafka or specify an EventSourceArn.")
        parts = arn.split(":")
        if len(parts) == 6 and parts[:3] == ["arn", "aws", "sqs"]:
            if parts[5] not in self.pollers.queues.service.queues:
                raise invalid_parameter(f"Error occurred while ReceiveMessage. SQS Error Code: "
                                        f"AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified "
                                        f"queue does not exist for this wsdl version. ({arn})")
            return "sqs", parts[5]
        if len(parts) == 6 and parts[:3] == ["arn", "aws", "kinesis"] and parts[5].startswith("stream/"):
            name = parts[5][len("stream/"):]
            if name not in self.pollers.streams.service.streams:
                raise invalid_parameter(f"Stream not found: {arn}")
            return "kinesis", name
        raise invalid_parameter(f"Unrecognized event source: {arn}. rapid maps its built-in SQS queues "
                                "(arn:aws:sqs:...) and Kinesis streams (arn:aws:kinesis:...:stream/NAME).")

    def _settings(self, body: dict[str, Any], kind: str, queue: str, current: Mapping | None) -> dict[str, Any]:
        """The fields of a Mapping that ``body`` sets, checked against what the rest will be."""
        out: dict[str, Any] = {}
        for key in (_STREAM_ONLY if kind == "sqs" else _SQS_ONLY):
            if body.get(key) is not None:
                raise invalid_parameter(f"Unsupported {key} parameter for {'SQS' if kind == 'sqs' else 'Kinesis'} "
                                        "event source.")
        size, window = _int(body, "BatchSize"), _int(body, "MaximumBatchingWindowInSeconds")
        size = size if size is not None else (current.batch_size if current else None)
        window = window if window is not None else (current.window if current else None)
        try:
            if kind == "sqs":
                fifo = self.pollers.queues.service.queues[queue].fifo if queue in self.pollers.queues.service.queues \
                    else False
                policy = batching.sqs_policy(size, window, fifo)
            else:
                policy = batching.kinesis_policy(size, window)
        except batching.BatchingError as exc:
            raise invalid_parameter(str(exc)) from None
        out.update(batch_size=policy.batch_size, window=int(policy.window))
        if "Enabled" in body:
            if not isinstance(body["Enabled"], bool):
                raise validation("1 validation error detected: Value at 'enabled' failed to satisfy constraint: "
                                 "Member must be a boolean")
            out["enabled"] = body["Enabled"]
        if "FilterCriteria" in body:
            try:
                patterns = filters.parse_criteria(body["FilterCriteria"])
            except filters.FilterError as exc:
                raise invalid_parameter(exc.message) from None
            out["filters"] = tuple(f["Pattern"] for f in (body["FilterCriteria"] or {}).get("Filters", []))
            assert len(out["filters"]) == len(patterns)
        if "FunctionResponseTypes" in body:
            types = body["FunctionResponseTypes"] or []
            if not isinstance(types, list) or any(t != REPORT for t in types):
                raise validation(f"1 validation error detected: Value '{types}' at 'functionResponseTypes' failed to "
                                 f"satisfy constraint: Member must satisfy enum value set: [{REPORT}]")
            out["response_types"] = tuple(dict.fromkeys(types))
        if kind == "sqs":
            scaling = body.get("ScalingConfig")
            if scaling is not None:
                value = scaling.get("MaximumConcurrency") if isinstance(scaling, dict) else None
                if value is not None and (not isinstance(value, int) or not 2 <= value <= 1000):
                    raise validation(f"1 validation error detected: Value '{value}' at 'scalingConfig."
                                     "maximumConcurrency' failed to satisfy constraint: Member must have value "
                                     "between 2 and 1000")
                out["max_concurrency"] = value
            return out
        self._stream_settings(body, current, out)
        return out

    def _stream_settings(self, body: dict[str, Any], current: Mapping | None, out: dict[str, Any]) -> None:
        if current is None:
            start = body.get("StartingPosition")
            if start is None:
                raise invalid_parameter("StartingPosition is required for an event source of type Kinesis.")
            if start not in _STARTS:
                raise validation(f"1 validation error detected: Value '{start}' at 'startingPosition' failed to "
                                 f"satisfy constraint: Member must satisfy enum value set: [{', '.join(_STARTS)}]")
            stamp = body.get("StartingPositionTimestamp")
            if start == "AT_TIMESTAMP" and not isinstance(stamp, (int, float)):
                raise invalid_parameter("StartingPositionTimestamp must be provided for AT_TIMESTAMP.")
            out.update(starting_position=start, starting_timestamp=float(stamp) if start == "AT_TIMESTAMP" else None)
        elif body.get("StartingPosition") is not None:
            raise invalid_parameter("StartingPosition cannot be changed: delete and create the mapping.")
        retries = _int(body, "MaximumRetryAttempts")
        age = _int(body, "MaximumRecordAgeInSeconds")
        bisect = body.get("BisectBatchOnFunctionError")
        try:
            policy = stream_retry.check_policy(
                bisect if bisect is not None else (current.bisect if current else False),
                retries if retries is not None else (current.max_retries if current else None),
                age if age is not None else (current.max_age if current else None))
        except ValueError as exc:
            raise invalid_parameter(str(exc)) from None
        out.update(bisect=policy.bisect, max_retries=policy.max_retries, max_age=policy.max_age)
        factor = _int(body, "ParallelizationFactor")
        if factor is not None:
            if not 1 <= factor <= 10:
                raise validation(f"1 validation error detected: Value '{factor}' at 'parallelizationFactor' failed to "
                                 "satisfy constraint: Member must have value between 1 and 10")
            out["parallelization"] = factor
        tumbling = _int(body, "TumblingWindowInSeconds")
        if tumbling is not None:
            if not 0 <= tumbling <= 900:
                raise validation(f"1 validation error detected: Value '{tumbling}' at 'tumblingWindowInSeconds' failed "
                                 "to satisfy constraint: Member must have value between 0 and 900")
            out["tumbling_window"] = tumbling
        dest = body.get("DestinationConfig")
        if dest is not None:
            target = ((dest or {}).get("OnFailure") or {}).get("Destination") if isinstance(dest, dict) else None
            if target is not None:
                self._destination(target)
            out["on_failure"] = target or None

    def _destination(self, arn: Any) -> None:
        ctx = self.ctx
        if isinstance(arn, str) and arn.startswith("arn:aws:sqs:"):
            if arn.rsplit(":", 1)[-1] not in self.pollers.queues.service.queues:
                raise invalid_parameter(f"The destination queue does not exist: {arn}")
            return
        if isinstance(arn, str) and arn.startswith("arn:aws:lambda:"):
            ctx.target(arn)
            return
        raise invalid_parameter(f"The provided destination config DestinationConfig(onFailure=OnFailure("
                                f"destination={arn})) is invalid: rapid delivers to a built-in SQS queue or a "
                                "function.")

    def _find(self, params: dict[str, str]) -> Mapping:
        m = self.store.mappings.get(params["uuid"])
        if m is None:
            raise resource_not_found()
        return m

    # -- operations -----------------------------------------------------------------------

    def create(self, req: Request, params: dict[str, str], rid: str) -> Response:
        body = body_of(req)
        name, qualifier = self._function(body.get("FunctionName"))
        kind, source = self._source(body.get("EventSourceArn"))
        arn = body["EventSourceArn"]
        for other in self.store.mappings.values():
            if other.source_arn == arn and other.function == name and other.qualifier == qualifier:
                raise resource_conflict(
                                   f"An event source mapping with {'SQS' if kind == 'sqs' else 'Kinesis'} arn (\" "
                                   f"{arn} \") and function (\" {name} \") already exists. Please update or delete "
                                   f"the existing mapping with UUID {other.uuid}")
        fields = self._settings(body, kind, source, None)
        if kind == "sqs":
            self._check_visibility(source, name, qualifier)
        m = Mapping(uuid=str(uuid.uuid4()), function=name, qualifier=qualifier, source_arn=arn, kind=kind,
                    modified=time.time(), state="Creating", **fields)
        self.store.put(m)
        self.pollers.settle_soon(m.uuid)
        return ok(202, self.shape(m), rid)

    def _check_visibility(self, queue: str, name: str, qualifier: str | None) -> None:
        q = self.pollers.queues.service.queues[queue]
        timeout = self.ctx.spec(name, qualifier).settings.timeout
        visibility = q.int_attr("VisibilityTimeout")
        if visibility < timeout:
            raise invalid_parameter(f"Queue visibility timeout: {visibility} seconds is less than Function timeout: "
                                    f"{timeout} seconds")

    def _exists(self, name: str, qualifier: str | None) -> bool:
        try:
            self.ctx.spec(name, qualifier)
        except ServiceError:
            return False
        return True

    def get(self, req: Request, params: dict[str, str], rid: str) -> Response:
        return ok(200, self.shape(self._find(params)), rid)

    def list(self, req: Request, params: dict[str, str], rid: str) -> Response:
        query = query_of(req)
        items = sorted(self.store.mappings.values(), key=lambda m: (m.modified, m.uuid))
        if query.get("EventSourceArn"):
            items = [m for m in items if m.source_arn == query["EventSourceArn"]]
        if query.get("FunctionName"):
            t = parse_function_name(query["FunctionName"], None, self.ctx.region, self.ctx.account)
            # the mappings of a deleted function are still listed (they outlive it, as on AWS)
            name, qualifier = (t.name, t.qualifier) if any(m.function == t.name for m in items) \
                else self.ctx.target(query["FunctionName"])
            items = [m for m in items if m.function == name and (qualifier is None or m.qualifier == qualifier)]
        chunk, marker = page(items, query, None)
        out: dict[str, Any] = {"EventSourceMappings": [self.shape(m) for m in chunk]}
        if marker:
            out["NextMarker"] = marker
        return ok(200, out, rid)

    def update(self, req: Request, params: dict[str, str], rid: str) -> Response:
        m = self._find(params)
        if m.state not in ("Enabled", "Disabled"):
            raise ServiceError(409, "ResourceInUseException",
                               f"Cannot update the event source mapping because it is in use. State: {m.state}")
        body = body_of(req)
        changes: dict[str, Any] = {}
        if body.get("FunctionName") is not None:
            changes["function"], changes["qualifier"] = self._function(body["FunctionName"])
        queue = m.source_arn.rsplit(":", 1)[-1]
        changes.update(self._settings(body, m.kind, queue, m))
        new = msgspec.structs.replace(m, **changes, state="Updating", modified=time.time())
        if m.kind == "sqs" and ("function" in changes or self._exists(new.function, new.qualifier)):
            self._check_visibility(queue, new.function, new.qualifier)  # (a mapping outlives its function)
        self.store.put(new)
        self.pollers.settle_soon(m.uuid)
        return ok(202, self.shape(new), rid)

    def delete(self, req: Request, params: dict[str, str], rid: str) -> Response:
        m = self._find(params)
        if m.state == "Deleting":
            raise ServiceError(409, "ResourceInUseException",
                               "Cannot delete the event source mapping because it is in use.")
        gone = msgspec.structs.replace(m, state="Deleting", modified=time.time())
        self.store.put(gone)
        self.pollers.settle_soon(m.uuid)
        return ok(202, self.shape(gone), rid)

    def __repr__(self) -> str:
        return f"<MappingsAPI {self.store!r}>"
