"""The queues' records: a message, a queue and what SendMessage answers, and the receipt
handle that names one receive of a message. Plain data with the few derived values the
core (``rapid.queues.sqs``), the store's rows and the API read off them.

A message's state is derived from two fields, ``visible_at`` and ``receive_count`` (see the
table in ``rapid.queues.sqs``). A receipt handle is the URL-safe base64 of
``[queue, message id, receive count]``, so a handle given out before the message's next
receive is recognised as stale.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from rapid.queues import sqs_checks as checks
from rapid.queues import sqs_errors as err


@dataclass(slots=True)
class Message:
    id: str
    seq: int
    body: str
    attributes: dict[str, dict[str, str]]
    system: dict[str, dict[str, str]]
    sent: float
    visible_at: float
    receive_count: int = 0
    first_receive: float | None = None
    group: str | None = None
    dedup: str | None = None
    sequence_number: str | None = None
    receipt: str | None = None
    source_arn: str | None = None

    def state(self, now: float) -> str:
        if self.visible_at <= now:
            return "visible"
        return "inflight" if self.receive_count else "delayed"


@dataclass(slots=True)
class Sent:
    """What SendMessage answers."""

    message_id: str
    md5_body: str
    md5_attributes: str | None
    md5_system: str | None
    sequence_number: str | None


@dataclass(slots=True, eq=False)
class Queue:
    name: str
    fifo: bool
    attributes: dict[str, str]
    created: float
    modified: float
    next_seq: int = 1
    tags: dict[str, str] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)  # in send order
    dedup: dict[str, tuple[float, Sent]] = field(default_factory=dict)  # key -> (expires, answer)
    swept: float = 0.0  # when retention and deduplication were last swept

    def int_attr(self, name: str) -> int:
        raw = self.attributes.get(name)
        return int(raw) if raw is not None else checks.INT_ATTRIBUTES[name][0]

    @property
    def redrive(self) -> dict[str, Any] | None:
        raw = self.attributes.get("RedrivePolicy")
        return json.loads(raw) if raw else None

    def counts(self, now: float) -> dict[str, int]:
        out = {"visible": 0, "inflight": 0, "delayed": 0}
        for m in self.messages.values():
            out[m.state(now)] += 1
        return out

    def next_change(self, now: float) -> float | None:
        """When the earliest message becomes visible (None: none is waiting)."""
        times = [m.visible_at for m in self.messages.values() if m.visible_at > now]
        return min(times) if times else None

    def __repr__(self) -> str:
        return f"<Queue {self.name}{' fifo' if self.fifo else ''} {len(self.messages)} messages>"


def receipt_handle(queue: str, m: Message) -> str:
    raw = json.dumps([queue, m.id, m.receive_count], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_receipt(handle: Any) -> tuple[str, str, int]:
    if not isinstance(handle, str) or not handle:
        raise err.missing_parameter("ReceiptHandle")
    try:
        queue, message_id, count = json.loads(base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4)))
        return str(queue), str(message_id), int(count)
    except (binascii.Error, ValueError, TypeError):
        raise err.receipt_handle_invalid(handle) from None
