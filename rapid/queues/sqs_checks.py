"""What SQS accepts: queue names, queue attributes, message bodies and attributes, batch
entries. Each check returns the clean value or raises ``SqsError`` in AWS's words. Pure."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from rapid.queues import sqs_errors as err

MAX_MESSAGE_SIZE = 262144
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,80}")
_FIFO_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,75}\.fifo")
_BATCH_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,80}")
_ATTR_NAME_RE = re.compile(r"(?!\.)(?!.*\.\.)(?!.*\.$)[A-Za-z0-9_.-]{1,256}")
_DLQ_ARN_RE = re.compile(r"arn:aws[a-zA-Z-]*:sqs:[a-z0-9-]+:\d{12}:([A-Za-z0-9_.-]{1,80})")
# What SQS refuses in a body: every character outside #x9 | #xA | #xD | #x20-#xD7FF |
# #xE000-#xFFFD | #x10000-#x10FFFF, written as the small set it is (the negated class took
# 5 ms to compile on every daemon start; the same matches, checked over every code point).
_INVALID_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

# name -> (default, low, high) for the integer attributes
INT_ATTRIBUTES = {
    "VisibilityTimeout": (30, 0, 43200),
    "MessageRetentionPeriod": (345600, 60, 1209600),
    "DelaySeconds": (0, 0, 900),
    "ReceiveMessageWaitTimeSeconds": (0, 0, 20),
    "MaximumMessageSize": (MAX_MESSAGE_SIZE, 1024, MAX_MESSAGE_SIZE),
    "KmsDataKeyReusePeriodSeconds": (300, 60, 86400),
}
STRING_ATTRIBUTES = ("Policy", "KmsMasterKeyId", "RedriveAllowPolicy")
BOOL_ATTRIBUTES = ("FifoQueue", "ContentBasedDeduplication", "SqsManagedSseEnabled")
FIFO_ONLY = {"ContentBasedDeduplication": ("true", "false"), "DeduplicationScope": ("messageGroup", "queue"),
             "FifoThroughputLimit": ("perQueue", "perMessageGroupId")}
SETTABLE = (*INT_ATTRIBUTES, *STRING_ATTRIBUTES, *BOOL_ATTRIBUTES, "RedrivePolicy", *FIFO_ONLY)
READ_ONLY = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed", "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn")
SYSTEM_ATTRIBUTES = ("SenderId", "SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp",
                     "SequenceNumber", "MessageDeduplicationId", "MessageGroupId", "AWSTraceHeader",
                     "DeadLetterQueueSourceArn")


def queue_name(name: Any, fifo: bool) -> str:
    if not isinstance(name, str) or not name:
        raise err.missing_parameter("QueueName")
    if fifo:
        if not _FIFO_NAME_RE.fullmatch(name):
            raise err.invalid_parameter("The name of a FIFO queue can only include alphanumeric characters, "
                                        "hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.")
    elif not _NAME_RE.fullmatch(name):
        raise err.invalid_parameter("Can only include alphanumeric characters, hyphens, or underscores. "
                                    "1 to 80 in length")
    return name


def dlq_name(arn: str) -> str | None:
    m = _DLQ_ARN_RE.fullmatch(arn)
    return m[1] if m else None


def _int(name: str, value: Any, low: int, high: int) -> int:
    try:
        n = int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        n = None
    if n is None or not low <= n <= high or (isinstance(value, str) and value.strip() != str(n)):
        raise err.invalid_attribute_value(name, f"Must be an integer from {low} to {high}.")
    return n


def redrive_policy(value: str) -> dict[str, Any]:
    try:
        policy = json.loads(value)
    except ValueError:
        raise err.invalid_attribute_value("RedrivePolicy", "Redrive policy is not a valid JSON map.") from None
    if not isinstance(policy, dict) or "deadLetterTargetArn" not in policy or "maxReceiveCount" not in policy:
        raise err.invalid_attribute_value(
            "RedrivePolicy", "Redrive policy does not contain mandatory attribute: "
            + ("deadLetterTargetArn." if not isinstance(policy, dict) or "deadLetterTargetArn" not in policy
               else "maxReceiveCount."))
    arn = policy["deadLetterTargetArn"]
    if not isinstance(arn, str) or dlq_name(arn) is None:
        raise err.invalid_attribute_value("RedrivePolicy", f"Invalid value for deadLetterTargetArn: {arn}")
    try:
        count = int(policy["maxReceiveCount"])
    except (TypeError, ValueError):
        count = 0
    if not 1 <= count <= 1000:
        raise err.invalid_attribute_value("RedrivePolicy",
                                          "Value for parameter maxReceiveCount must be an integer from 1 to 1000.")
    return {"deadLetterTargetArn": arn, "maxReceiveCount": count}


def queue_attributes(attrs: Any, fifo: bool, creating: bool) -> dict[str, str]:
    """The attributes of CreateQueue / SetQueueAttributes, checked, as strings."""
    if attrs is None:
        return {}
    if not isinstance(attrs, dict):
        raise err.serialization("Attributes must be a map of strings")
    out: dict[str, str] = {}
    for name, value in attrs.items():
        if name in READ_ONLY or name not in SETTABLE:
            raise err.invalid_attribute_name(name)
        value = str(value).lower() if isinstance(value, bool) else str(value)
        if name in INT_ATTRIBUTES:
            _, low, high = INT_ATTRIBUTES[name]
            out[name] = str(_int(name, value, low, high))
        elif name in BOOL_ATTRIBUTES:
            if value.lower() not in ("true", "false"):
                raise err.invalid_attribute_value(name, "Must be true or false.")
            out[name] = value.lower()
        elif name in FIFO_ONLY:
            if not fifo:
                raise err.invalid_attribute_name(name)
            if value not in FIFO_ONLY[name]:
                raise err.invalid_attribute_value(name, f"Must be one of {', '.join(FIFO_ONLY[name])}.")
            out[name] = value
        elif name == "RedrivePolicy":
            out[name] = json.dumps(redrive_policy(value), separators=(",", ":")) if value else ""
        else:
            out[name] = value
    if "FifoQueue" in out:
        if not creating:
            raise err.invalid_attribute_value("FifoQueue", "Modifying queue type is not supported.")
        if out["FifoQueue"] == "false" and fifo:
            raise err.invalid_parameter("Can only include alphanumeric characters, hyphens, or underscores. "
                                        "1 to 80 in length")
        del out["FifoQueue"]
    return out


def body(value: Any, limit: int) -> str:
    if not isinstance(value, str) or value == "":
        raise err.missing_parameter("MessageBody")
    if _INVALID_CHARS.search(value):
        raise err.invalid_contents()
    return value


def message_attributes(attrs: Any, what: str = "Message (user)") -> dict[str, dict[str, str]]:
    """Checked message attributes, binary values kept as base64 text (as the JSON protocol
    carries them)."""
    if attrs is None:
        return {}
    if not isinstance(attrs, dict):
        raise err.serialization("MessageAttributes must be a map")
    if len(attrs) > 10:
        raise err.invalid_parameter(f"Number of message attributes [{len(attrs)}] exceeds the allowed maximum [10].")
    out: dict[str, dict[str, str]] = {}
    for name, value in attrs.items():
        if not isinstance(name, str) or not _ATTR_NAME_RE.fullmatch(name) or name.lower().startswith(("aws.", "amazon.")):
            raise err.invalid_parameter(f"{what} attribute name '{name}' is invalid.")
        if not isinstance(value, dict) or not isinstance(value.get("DataType"), str) or not value["DataType"]:
            raise err.invalid_parameter(f"The message attribute '{name}' must contain non-empty message attribute type.")
        kind = value["DataType"]
        base = kind.split(".", 1)[0]
        if base not in ("String", "Number", "Binary"):
            raise err.invalid_parameter(f"The type of message (user) attribute '{name}' is invalid. You must use only "
                                        "the following supported type prefixes: Binary, Number, String.")
        if base == "Binary":
            raw = value.get("BinaryValue")
            try:
                data = base64.b64decode(raw, validate=True) if isinstance(raw, str) else b""
            except (binascii.Error, ValueError):
                data = b""
            if not data:
                raise err.invalid_parameter(f"{what} attribute '{name}' must contain a non-empty value of type 'Binary'.")
            assert isinstance(raw, str)
            out[name] = {"DataType": kind, "BinaryValue": raw}
            continue
        text = value.get("StringValue")
        if not isinstance(text, str) or text == "":
            raise err.invalid_parameter(f"{what} attribute '{name}' must contain a non-empty value of type '{base}'.")
        if base == "Number":
            try:
                float(text)
            except ValueError:
                raise err.invalid_parameter(f"Can't cast the value of message (user) attribute '{name}' to a number.") from None
        if _INVALID_CHARS.search(text):
            raise err.invalid_contents()
        out[name] = {"DataType": kind, "StringValue": text}
    return out


def attributes_size(attrs: dict[str, dict[str, str]]) -> int:
    n = 0
    for name, value in attrs.items():
        n += len(name.encode()) + len(value["DataType"].encode())
        n += len(base64.b64decode(value["BinaryValue"])) if "BinaryValue" in value else len(value["StringValue"].encode())
    return n


def system_attributes(attrs: Any) -> dict[str, dict[str, str]]:
    out = message_attributes(attrs, "Message system")
    for name, value in out.items():
        if name != "AWSTraceHeader":
            raise err.invalid_parameter(f"Message system attribute name '{name}' is invalid.")
        if value["DataType"] != "String":
            raise err.invalid_parameter("Message system attribute 'AWSTraceHeader' must be of type 'String'.")
    return out


def batch_ids(entries: Any, entry_name: str, total_limit: int | None = None) -> list[dict[str, Any]]:
    if not isinstance(entries, list) or not entries:
        raise err.empty_batch(entry_name)
    if len(entries) > 10:
        raise err.too_many_entries(len(entries))
    seen = set()
    for e in entries:
        entry_id = e.get("Id") if isinstance(e, dict) else None
        if not isinstance(entry_id, str) or not _BATCH_ID_RE.fullmatch(entry_id):
            raise err.invalid_batch_id()
        if entry_id in seen:
            raise err.ids_not_distinct(entry_id)
        seen.add(entry_id)
    return entries


def integer(name: str, value: Any, low: int, high: int, reason: str | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise err.invalid_value(name, value, reason or f"Must be between {low} and {high}, if provided.")
    try:
        n = int(value)
    except ValueError:
        raise err.invalid_value(name, value, reason or f"Must be between {low} and {high}, if provided.") from None
    if not low <= n <= high:
        raise err.invalid_value(name, value, reason or f"Must be between {low} and {high}, if provided.")
    return n
