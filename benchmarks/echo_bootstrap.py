#!/usr/bin/env python3
"""The benchmarks' runtime: a minimal echo custom runtime (stdlib http.client, one
keep-alive connection per poller), so the figures measure the host, not the runtime.

- It answers each event with the event itself.
- An event that starts with ``{"sleep":`` (``{"sleep": 0.5}``) sleeps that many seconds
  first (the slow invokes that make a pool grow).
- With ``AWS_LAMBDA_MAX_CONCURRENCY=K`` (multi-concurrency), K threads poll ``/next`` at
  once, each on its own connection, as runtimes for Lambda Managed Instances do.

The harness copies this file as a function's ``bootstrap``, with the interpreter it runs
on in the first line.
"""
import http.client
import os

host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)


def poll():
    conn = http.client.HTTPConnection(host, int(port))
    while True:
        conn.request("GET", "/2018-06-01/runtime/invocation/next")
        r = conn.getresponse()
        body = r.read()
        rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
        if body.startswith(b'{"sleep":'):
            import json
            import time
            time.sleep(json.loads(body)["sleep"])
        conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", body,
                     {"Content-Type": "application/json"})
        conn.getresponse().read()


pollers = int(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY") or 1)
if pollers > 1:
    import threading
    for _ in range(pollers - 1):
        threading.Thread(target=poll, daemon=True).start()
poll()
