"""The realistic handler of the benchmarks (rapid's bundled Python runtime, ``app.handler``).

It takes an API Gateway-style event whose body is an order (JSON), prices it, and spends
5 ms of CPU (measured with ``time.thread_time``, so the work is the same on any machine)
hashing the order, as a handler that validates, transforms and signs would. It answers an
API Gateway proxy response with a JSON body.
"""

import hashlib
import json
import time

WORK_SECONDS = 0.005


def handler(event, context):
    order = json.loads(event["body"])
    total = sum(item["price"] * item["quantity"] for item in order["items"])
    data = event["body"].encode()
    digest = hashlib.sha256()
    rounds = 0
    deadline = time.thread_time() + WORK_SECONDS
    while time.thread_time() < deadline:
        for _ in range(20):
            digest.update(data)
        rounds += 1
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({
            "orderId": order["orderId"],
            "total": round(total, 2),
            "items": len(order["items"]),
            "digest": digest.hexdigest(),
            "rounds": rounds,
            "requestId": context.aws_request_id,
        }),
    }


def sample_event() -> dict:
    """The event the benchmark sends (about 1 KB of JSON)."""
    order = {
        "orderId": "ord-000123",
        "customer": {"id": "c-42", "email": "someone@example.com", "tier": "gold"},
        "items": [
            {"sku": f"SKU-{i:04d}", "name": f"item {i}", "price": 9.99 + i, "quantity": 1 + i % 3}
            for i in range(6)
        ],
        "currency": "EUR",
    }
    return {
        "resource": "/orders",
        "path": "/orders",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json", "Host": "api.example.com", "User-Agent": "bench/1.0"},
        "queryStringParameters": None,
        "requestContext": {"requestId": "r-1", "stage": "prod", "identity": {"sourceIp": "127.0.0.1"}},
        "body": json.dumps(order),
        "isBase64Encoded": False,
    }
