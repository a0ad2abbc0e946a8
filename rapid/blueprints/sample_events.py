"""Sample events in AWS's shapes, for ``rapid event TYPE`` (as ``sam local generate-event``
prints them) and for the blueprints' ``events/`` folders.

Each builder takes the text the event carries (``body``) and the region and account to put
in its ARNs, and returns the event as AWS delivers it to a function: the fields, their
names and their nesting are the services' own (SQS's ``md5OfBody`` is the body's MD5,
Kinesis's ``data`` its base64). Pure: the time is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

Builder = Callable[[str, str, str, float], dict[str, Any]]


def _iso(t: float, ms: bool = True) -> str:
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return text + (f".{int(t * 1000) % 1000:03d}Z" if ms else "Z")


def sqs(body: str, region: str, account: str, now: float) -> dict[str, Any]:
    return {"Records": [{
        "messageId": str(uuid.UUID(int=1)), "receiptHandle": "MessageReceiptHandle", "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(now * 1000)),
                       "SenderId": account, "ApproximateFirstReceiveTimestamp": str(int(now * 1000) + 1)},
        "messageAttributes": {}, "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:{region}:{account}:MyQueue",
        "awsRegion": region,
    }]}


def kinesis(body: str, region: str, account: str, now: float) -> dict[str, Any]:
    seq = "49590338271490256608559692538361571095921575989136588898"
    return {"Records": [{
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "1", "sequenceNumber": seq,
                    "data": base64.b64encode(body.encode()).decode(), "approximateArrivalTimestamp": round(now, 3)},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"shardId-000000000000:{seq}",
        "eventName": "aws:kinesis:record", "invokeIdentityArn": f"arn:aws:iam::{account}:role/lambda-role",
        "awsRegion": region, "eventSourceARN": f"arn:aws:kinesis:{region}:{account}:stream/MyStream",
    }]}


def apigateway_v2(body: str, region: str, account: str, now: float) -> dict[str, Any]:
    return {
        "version": "2.0", "routeKey": "POST /hello/{name}", "rawPath": "/hello/world",
        "rawQueryString": "verbose=true", "cookies": ["session=abc"],
        "headers": {"content-type": "application/json", "host": f"abcdef1234.execute-api.{region}.amazonaws.com",
                    "user-agent": "curl/8.0"},
        "queryStringParameters": {"verbose": "true"},
        "requestContext": {
            "accountId": account, "apiId": "abcdef1234", "domainName": f"abcdef1234.execute-api.{region}.amazonaws.com",
            "domainPrefix": "abcdef1234",
            "http": {"method": "POST", "path": "/hello/world", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1",
                     "userAgent": "curl/8.0"},
            "requestId": "JKJaXmPLvHcESHA=", "routeKey": "POST /hello/{name}", "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
        },
        "pathParameters": {"name": "world"}, "body": body, "isBase64Encoded": False,
    }


def schedule(body: str, region: str, account: str, now: float) -> dict[str, Any]:
    return {"version": "0", "id": str(uuid.UUID(int=2)), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": account, "time": _iso(now, ms=False), "region": region,
            "resources": [f"arn:aws:events:{region}:{account}:rule/my-schedule"], "detail": {}}


def s3(body: str, region: str, account: str, now: float) -> dict[str, Any]:
    key = body or "test/key"
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region, "eventTime": _iso(now),
        "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "EXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE123456789",
                             "x-amz-id-2": "EXAMPLE123/5678abcdefghijklambdaisawesome/mnopqrstuvwxyzABCDEFGH"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "testConfigRule",
               "bucket": {"name": "example-bucket", "ownerIdentity": {"principalId": "EXAMPLE"},
                          "arn": "arn:aws:s3:::example-bucket"},
               "object": {"key": key, "size": 1024, "eTag": "0123456789abcdef0123456789abcdef",
                          "sequencer": "0A1B2C3D4E5F678901"}},
    }]}


def sns(body: str, region: str, account: str, now: float) -> dict[str, Any]:
    topic = f"arn:aws:sns:{region}:{account}:ExampleTopic"
    return {"Records": [{
        "EventVersion": "1.0", "EventSubscriptionArn": f"{topic}:{uuid.UUID(int=3)}", "EventSource": "aws:sns",
        "Sns": {"SignatureVersion": "1", "Timestamp": _iso(now), "Signature": "EXAMPLE",
                "SigningCertUrl": f"https://sns.{region}.amazonaws.com/SimpleNotificationService-0000.pem",
                "MessageId": str(uuid.UUID(int=4)), "Message": body, "MessageAttributes": {},
                "Type": "Notification",
                "UnsubscribeUrl": f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic}",
                "TopicArn": topic, "Subject": "example subject"},
    }]}


def dynamodb(body: str, region: str, account: str, now: float) -> dict[str, Any]:
    return {"Records": [{
        "eventID": "c4ca4238a0b923820dcc509a6f75849b", "eventName": "INSERT", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": region,
        "dynamodb": {"ApproximateCreationDateTime": int(now), "Keys": {"Id": {"N": "101"}},
                     "NewImage": {"Message": {"S": body}, "Id": {"N": "101"}},
                     "SequenceNumber": "4421584500000000017450439091", "SizeBytes": 26,
                     "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "eventSourceARN": f"arn:aws:dynamodb:{region}:{account}:table/ExampleTable/stream/2015-06-27T00:48:05.899",
    }]}


BUILDERS: dict[str, tuple[Builder, str, str]] = {
    # type: (builder, default body, what it is)
    "sqs": (sqs, "Hello from SQS!", "an SQS event source mapping's batch of one message"),
    "kinesis": (kinesis, "Hello, this is a test.", "a Kinesis event source mapping's batch of one record"),
    "apigateway-v2": (apigateway_v2, '{"hello": "world"}', "an HTTP API / function URL request (payload 2.0)"),
    "schedule": (schedule, "", "an EventBridge scheduled event"),
    "s3": (s3, "test/key", "an S3 ObjectCreated:Put notification (the body is the object key)"),
    "sns": (sns, "Hello from SNS!", "an SNS notification"),
    "dynamodb": (dynamodb, "New item!", "a DynamoDB stream INSERT record"),
}


def build(kind: str, body: str | None = None, region: str = "us-east-1", account: str = "123456789012",
          now: float | None = None) -> dict[str, Any]:
    builder, default, _ = BUILDERS[kind]
    return builder(default if body is None else body, region, account, time.time() if now is None else now)
