"""An HTTP API in Python: API Gateway's payload format 2.0 in, an HTTP answer out.

The same code answers a function URL (its routeKey is "$default")."""

import json


def handler(event, context):
    method = event["requestContext"]["http"]["method"]
    route = event.get("routeKey", "$default")
    params = event.get("pathParameters") or {}
    print(json.dumps({"route": route, "method": method, "path": event.get("rawPath")}))
    if route == "GET /hello/{name}" or (route == "$default" and method == "GET"):
        name = params.get("name") or (event.get("queryStringParameters") or {}).get("name", "world")
        return {"statusCode": 200, "headers": {"content-type": "application/json"},
                "body": json.dumps({"message": f"Hello, {name}!"})}
    if route == "POST /items" or (route == "$default" and method == "POST"):
        item = json.loads(event.get("body") or "{}")
        return {"statusCode": 201, "headers": {"content-type": "application/json"},
                "body": json.dumps({"created": item})}
    return {"statusCode": 404, "body": json.dumps({"message": "no such route"})}
