"""The Invoke API's answer to an ``Event`` invoke the store cannot keep: AWS's 500
``ServiceException``, rendered by the API edge (``rapid.api.event_answer``) from the
dispatcher's plain error. The store that fails for real: a cluster node's, with its
nats-server stopped (the event cannot be put in JetStream); once the server is back the
same invoke is accepted (202)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster import invoke
from tests.control import ROLE, client, python_zip, wait_active
from tests.daemon import run_server, unique, wait_until
from tests.nats import nats_server

pytestmark = pytest.mark.slow


def test_an_event_that_cannot_be_stored_gets_a_service_exception(tmp_path: Path) -> None:
    with nats_server() as nats, run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / "n0")],
                                           env={"RAPID_SHUTDOWN_TIMEOUT": "2"}) as node:
        name = f"answer-{unique()}"
        lam = client(node)
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip("def handler(event, context):\n    return 'ok'\n")})
        wait_active(lam, name)
        assert invoke(node, name).status == 200
        path = f"/2015-03-31/functions/{name}/invocations"
        event = {"X-Amz-Invocation-Type": "Event"}
        nats.stop()
        reply = node.request("POST", path, json.dumps({"n": 1}).encode(), event, timeout=60)
        assert reply.status == 500, reply.body
        assert reply.headers["x-amzn-errortype"] == "ServiceException"
        assert reply.headers["x-amzn-requestid"]
        body = json.loads(reply.body)
        assert body["Type"] == "Service" and body["message"].startswith("The event could not be stored: "), body
        nats.start()
        wait_until(lambda: node.request("POST", path, b"{}", event, timeout=60).status == 202, timeout=60,
                   what="events accepted again once nats-server is back")
        accepted = node.request("POST", path, b"{}", event, timeout=60)
        assert accepted.status == 202 and accepted.body == b"" and accepted.headers["x-amz-executed-version"] == "$LATEST"
