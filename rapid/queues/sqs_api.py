"""SQS's JSON protocol on rapid's port: ``POST /`` with ``X-Amz-Target: AmazonSQS.<Op>``
and ``Content-Type: application/x-amz-json-1.0``, as botocore (since 1.31) and the AWS CLI
send it.

Each operation checks its input, runs on the core (``sqs.Service``, held by
``sqs_live.LiveQueues``) and, if the core changed anything, answers only once the change is
committed. A ReceiveMessage that finds nothing and may wait (``WaitTimeSeconds`` or the
queue's ``ReceiveMessageWaitTimeSeconds``) parks a waiter on the live queues.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec

from rapid.queues import md5
from rapid.queues import sqs_checks as checks
from rapid.queues import sqs_errors as err
from rapid.queues.sqs_errors import SqsError
from rapid.queues.sqs_live import LiveQueues, Waiter
from rapid.queues.sqs_model import Message, Queue

CONTENT_TYPE = "application/x-amz-json-1.0"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


_WRONG_TYPE = (TypeError, AttributeError, KeyError, ValueError)  # what a member of the wrong type raises


def _failed_entry(entry_id: str, exc: BaseException) -> dict[str, Any]:
    if not isinstance(exc, SqsError):
        exc = err.serialization(f"A member of entry {entry_id} does not have the expected type.")
    return {"Id": entry_id, "SenderFault": True, "Code": exc.query_code, "Message": exc.message}


def error_response(exc: SqsError, rid: str) -> tuple[int, bytes, list[tuple[str, str]]]:
    body = _encode({"__type": exc.type, "message": exc.message})
    return exc.status, body, [("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", rid),
                              ("x-amzn-query-error", f"{exc.query_code};{exc.fault}")]


class SqsAPI:
    def __init__(self, live: LiveQueues) -> None:
        from rapid.http.message import Response

        self._Response = Response
        self.live = live
        self.service = live.service
        self.clock = live.clock
        self._rid = ""
        self._ops: dict[str, Callable[[dict[str, Any], Any, float], Any]] = {
            name: getattr(self, "op_" + name) for name in (
                "CreateQueue", "GetQueueUrl", "GetQueueAttributes", "SetQueueAttributes", "ListQueues",
                "DeleteQueue", "PurgeQueue", "SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage",
                "DeleteMessageBatch", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch",
                "ListDeadLetterSourceQueues", "TagQueue", "UntagQueue", "ListQueueTags")}

    def __repr__(self) -> str:
        return f"<SqsAPI {self.live!r}>"

    # -- the edge -------------------------------------------------------------------------

    def __call__(self, req: Any, rid: str) -> Any:
        op = req.headers.get("x-amz-target", "").partition(".")[2]
        try:
            handler = self._ops.get(op)
            if handler is None:
                raise err.unknown_operation(op)
            try:
                body = _decode(req.body) if req.body else {}
            except msgspec.DecodeError:
                raise err.serialization("The request body is not valid JSON.") from None
            if not isinstance(body, dict):
                raise err.serialization("The request body must be a JSON object.")
            self._rid = rid
            try:
                result = handler(body, req, self.clock())
            except _WRONG_TYPE as exc:  # a member of the wrong type
                raise err.serialization(f"A member of the request does not have the type {op} expects "
                                        f"({type(exc).__name__}: {exc}).") from None
        except SqsError as exc:
            self.live.discard()
            return self._Response(*error_response(exc, rid))
        if isinstance(result, asyncio.Future):
            return result
        return self._commit(result, rid)

    def _answer(self, obj: dict[str, Any], rid: str) -> Any:
        return self._Response(200, _encode(obj), [("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", rid)])

    def _commit(self, obj: dict[str, Any], rid: str, future: asyncio.Future[Any] | None = None) -> Any:
        """Answer ``obj`` once the core's changes are on disk (at once if there are none)."""
        if not self.service.changes and future is None:
            return self._answer(obj, rid)
        fut = future if future is not None else self.live.create_future()

        def done(exc: BaseException | None) -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_result(self._Response(*error_response(
                    SqsError("com.amazon.coral.service#InternalFailure", "InternalFailure",
                             f"The queue store failed: {exc}", 500, "Receiver"), rid)))
            else:
                fut.set_result(self._answer(obj, rid))

        if not self.live.commit(done):
            done(None)
        return fut

    def _queue(self, body: dict[str, Any]) -> Queue:
        url = body.get("QueueUrl")
        if not isinstance(url, str) or not url:
            raise err.missing_parameter("QueueUrl")
        name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] if "/" in url else url
        return self.service.get(name)

    def _url(self, req: Any, name: str) -> str:
        return f"http://{req.headers.get('host', 'localhost')}/{self.service.account}/{name}"

    # -- queues ---------------------------------------------------------------------------

    def op_CreateQueue(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        existed = isinstance(body.get("QueueName"), str) and body["QueueName"] in self.service.queues
        q = self.service.create_queue(body.get("QueueName"), body.get("Attributes"), now)
        if body.get("tags") and not existed:
            self.service.tag(q, body["tags"])
        return {"QueueUrl": self._url(req, q.name)}

    def op_TagQueue(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        self.service.tag(self._queue(body), body.get("Tags"))
        return {}

    def op_UntagQueue(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        self.service.untag(self._queue(body), body.get("TagKeys"))
        return {}

    def op_ListQueueTags(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        tags = self._queue(body).tags
        return {"Tags": dict(tags)} if tags else {}

    def op_GetQueueUrl(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        name = body.get("QueueName")
        if not isinstance(name, str) or not name:
            raise err.missing_parameter("QueueName")
        return {"QueueUrl": self._url(req, self.service.get(name).name)}

    def op_GetQueueAttributes(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        attrs = self.service.attributes(self._queue(body), body.get("AttributeNames"), now)
        return {"Attributes": attrs} if attrs else {}

    def op_SetQueueAttributes(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        q = self._queue(body)
        if not body.get("Attributes"):
            raise err.missing_parameter("Attributes")
        self.service.set_attributes(q, body["Attributes"], now)
        return {}

    def op_ListQueues(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        prefix = body.get("QueueNamePrefix") or ""
        names = sorted(n for n in self.service.queues if n.startswith(prefix))
        limit = body.get("MaxResults")
        start = 0
        if body.get("NextToken"):
            try:
                start = int(body["NextToken"])
            except ValueError:
                raise err.invalid_parameter("Invalid NextToken value.") from None
        if limit is not None:
            limit = checks.integer("MaxResults", limit, 1, 1000, "MaxResults must be an integer between 1 and 1000.")
        end = len(names) if limit is None else start + limit
        out: dict[str, Any] = {}
        if names[start:end]:
            out["QueueUrls"] = [self._url(req, n) for n in names[start:end]]
        if limit is not None and end < len(names):
            out["NextToken"] = str(end)
        return out

    def op_ListDeadLetterSourceQueues(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        arn = self.service.arn(self._queue(body).name)
        urls = [self._url(req, q.name) for q in self.service.queues.values()
                if (q.redrive or {}).get("deadLetterTargetArn") == arn]
        return {"queueUrls": sorted(urls)}

    def op_DeleteQueue(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        q = self._queue(body)
        self.service.delete_queue(q)
        self.live.drop_queue(q.name)
        return {}

    def op_PurgeQueue(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        self.service.purge(self._queue(body))
        return {}

    # -- messages -------------------------------------------------------------------------

    def _sent(self, sent: Any) -> dict[str, Any]:
        out = {"MD5OfMessageBody": sent.md5_body, "MessageId": sent.message_id}
        if sent.md5_attributes:
            out["MD5OfMessageAttributes"] = sent.md5_attributes
        if sent.md5_system:
            out["MD5OfMessageSystemAttributes"] = sent.md5_system
        if sent.sequence_number:
            out["SequenceNumber"] = sent.sequence_number
        return out

    def op_SendMessage(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        return self._sent(self.service.send(self._queue(body), body, now))

    def op_SendMessageBatch(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        q = self._queue(body)
        entries = checks.batch_ids(body.get("Entries"), "SendMessageBatchRequestEntry")
        size = sum(len(str(e.get("MessageBody", "")).encode()) + checks.attributes_size(
            _attrs_or_empty(e.get("MessageAttributes"))) for e in entries)
        if size > checks.MAX_MESSAGE_SIZE:
            raise err.batch_too_long(size, checks.MAX_MESSAGE_SIZE)
        ok, failed = [], []
        for e in entries:
            try:
                ok.append({"Id": e["Id"], **self._sent(self.service.send(q, e, now))})
            except (SqsError, *_WRONG_TYPE) as exc:  # this entry fails alone; the others stand
                failed.append(_failed_entry(e["Id"], exc))
        return {"Successful": ok, "Failed": failed}

    def op_DeleteMessage(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        self.service.delete(self._queue(body), body.get("ReceiptHandle"))
        return {}

    def op_DeleteMessageBatch(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        q = self._queue(body)
        return self._batch(body, "DeleteMessageBatchRequestEntry",
                           lambda e: self.service.delete(q, e.get("ReceiptHandle")))

    def op_ChangeMessageVisibility(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        q = self._queue(body)
        self.service.change_visibility(q, body.get("ReceiptHandle"), body.get("VisibilityTimeout"), now)
        return {}  # waiters are woken once the change is committed

    def op_ChangeMessageVisibilityBatch(self, body: dict[str, Any], req: Any, now: float) -> dict[str, Any]:
        q = self._queue(body)
        return self._batch(body, "ChangeMessageVisibilityBatchRequestEntry", lambda e: self.service.change_visibility(
            q, e.get("ReceiptHandle"), e.get("VisibilityTimeout"), now))

    def _batch(self, body: dict[str, Any], entry: str, apply: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        ok, failed = [], []
        for e in checks.batch_ids(body.get("Entries"), entry):
            try:
                apply(e)
                ok.append({"Id": e["Id"]})
            except (SqsError, *_WRONG_TYPE) as exc:
                failed.append(_failed_entry(e["Id"], exc))
        return {"Successful": ok, "Failed": failed}

    def op_ReceiveMessage(self, body: dict[str, Any], req: Any, now: float) -> Any:
        q = self._queue(body)
        limit = checks.integer("MaxNumberOfMessages", body.get("MaxNumberOfMessages", 1), 1, 10)
        visibility = body.get("VisibilityTimeout")
        if visibility is not None:
            visibility = checks.integer("VisibilityTimeout", visibility, 0, 43200)
        wait = body.get("WaitTimeSeconds")
        wait = q.int_attr("ReceiveMessageWaitTimeSeconds") if wait is None else checks.integer(
            "WaitTimeSeconds", wait, 0, 20)
        names = [*(body.get("AttributeNames") or []), *(body.get("MessageSystemAttributeNames") or [])]
        for n in names:
            if n != "All" and n not in checks.SYSTEM_ATTRIBUTES:
                raise err.invalid_attribute_name(n)
        wanted_attrs = body.get("MessageAttributeNames") or []
        render = self._renderer(q, names, wanted_attrs)
        messages = self.service.receive(q, limit, visibility, now)
        if messages or wait == 0:
            return render(messages)
        fut = self.live.create_future()
        rid = self._rid
        self.live.park(Waiter(fut, q.name, limit, visibility, lambda ms: self._commit(render(ms), rid, fut)), wait)
        return fut

    def _renderer(self, q: Queue, names: list[str], wanted: list[str]) -> Callable[[list[Message]], dict[str, Any]]:
        every = "All" in names
        account = self.service.account

        def pick(name: str) -> bool:
            return any(w in ("All", ".*") or w == name or (w.endswith(".*") and name.startswith(w[:-1]))
                       for w in wanted)

        def render(messages: list[Message]) -> dict[str, Any]:
            out = []
            for m in messages:
                item: dict[str, Any] = {"MessageId": m.id, "ReceiptHandle": m.receipt, "MD5OfBody": md5.of_body(m.body),
                                        "Body": m.body}
                system = {"SenderId": account, "SentTimestamp": str(int(m.sent * 1000)),
                          "ApproximateReceiveCount": str(m.receive_count),
                          "ApproximateFirstReceiveTimestamp": str(int((m.first_receive or m.sent) * 1000))}
                if m.sequence_number:
                    system["SequenceNumber"] = m.sequence_number
                if q.fifo and m.dedup:
                    system["MessageDeduplicationId"] = m.dedup
                if m.group:
                    system["MessageGroupId"] = m.group
                if "AWSTraceHeader" in m.system:
                    system["AWSTraceHeader"] = m.system["AWSTraceHeader"]["StringValue"]
                if m.source_arn:
                    system["DeadLetterQueueSourceArn"] = m.source_arn
                chosen = {k: v for k, v in system.items() if every or k in names}
                if chosen:
                    item["Attributes"] = chosen
                attrs = {k: v for k, v in m.attributes.items() if pick(k)}
                if attrs:
                    item["MD5OfMessageAttributes"] = md5.of_attributes(attrs)
                    item["MessageAttributes"] = attrs
                out.append(item)
            return {"Messages": out} if out else {}

        return render


def _attrs_or_empty(value: Any) -> dict[str, dict[str, str]]:
    try:
        return checks.message_attributes(value)
    except SqsError:
        return {}
