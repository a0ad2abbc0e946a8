"""The CloudWatch Logs API subset that tools use, on rapid's port (``X-Amz-Target:
Logs_20140328.*``, JSON 1.1), over the logs ``rapid.logs.store`` keeps.

==========================  ===============================================================
DescribeLogGroups           ``/aws/lambda/<function>`` for each function with logs or served
DescribeLogStreams          one per instance: ``2026/12/01/[$LATEST]<instance id>``
GetLogEvents                one stream's events (startFromHead, f/ and b/ tokens)
FilterLogEvents             every stream's (or logStreamNames'), in time order, filterPattern
==========================  ===============================================================

``aws logs tail GROUP [--follow]`` (AWS CLI v2) calls FilterLogEvents alone: with
``startTime`` from ``--since``, ``interleaved``, and, following, the same call every five
seconds from the newest timestamp it saw, dropping the event ids it already printed; so
event ids here are stable. Messages end with a newline, as Lambda's do. An unknown group is
``ResourceNotFoundException`` "The specified log group does not exist.".
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from rapid.api import awsjson
from rapid.http.message import Request, Response
from rapid.logs import filter_pattern
from rapid.logs.store import LogReader, LogStore, StreamInfo

CONTENT_TYPE = "application/x-amz-json-1.1"
PREFIX = "/aws/lambda/"
MAX_EVENTS = 10000


class LogsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _token(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()


def _untoken(text: Any) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(str(text).encode()))
    except ValueError:
        raise LogsError("InvalidParameterException", "The specified nextToken is invalid.") from None


class LogsAPI:
    def __init__(self, store: LogStore | None, reader: LogReader, functions: Callable[[], list[str]],
                 region: str, account: str) -> None:
        self.store = store
        self.reader = reader
        self.functions = functions  # the names served now: their groups exist even before a line
        self.region, self.account = region, account
        self._ops = {"DescribeLogGroups": self.describe_groups, "DescribeLogStreams": self.describe_streams,
                     "GetLogEvents": self.get_events, "FilterLogEvents": self.filter_events}

    def __call__(self, req: Request, rid: str) -> Response:
        try:
            _, handler, body = awsjson.read(req, self._ops, LogsError)
            if self.store is not None:
                self.store.flush()  # what was written a moment ago is readable now
            return awsjson.answer(handler(body), rid, CONTENT_TYPE)
        except LogsError as exc:
            return awsjson.refusal(exc.code, exc.message, rid, CONTENT_TYPE, exc.status)

    # -- groups and streams ---------------------------------------------------------------

    def _arn(self, group: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account}:log-group:{group}"

    def _function(self, body: dict[str, Any]) -> str:
        group = body.get("logGroupName") or body.get("logGroupIdentifier")
        if not isinstance(group, str) or not group:
            raise LogsError("InvalidParameterException", "Either logGroupName or logGroupIdentifier is required.")
        if group.startswith("arn:"):
            group = group.split(":log-group:", 1)[-1].removesuffix(":*")
        name = group.removeprefix(PREFIX)
        if not group.startswith(PREFIX) or (name not in self.reader.functions() and name not in self.functions()):
            raise LogsError("ResourceNotFoundException", "The specified log group does not exist.")
        return name

    def describe_groups(self, body: dict[str, Any]) -> dict[str, Any]:
        names = sorted(set(self.reader.functions()) | set(self.functions()))
        prefix = body.get("logGroupNamePrefix") or ""
        groups = []
        for name in names:
            group = PREFIX + name
            if not group.startswith(prefix):
                continue
            streams = self.reader.streams(name)
            groups.append({"logGroupName": group, "creationTime": min((s.first for s in streams if s.first),
                                                                       default=0),
                           "metricFilterCount": 0, "arn": self._arn(group) + ":*", "logGroupArn": self._arn(group),
                           "storedBytes": sum(s.size for s in streams), "logGroupClass": "STANDARD"})
        return self._page(groups, body, "logGroups", 50)

    def describe_streams(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._function(body)
        streams = self.reader.streams(name)
        prefix = body.get("logStreamNamePrefix")
        order = body.get("orderBy", "LogStreamName")
        if prefix and order == "LastEventTime":
            raise LogsError("InvalidParameterException",
                            "Cannot order by LastEventTime with a logStreamNamePrefix.")
        if prefix:
            streams = [s for s in streams if s.name.startswith(prefix)]
        key: Callable[[StreamInfo], Any] = (lambda s: s.last) if order == "LastEventTime" else (lambda s: s.name)
        streams.sort(key=key, reverse=bool(body.get("descending")))
        group = PREFIX + name
        out = [{"logStreamName": s.name, "creationTime": s.first, "firstEventTimestamp": s.first,
                "lastEventTimestamp": s.last, "lastIngestionTime": s.last, "uploadSequenceToken": "1",
                "arn": f"{self._arn(group)}:log-stream:{s.name}", "storedBytes": s.size} for s in streams]
        return self._page(out, body, "logStreams", 50)

    @staticmethod
    def _page(items: list[Any], body: dict[str, Any], key: str, default: int) -> dict[str, Any]:
        start = int(_untoken(body["nextToken"])) if body.get("nextToken") else 0
        limit = int(body.get("limit") or default)
        out: dict[str, Any] = {key: items[start:start + limit]}
        if start + limit < len(items):
            out["nextToken"] = _token(start + limit)
        return out

    # -- events ---------------------------------------------------------------------------

    def get_events(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._function(body)
        stream = body.get("logStreamName")
        found = [s for s in self.reader.streams(name) if s.name == stream]
        if not found:
            raise LogsError("ResourceNotFoundException", "The specified log stream does not exist.")
        events = self.reader.events(name, found, body.get("startTime"), body.get("endTime"))
        limit = min(int(body.get("limit") or MAX_EVENTS), MAX_EVENTS)
        token = body.get("nextToken")
        if token:
            direction, _, index = str(token).partition("/")
            at = int(index) if index.isdigit() else 0
            chosen = (events[at:at + limit], at) if direction == "f" else (events[max(0, at - limit):at],
                                                                            max(0, at - limit))
        elif body.get("startFromHead"):
            chosen = (events[:limit], 0)
        else:
            chosen = (events[-limit:], max(0, len(events) - limit))
        page, first = chosen
        return {"events": [{"timestamp": e.timestamp, "message": e.message + "\n", "ingestionTime": e.timestamp}
                           for e in page],
                "nextForwardToken": f"f/{first + len(page)}", "nextBackwardToken": f"b/{first}"}

    def filter_events(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._function(body)
        streams = self.reader.streams(name)
        if body.get("logStreamNames"):
            wanted = set(body["logStreamNames"])
            streams = [s for s in streams if s.name in wanted]
        if body.get("logStreamNamePrefix"):
            streams = [s for s in streams if s.name.startswith(body["logStreamNamePrefix"])]
        pattern = filter_pattern.parse(body.get("filterPattern"))
        start = int(body["startTime"]) if body.get("startTime") is not None else None
        end = int(body["endTime"]) if body.get("endTime") is not None else None
        after = _untoken(body["nextToken"]) if body.get("nextToken") else None
        limit = min(int(body.get("limit") or MAX_EVENTS), MAX_EVENTS)
        out: list[Any] = []
        more = False
        for e in self.reader.events(name, streams, start, end):
            if after is not None and (e.timestamp, e.stream, e.event_id) <= tuple(after):
                continue
            if not pattern.matches(e.message):
                continue
            if len(out) == limit:
                more = True
                break
            out.append(e)
        answer: dict[str, Any] = {
            "events": [{"logStreamName": e.stream, "timestamp": e.timestamp, "message": e.message + "\n",
                        "ingestionTime": e.timestamp, "eventId": e.event_id} for e in out],
            "searchedLogStreams": [{"logStreamName": s.name, "searchedCompletely": True} for s in streams],
        }
        if more and out:
            answer["nextToken"] = _token([out[-1].timestamp, out[-1].stream, out[-1].event_id])
        return answer

    def __repr__(self) -> str:
        return f"<LogsAPI {self.reader!r}>"
