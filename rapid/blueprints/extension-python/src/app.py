"""A Lambda function in Python: the event in, a JSON answer out."""

import json


def handler(event, context):
    name = (event or {}).get("name", "world")
    print(json.dumps({"level": "info", "greeted": name, "request": context.aws_request_id}))
    return {"message": f"Hello, {name}!"}
