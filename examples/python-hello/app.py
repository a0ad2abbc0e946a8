def handler(event, context):
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    print(f"python-hello: greeting {name} in request {context.aws_request_id}")
    return {"message": f"Hello, {name}!"}
