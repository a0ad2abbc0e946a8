"""PreTraffic hook: invoke the new code with the sample event, check the answer, and tell
CodeDeploy Succeeded or Failed (a failure stops the deployment before any traffic moves).

Under rapid the calls go to LAMBDA_ENDPOINT and CODEDEPLOY_ENDPOINT (the daemon); on AWS,
leave them unset and boto3 is used as usual.
"""

import json
import os
import urllib.request

EVENT = {"name": "pipeline"}
EXPECTED = {"message": "Hello, pipeline!"}


def _post(url, body, headers):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=20) as resp:
        return json.loads(resp.read() or b"null")


def _invoke(function):
    endpoint = os.environ.get("LAMBDA_ENDPOINT")
    if endpoint:
        return _post(f"{endpoint}/2015-03-31/functions/{function}/invocations", EVENT, {})
    import boto3

    out = boto3.client("lambda").invoke(FunctionName=function, Payload=json.dumps(EVENT))
    return json.loads(out["Payload"].read())


def _report(event, status):
    endpoint = os.environ.get("CODEDEPLOY_ENDPOINT")
    body = {"deploymentId": event["DeploymentId"], "status": status,
            "lifecycleEventHookExecutionId": event["LifecycleEventHookExecutionId"]}
    if endpoint:
        _post(endpoint, body, {"X-Amz-Target": "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus",
                               "Content-Type": "application/x-amz-json-1.1"})
        return
    import boto3

    boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(**body)


def handler(event, context):
    try:
        answer = _invoke(os.environ["TARGET_FUNCTION"])
        status = "Succeeded" if answer == EXPECTED else "Failed"
        print(f"pre-traffic check: {answer!r} -> {status}")
    except Exception as exc:  # the check could not run: the deployment must not go on
        print(f"pre-traffic check failed: {exc}")
        status = "Failed"
    _report(event, status)
    return status
