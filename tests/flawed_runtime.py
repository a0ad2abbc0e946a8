#!/usr/bin/env python3
"""A small, correct custom runtime with one flaw switched on by RAPID_FLAW, for the tests of
``rapid check``: each flaw breaks exactly one behaviour of Lambda's runtime contract.

It loads its handler (argv[1], else _HANDLER) from LAMBDA_TASK_ROOT, as the bundled Python
runtime does, and serves it over one keep-alive connection. Flaws:

  no-init-error   a handler that cannot be loaded ends the process without /init/error
  swallow-errors  a handler's exception is posted to /response as if it were a result
  drop-trace      _X_AMZN_TRACE_ID is never set from Lambda-Runtime-Trace-Id
  late-write      each invocation runs in a child outside the runtime's process group,
                  which posts its answer even after the runtime was ended at the deadline
  ignore-sigterm  SIGTERM is ignored
  truncate-6mb    responses over 4 MiB are cut to 4 MiB
  buffered-logs   stdout is block-buffered, so handler lines come out long after END
  leaky           every invocation keeps 256 KiB for ever
  bad-mode        responses carry Lambda-Runtime-Function-Response-Mode: buffered
"""
import http.client
import importlib
import json
import os
import signal
import sys
import traceback

FLAW = os.environ.get("RAPID_FLAW", "")
API = "/2018-06-01/runtime"
leaked = []


def post(conn, path, body, headers=None):
    conn.request("POST", API + path, body, {"Content-Type": "application/json", **(headers or {})})
    conn.getresponse().read()


def answer(conn, handler, request_id, body):
    try:
        result = json.dumps(handler(json.loads(body), Context(request_id))).encode()
        path = f"/invocation/{request_id}/response"
    except Exception as e:
        error = {"errorMessage": str(e), "errorType": type(e).__name__,
                 "stackTrace": traceback.format_exc().splitlines()}
        result = json.dumps(error).encode()
        path = f"/invocation/{request_id}/{'response' if FLAW == 'swallow-errors' else 'error'}"
    if FLAW == "truncate-6mb" and len(result) > 4 * 1024 * 1024:
        result = result[: 4 * 1024 * 1024]
    if FLAW == "leaky":
        leaked.append(bytearray(os.urandom(256 * 1024)))
    mode = {"Lambda-Runtime-Function-Response-Mode": "buffered"} if FLAW == "bad-mode" else None
    post(conn, path, result, mode)


class Context:
    def __init__(self, request_id):
        self.aws_request_id = request_id
        self.headers = CURRENT

    invoked_function_arn = property(lambda self: self.headers.get("Lambda-Runtime-Invoked-Function-Arn"))
    client_context = property(lambda self: json.loads(self.headers.get("Lambda-Runtime-Client-Context") or "null"))

    @property
    def identity(self):
        raw = json.loads(self.headers.get("Lambda-Runtime-Cognito-Identity") or "{}")
        return type("Identity", (), {"cognito_identity_id": raw.get("cognitoIdentityId"),
                                     "cognito_identity_pool_id": raw.get("cognitoIdentityPoolId")})()

    def get_remaining_time_in_millis(self):
        import time

        return int(self.headers.get("Lambda-Runtime-Deadline-Ms")) - int(time.time() * 1000)


CURRENT = {}


def main():
    global CURRENT
    if FLAW == "ignore-sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if FLAW == "buffered-logs":  # whatever PYTHONUNBUFFERED says
        sys.stdout = os.fdopen(os.dup(1), "w", buffering=1 << 16)
    else:
        sys.stdout.reconfigure(line_buffering=True)
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))
    spec = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("_HANDLER", "")
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd())
    try:
        module, name = spec.rsplit(".", 1)
        handler = getattr(importlib.import_module(module.replace("/", ".")), name)
    except Exception as e:
        if FLAW == "no-init-error":
            sys.exit(1)
        error = {"errorMessage": str(e), "errorType": "Runtime.ImportModuleError"}
        header = {"Lambda-Runtime-Function-Error-Type": error["errorType"]}
        post(conn, "/init/error", json.dumps(error).encode(), header)
        sys.exit(1)
    while True:
        conn.request("GET", API + "/invocation/next")
        r = conn.getresponse()
        body = r.read()
        CURRENT = {k: v for k, v in r.getheaders()}
        request_id = r.getheader("Lambda-Runtime-Aws-Request-Id")
        if FLAW != "drop-trace":
            os.environ["_X_AMZN_TRACE_ID"] = r.getheader("Lambda-Runtime-Trace-Id", "")
        if FLAW == "late-write":
            child = os.fork()
            if child == 0:  # its own session: killing the runtime's group does not reach it
                os.setsid()
                answer(conn, handler, request_id, body)
                os._exit(0)
            os.waitpid(child, 0)
            continue
        answer(conn, handler, request_id, body)


main()
