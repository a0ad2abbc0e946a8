"""The queues' semantics: a pure core, the clock (``now``, epoch seconds) and the source of
message ids passed in; no I/O.

Theory of operation
-------------------
A ``Queue`` holds its messages in send order. A message is in one of three states, all
derived from two fields:

=============  ==============================================  ============================
state          condition                                       counted as
=============  ==============================================  ============================
delayed        never received, ``visible_at > now``            ...NumberOfMessagesDelayed
visible        ``visible_at <= now``                           ApproximateNumberOfMessages
in flight      received at least once, ``visible_at > now``    ...NumberOfMessagesNotVisible
=============  ==============================================  ============================

``receive`` walks the queue in order, takes visible messages (a receive makes a message in
flight for the visibility timeout and gives it a new receipt handle), and moves a message
whose receive count already reached the redrive policy's ``maxReceiveCount`` to the
dead-letter queue instead of delivering it again. On a FIFO queue a message group with a
message in flight (or delayed) is closed: none of its later messages is delivered until
that one is deleted or visible again, so a group is consumed in order, one batch at a time.
Deduplication (FIFO): a ``MessageDeduplicationId`` (or the SHA-256 of the body when
``ContentBasedDeduplication`` is on) seen in the last 5 minutes answers the first send's
message id and adds nothing.

Every change is appended to ``Service.changes`` (``("queue", q)``, ``("drop", name)``,
``("put", q, m)``, ``("delete", id, q)``, ``("dedup", q, key, record)``): the store writes them,
and the edge answers only after they are committed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from rapid.queues import md5
from rapid.queues import sqs_checks as checks
from rapid.queues import sqs_errors as err
from rapid.queues.sqs_model import Message, Queue, Sent, parse_receipt, receipt_handle

DEDUP_WINDOW = 300.0
SWEEP_EVERY = 1.0


class Service:
    """Every queue of one account and region."""

    def __init__(self, region: str, account: str, new_id: Callable[[], str]) -> None:
        self.region = region
        self.account = account
        self.new_id = new_id
        self.queues: dict[str, Queue] = {}
        self.changes: list[tuple[Any, ...]] = []

    def __repr__(self) -> str:
        return f"<sqs.Service {self.region} {len(self.queues)} queues>"

    def arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def get(self, name: str) -> Queue:
        q = self.queues.get(name)
        if q is None:
            raise err.queue_does_not_exist()
        return q

    # -- queues ---------------------------------------------------------------------------

    def create_queue(self, name: Any, attributes: Any, now: float) -> Queue:
        raw = attributes if isinstance(attributes, dict) else {}
        fifo = str(raw.get("FifoQueue", "false")).lower() == "true"
        if isinstance(name, str) and name.endswith(".fifo") and not fifo:
            checks.queue_name(name, False)  # a standard queue's name cannot hold a dot
        name = checks.queue_name(name, fifo)
        attrs = checks.queue_attributes(attributes, fifo, creating=True)
        self._check_redrive(fifo, attrs)
        attrs = {k: v for k, v in attrs.items() if v != ""}
        existing = self.queues.get(name)
        if existing is not None:  # the same queue if every attribute given has its value
            for key in sorted(attrs):
                if attrs[key] != existing.attributes.get(key, _default(key)):
                    raise err.queue_name_exists(key)
            if fifo != existing.fifo:
                raise err.queue_name_exists("FifoQueue")
            return existing
        q = Queue(name, fifo, attrs, now, now)
        self.queues[name] = q
        self.changes.append(("queue", q))
        return q

    def _check_redrive(self, fifo: bool, attrs: dict[str, str]) -> None:
        raw = attrs.get("RedrivePolicy")
        if not raw:
            return
        target = checks.dlq_name(json.loads(raw)["deadLetterTargetArn"])
        dlq = self.queues.get(target or "")
        if dlq is None:
            raise err.invalid_value("RedrivePolicy", raw, "Dead letter target does not exist.")
        if dlq.fifo != fifo:
            raise err.invalid_value("RedrivePolicy", raw, "Dead-letter queue must be same type of queue as the source.")

    def set_attributes(self, q: Queue, attributes: Any, now: float) -> None:
        attrs = checks.queue_attributes(attributes, q.fifo, creating=False)
        self._check_redrive(q.fifo, attrs)
        for key, value in attrs.items():
            if value == "" and key == "RedrivePolicy":
                q.attributes.pop(key, None)
            else:
                q.attributes[key] = value
        q.modified = now
        self.changes.append(("queue", q))

    def attributes(self, q: Queue, names: Any, now: float) -> dict[str, str]:
        wanted = names or []
        if not isinstance(wanted, list):
            raise err.serialization("AttributeNames must be a list")
        known = [*checks.SETTABLE, *checks.READ_ONLY]
        for n in wanted:
            if n != "All" and n not in known:
                raise err.invalid_attribute_name(n)
        every = "All" in wanted
        counts = q.counts(now)
        values = {
            "QueueArn": self.arn(q.name),
            "ApproximateNumberOfMessages": str(counts["visible"]),
            "ApproximateNumberOfMessagesNotVisible": str(counts["inflight"]),
            "ApproximateNumberOfMessagesDelayed": str(counts["delayed"]),
            "CreatedTimestamp": str(int(q.created)),
            "LastModifiedTimestamp": str(int(q.modified)),
            "SqsManagedSseEnabled": "true",
        }
        for key, (default, _, _) in checks.INT_ATTRIBUTES.items():
            if key != "KmsDataKeyReusePeriodSeconds":
                values[key] = str(default)
        if q.fifo:
            values.update(FifoQueue="true", ContentBasedDeduplication="false", DeduplicationScope="queue",
                          FifoThroughputLimit="perQueue")
        values.update(q.attributes)
        return {k: v for k, v in values.items() if every or k in wanted}

    def tag(self, q: Queue, tags: Any) -> None:
        if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise err.missing_parameter("Tags")
        merged = {**q.tags, **tags}
        if len(merged) > 50:
            raise err.invalid_parameter("Too many tags added for queue " + q.name + ".")
        q.tags = merged
        self.changes.append(("queue", q))

    def untag(self, q: Queue, keys: Any) -> None:
        if not isinstance(keys, list) or not keys:
            raise err.missing_parameter("TagKeys")
        for k in keys:
            q.tags.pop(k, None)
        self.changes.append(("queue", q))

    def delete_queue(self, q: Queue) -> None:
        del self.queues[q.name]
        self.changes.append(("drop", q.name))

    def purge(self, q: Queue) -> None:
        for m in q.messages.values():
            self.changes.append(("delete", m.id, q))
        q.messages.clear()

    # -- messages -------------------------------------------------------------------------

    def send(self, q: Queue, entry: dict[str, Any], now: float) -> Sent:
        body = checks.body(entry.get("MessageBody"), q.int_attr("MaximumMessageSize"))
        attrs = checks.message_attributes(entry.get("MessageAttributes"))
        system = checks.system_attributes(entry.get("MessageSystemAttributes"))
        limit = q.int_attr("MaximumMessageSize")
        if len(body.encode("utf-8")) + checks.attributes_size(attrs) > limit:
            raise err.invalid_parameter(f"One or more parameters are invalid. Reason: Message must be shorter than "
                                        f"{limit} bytes.")
        delay = entry.get("DelaySeconds")
        group, dedup = entry.get("MessageGroupId"), entry.get("MessageDeduplicationId")
        if q.fifo:
            if delay is not None:
                raise err.invalid_value("DelaySeconds", delay,
                                        "The request include parameter that is not valid for this queue type.")
            if not isinstance(group, str) or not group:
                raise err.missing_parameter("MessageGroupId")
            if dedup is None:
                if q.attributes.get("ContentBasedDeduplication") != "true":
                    raise err.invalid_parameter("The queue should either have ContentBasedDeduplication enabled or "
                                                "MessageDeduplicationId provided explicitly")
                dedup = hashlib.sha256(body.encode("utf-8")).hexdigest()
            for name, value in (("MessageGroupId", group), ("MessageDeduplicationId", dedup)):
                if not isinstance(value, str) or not 1 <= len(value) <= 128 or not value.isascii() \
                        or not all(c.isalnum() or c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" for c in value):
                    raise err.invalid_value(name, value, f"{name} can only include alphanumeric and punctuation "
                                            "characters. 1 to 128 in length.")
            key = f"{group}\x00{dedup}" if q.attributes.get("DeduplicationScope") == "messageGroup" else dedup
            seen = q.dedup.get(key)
            if seen is not None and seen[0] > now:
                return seen[1]
            delay_s = q.int_attr("DelaySeconds")
        else:
            if dedup is not None:
                raise err.invalid_value("MessageDeduplicationId", dedup,
                                        "The request include parameter that is not valid for this queue type.")
            delay_s = q.int_attr("DelaySeconds") if delay is None else checks.integer(
                "DelaySeconds", delay, 0, 900, "DelaySeconds must be >= 0 and <= 900")
        seq = q.next_seq
        q.next_seq += 1
        m = Message(self.new_id(), seq, body, attrs, system, now, now + delay_s, group=group if group else None,
                    dedup=dedup if q.fifo else None)
        if q.fifo:
            m.sequence_number = f"{int(q.created * 1000):013d}{seq:07d}"
        q.messages[m.id] = m
        sent = Sent(m.id, md5.of_body(body), md5.of_attributes(attrs) if attrs else None,
                    md5.of_attributes(system) if system else None, m.sequence_number)
        self.changes.append(("put", q, m))
        if q.fifo:
            q.dedup[key] = (now + DEDUP_WINDOW, sent)
            self.changes.append(("dedup", q, key, q.dedup[key]))
        return sent

    def expire(self, q: Queue, now: float) -> None:
        """Drop what is past the retention period (from the first send, across redrives) and
        deduplication ids past their 5 minutes; a full sweep at most once a second."""
        if now - q.swept < SWEEP_EVERY and now >= q.swept:
            return
        q.swept = now
        horizon = now - q.int_attr("MessageRetentionPeriod")
        for m in [m for m in q.messages.values() if m.sent <= horizon]:
            del q.messages[m.id]
            self.changes.append(("delete", m.id, q))
        for key in [k for k, (exp, _) in q.dedup.items() if exp <= now]:
            del q.dedup[key]

    def receive(self, q: Queue, limit: int, visibility: int | None, now: float) -> list[Message]:
        self.expire(q, now)
        vt = q.int_attr("VisibilityTimeout") if visibility is None else visibility
        policy = q.redrive
        dlq = self.queues.get(checks.dlq_name(policy["deadLetterTargetArn"]) or "") if policy else None
        closed: set[str | None] = set()
        out: list[Message] = []
        for m in list(q.messages.values()):
            if len(out) >= limit:
                break
            if q.fifo and m.group in closed:
                continue
            if m.visible_at > now:
                if q.fifo:
                    closed.add(m.group)
                continue
            if policy is not None and dlq is not None and m.receive_count >= policy["maxReceiveCount"]:
                self._move(q, m, dlq, now)
                continue
            m.receive_count += 1
            if m.first_receive is None:
                m.first_receive = now
            m.visible_at = now + vt
            m.receipt = receipt_handle(q.name, m)
            self.changes.append(("put", q, m))
            out.append(m)
        return out

    def _move(self, q: Queue, m: Message, dlq: Queue, now: float) -> None:
        """Redrive: the message leaves ``q`` for its dead-letter queue, keeping its id, body,
        attributes and first send time; its receive count starts again."""
        del q.messages[m.id]
        m.seq = dlq.next_seq
        dlq.next_seq += 1
        m.receive_count, m.first_receive, m.receipt, m.visible_at = 0, None, None, now
        m.source_arn = self.arn(q.name)
        dlq.messages[m.id] = m
        self.changes.append(("put", dlq, m))

    def deliver(self, name: str, message_id: str, body: str, attributes: dict[str, dict[str, str]],
                sent: float, now: float) -> None:
        """A record from an asynchronous invocation's destination: the queue the ARN names
        (created, standard, if it does not exist yet) gets it as it was written."""
        q = self.queues.get(name)
        if q is None:
            q = self.create_queue(name, None, now)
        m = Message(message_id, q.next_seq, body, attributes, {}, sent, now)
        q.next_seq += 1
        q.messages[m.id] = m
        self.changes.append(("put", q, m))

    def _find(self, q: Queue, handle: Any) -> tuple[str, Message | None]:
        queue, message_id, _ = parse_receipt(handle)
        if queue != q.name:
            raise err.receipt_handle_invalid(handle)
        return message_id, q.messages.get(message_id)

    def delete(self, q: Queue, handle: Any) -> None:
        message_id, m = self._find(q, handle)
        if m is not None:
            del q.messages[message_id]
            self.changes.append(("delete", message_id, q))

    def unreceive(self, q: Queue, handle: Any, now: float) -> None:
        """A received message handed back untouched (its batch never reached a function):
        visible again at once, its receive count as it was before, so it comes no nearer
        its dead-letter queue. A handle no longer current is ignored."""
        _, m = self._find(q, handle)
        if m is None or m.receipt != handle or m.state(now) != "inflight":
            return
        m.receive_count = max(0, m.receive_count - 1)
        if m.receive_count == 0:
            m.first_receive = None
        m.visible_at = now
        self.changes.append(("put", q, m))

    def change_visibility(self, q: Queue, handle: Any, timeout: Any, now: float) -> None:
        vt = checks.integer("VisibilityTimeout", timeout, 0, 43200,
                            "VisibilityTimeout must be an integer between 0 and 43200")
        _, m = self._find(q, handle)
        if m is None:
            raise err.invalid_value("ReceiptHandle", handle,
                                    "Message does not exist or is not available for visibility timeout change.")
        if m.state(now) != "inflight":
            raise err.message_not_inflight()
        m.visible_at = now + vt
        self.changes.append(("put", q, m))


def _default(key: str) -> str | None:
    if key in checks.INT_ATTRIBUTES:
        return str(checks.INT_ATTRIBUTES[key][0])
    return {"ContentBasedDeduplication": "false", "DeduplicationScope": "queue",
            "FifoThroughputLimit": "perQueue", "SqsManagedSseEnabled": "true"}.get(key)
