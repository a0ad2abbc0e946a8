"""The records Lambda puts in an event source mapping's event, key for key as AWS writes
them, and the OnFailure record of a Kinesis batch. Pure.

SQS (``{"Records": [...]}``, one per message)::

    messageId, receiptHandle, body, attributes{ApproximateReceiveCount, SentTimestamp,
    SenderId, ApproximateFirstReceiveTimestamp[, SequenceNumber, MessageGroupId,
    MessageDeduplicationId, AWSTraceHeader, DeadLetterQueueSourceArn]},
    messageAttributes{name: {stringValue | binaryValue, stringListValues: [],
    binaryListValues: [], dataType}}, md5OfBody[, md5OfMessageAttributes], eventSource
    "aws:sqs", eventSourceARN, awsRegion

Kinesis::

    kinesis{kinesisSchemaVersion "1.0", partitionKey, sequenceNumber, data (base64),
    approximateArrivalTimestamp (epoch seconds)}, eventSource "aws:kinesis", eventVersion
    "1.0", eventID "<shardId>:<sequenceNumber>", eventName "aws:kinesis:record",
    invokeIdentityArn, awsRegion, eventSourceARN
"""

from __future__ import annotations

import base64
from typing import Any

from rapid.core.report import iso_now
from rapid.queues import md5
from rapid.queues.sqs_model import Message
from rapid.streams.kinesis import Record


def sqs_record(m: Message, *, queue_arn: str, region: str, sender: str, fifo: bool) -> dict[str, Any]:
    attributes = {
        "ApproximateReceiveCount": str(m.receive_count),
        "SentTimestamp": str(int(m.sent * 1000)),
        "SenderId": sender,
        "ApproximateFirstReceiveTimestamp": str(int((m.first_receive or m.sent) * 1000)),
    }
    if fifo:
        attributes.update(SequenceNumber=m.sequence_number or "", MessageGroupId=m.group or "",
                          MessageDeduplicationId=m.dedup or "")
    if "AWSTraceHeader" in m.system:
        attributes["AWSTraceHeader"] = m.system["AWSTraceHeader"]["StringValue"]
    if m.source_arn:
        attributes["DeadLetterQueueSourceArn"] = m.source_arn
    attrs: dict[str, Any] = {}
    for name, value in m.attributes.items():
        item: dict[str, Any] = {}
        if "BinaryValue" in value:
            item["binaryValue"] = value["BinaryValue"]
        else:
            item["stringValue"] = value["StringValue"]
        item.update(stringListValues=[], binaryListValues=[], dataType=value["DataType"])
        attrs[name] = item
    record: dict[str, Any] = {
        "messageId": m.id,
        "receiptHandle": m.receipt,
        "body": m.body,
        "attributes": attributes,
        "messageAttributes": attrs,
        "md5OfBody": md5.of_body(m.body),
    }
    if m.attributes:
        record["md5OfMessageAttributes"] = md5.of_attributes(m.attributes)
    record.update(eventSource="aws:sqs", eventSourceARN=queue_arn, awsRegion=region)
    return record


def kinesis_record(r: Record, *, shard_id: str, stream_arn: str, region: str, identity_arn: str) -> dict[str, Any]:
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": r.partition_key,
            "sequenceNumber": str(r.seq),
            "data": base64.b64encode(r.data).decode(),
            "approximateArrivalTimestamp": round(r.arrival, 3),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{r.seq}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": identity_arn,
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


def kinesis_failure(*, request_id: str, function_arn: str, condition: str, invoke_count: int, status: int,
                    function_error: str | None, version: str, shard_id: str, stream_arn: str,
                    records: list[Record], now: float) -> dict[str, Any]:
    """What an OnFailure destination receives for a Kinesis batch that is given up on
    (``condition``: ``RetryAttemptsExhausted`` or ``RecordAgeExceeded``): the batch's
    metadata, not its records."""
    response: dict[str, Any] = {"statusCode": status, "executedVersion": version}
    if function_error:
        response["functionError"] = function_error
    return {
        "requestContext": {"requestId": request_id, "functionArn": function_arn, "condition": condition,
                           "approximateInvokeCount": invoke_count},
        "responseContext": response,
        "version": "1.0",
        "timestamp": iso_now(now),
        "KinesisBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": str(records[0].seq),
            "endSequenceNumber": str(records[-1].seq),
            "approximateArrivalOfFirstRecord": iso_now(records[0].arrival),
            "approximateArrivalOfLastRecord": iso_now(records[-1].arrival),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }
