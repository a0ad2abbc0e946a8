"""rapid check's test handler for Python runtimes (handler string ``rapid_check.handler``).

The event says what to do (the protocol is in rapid's README, "For runtime authors"):
  {"op": "echo", ...}             return the event unchanged
  {"op": "fail", "message": M}    raise an exception with message M
  {"op": "sleep", "ms": N}        sleep N ms, return {"slept_ms": N}
  {"op": "log", "lines": [...]}   print each line to stdout, return {"logged": count}
  {"op": "context"}               what the context object says (request id, ARN, remaining
                                  time, client context, identity) and _X_AMZN_TRACE_ID
  {"op": "env"}                   the handler's environment and working directory
It works under the bundled Python runtime and under awslambdaric alike.
"""
import os
import time


def _plain(value):
    """A context attribute as JSON: objects become dicts of their public fields."""
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    fields = {}
    for name in dir(value):  # plain attributes, or __slots__ (awslambdaric's classes)
        item = getattr(value, name, None)
        if not name.startswith("_") and not callable(item):
            fields[name] = _plain(item)
    return fields


def handler(event, context):
    op = event.get("op") if isinstance(event, dict) else None
    if op == "echo":
        return event
    if op == "fail":
        raise RuntimeError(event.get("message", "rapid check: deliberate failure"))
    if op == "sleep":
        time.sleep(event["ms"] / 1000.0)
        return {"slept_ms": event["ms"]}
    if op == "log":
        for line in event["lines"]:
            print(line)
        return {"logged": len(event["lines"])}
    if op == "context":
        identity = getattr(context, "identity", None)
        return {
            "request_id": context.aws_request_id,
            "function_arn": context.invoked_function_arn,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "client_context": _plain(getattr(context, "client_context", None)),
            "identity": {
                "cognitoIdentityId": getattr(identity, "cognito_identity_id", None),
                "cognitoIdentityPoolId": getattr(identity, "cognito_identity_pool_id", None),
            },
            "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        }
    if op == "env":
        return {"env": dict(os.environ), "cwd": os.getcwd(), "handler_file": os.path.abspath(__file__)}
    raise ValueError(f"rapid check: unknown op {op!r}")
