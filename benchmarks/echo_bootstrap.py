#!/usr/bin/env python3
"""The benchmark's runtime: a minimal echo custom runtime (stdlib http.client, one
keep-alive connection), so the figures measure the host, not the runtime."""
import http.client
import os

host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    body = r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", body,
                 {"Content-Type": "application/json"})
    conn.getresponse().read()
