"""An external extension: registers for INVOKE and SHUTDOWN with the Extensions API, then
loops on event/next, writing one line per event (they reach the function's log)."""

import http.client
import json
import os
import sys

NAME = "rapid-logger"  # must be the executable's name in /opt/extensions


def main() -> None:
    conn = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
    conn.request("POST", "/2020-01-01/extension/register", json.dumps({"events": ["INVOKE", "SHUTDOWN"]}),
                 {"Lambda-Extension-Name": NAME})
    answer = conn.getresponse()
    registered = json.loads(answer.read())
    ident = answer.getheader("Lambda-Extension-Identifier")
    print(f"[{NAME}] registered for {registered.get('functionName')}", flush=True)
    while True:
        conn.request("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ident})
        event = json.loads(conn.getresponse().read())
        if event["eventType"] == "SHUTDOWN":
            print(f"[{NAME}] shutting down ({event.get('shutdownReason')})", flush=True)
            sys.exit(0)
        print(f"[{NAME}] received INVOKE {event['requestId']}", flush=True)


if __name__ == "__main__":
    main()
