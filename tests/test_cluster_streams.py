"""Streamed answers across nodes: InvokeWithResponseStream and function URLs that arrive on
a node with no room are run by another node, their bytes relayed as the function writes
them (rapid.cluster.stream_forwarding).

Reserved concurrency 1 puts the one instance (and its lease) on node 1; the same request
sent to node 0 must be forwarded there. "As written" is shown without a clock: the function
writes its first piece, then waits for a file the test creates only once it has read that
piece through node 0. "Unchanged" is the raw HTTP body through node 0 compared byte for byte
with the same request sent to node 1 itself (3 MB of it, past the relay's flow-control
window). Node 1 killed mid-stream: the event stream ends with an InvokeComplete naming the
broken stream, and the URL's body is cut short (no last chunk), as a broken stream ends.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import http.client
import json
import signal
import struct
import uuid
import zlib
from pathlib import Path

import boto3
import botocore.config
import pytest

from tests.cluster import metric
from tests.control import ROLE, client, python_zip, wait_active
from tests.daemon import run_server, unique, wait_until
from tests.nats import nats_server

pytestmark = pytest.mark.slow

STREAMER = r'''
import os, time

def handler(event, context):
    url = "rawPath" in event
    args = (event.get("queryStringParameters") or {}) if url else event
    if url:
        yield {"statusCode": 201, "headers": {"content-type": "text/plain", "x-seen-for": event["headers"]["x-forwarded-for"]}}
    yield "first;"
    gate = args.get("gate")
    while gate and not os.path.exists(gate):
        time.sleep(0.005)
    yield "second;" + os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
    big = int(args.get("big", 0))
    while big > 0:
        yield "z" * min(big, 65536)
        big -= 65536
'''


def _boto(node):  # type: ignore[no-untyped-def]
    return boto3.client("lambda", endpoint_url=node.url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x",
                        config=botocore.config.Config(retries={"max_attempts": 0}, read_timeout=60))


def _raw(node, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:  # type: ignore[no-untyped-def]
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=60)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _messages(data: bytes) -> tuple[list[str], bytes]:
    """The event types of an event stream, and its payloads joined; every CRC checked."""
    kinds, payloads, at = [], [], 0
    while at < len(data):
        total, head_len, prelude_crc = struct.unpack(">III", data[at:at + 12])
        assert zlib.crc32(data[at:at + 8]) == prelude_crc
        message = data[at:at + total]
        assert zlib.crc32(message[:-4]) == struct.unpack(">I", message[-4:])[0]
        headers, i = {}, 12
        while i < 12 + head_len:
            n = message[i]
            key = message[i + 1:i + 1 + n].decode()
            size = struct.unpack(">H", message[i + 2 + n:i + 4 + n])[0]
            headers[key] = message[i + 4 + n:i + 4 + n + size].decode()
            i += 4 + n + size
        kinds.append(headers[":event-type"])
        payloads.append(message[12 + head_len:-4])
        at += total
    return kinds, b"".join(payloads)


def _stream_path(name: str) -> str:
    return f"/2021-11-15/functions/{name}/response-streaming-invocations"


def _function(lam, nodes) -> str:  # type: ignore[no-untyped-def]
    """A streaming function with reserved concurrency 1, its instance on node 1."""
    name = f"stream-{unique()}"
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": python_zip(STREAMER)}, Timeout=60)
    wait_active(lam, name)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    wait_until(lambda: all(client(n).get_function_concurrency(FunctionName=name)
                           .get("ReservedConcurrentExecutions") == 1 for n in nodes), timeout=15,
               what="the reservation everywhere")
    status, _, _ = _raw(nodes[1], "POST", _stream_path(name), b"{}")  # the instance and its lease: node 1's
    assert status == 200
    return name


@contextlib.contextmanager
def _two(tmp_path: Path):  # type: ignore[no-untyped-def]
    with nats_server() as nats, contextlib.ExitStack() as stack:
        nodes = [stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / f"n{i}")],
                                                expect_exit=None if i == 1 else 0, env={"RAPID_PRIVATE_TMP": "directory"}))
                 for i in range(2)]
        wait_until(lambda: all(metric(n, "rapid_cluster_nodes") == 2 for n in nodes), timeout=15,
                   what="both nodes to see each other")
        yield nodes


def test_streams_are_forwarded_as_written_and_unchanged(tmp_path: Path) -> None:
    with _two(tmp_path) as nodes:
        lam = client(nodes[0])
        name = _function(lam, nodes)

        # InvokeWithResponseStream on node 0: the first piece arrives before the second exists.
        gate = tmp_path / "gate-invoke"
        out = _boto(nodes[0]).invoke_with_response_stream(FunctionName=name,
                                                          Payload=json.dumps({"gate": str(gate)}), LogType="Tail")
        assert out["StatusCode"] == 200 and out["ExecutedVersion"] == "$LATEST"
        events = iter(out["EventStream"])
        assert next(events) == {"PayloadChunk": {"Payload": b"first;"}}
        assert not gate.exists()
        gate.touch()
        rest = list(events)
        assert b"".join(e["PayloadChunk"]["Payload"] for e in rest if "PayloadChunk" in e).startswith(b"second;")
        assert "REPORT RequestId" in base64.b64decode(rest[-1]["InvokeComplete"]["LogResult"]).decode()
        assert metric(nodes[0], "rapid_cluster_forwarded_out_total") == 1
        assert metric(nodes[1], "rapid_cluster_forwarded_in_total") == 1

        # 3 MB through node 0: well-framed event-stream messages (every CRC right) whose
        # payloads are what the function wrote and what node 1 itself answers.
        body = json.dumps({"big": 3 * 1024 * 1024}).encode()
        direct = _raw(nodes[1], "POST", _stream_path(name), body)
        relayed = _raw(nodes[0], "POST", _stream_path(name), body)
        assert (relayed[0], relayed[1]["content-type"]) == (200, "application/vnd.amazon.eventstream")
        kinds, payload = _messages(relayed[2])
        assert kinds[-1] == "InvokeComplete" and set(kinds[:-1]) == {"PayloadChunk"}
        assert payload[:-2] == _messages(direct[2])[1][:-2]  # all but InvokeComplete's "{}"
        assert payload.startswith(b"first;second;") and payload.count(b"z") == 3 * 1024 * 1024
        assert metric(nodes[0], "rapid_cluster_forwarded_out_total") == 2

        # A RESPONSE_STREAM function URL called on node 0: the head, then the pieces as written.
        made = lam.create_function_url_config(FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM")
        url_id = made["FunctionUrl"].split("//")[1][:32]
        wait_until(lambda: _raw(nodes[0], "GET", f"/lambda-url/{url_id}/")[0] != 403, timeout=10,
                   what="the URL on node 0")
        gate = tmp_path / "gate-url"
        conn = http.client.HTTPConnection("127.0.0.1", nodes[0].port, timeout=60)
        try:
            conn.request("GET", f"/lambda-url/{url_id}/x?gate={gate}")
            resp = conn.getresponse()
            assert resp.status == 201 and resp.getheader("content-type") == "text/plain"
            assert resp.getheader("transfer-encoding") == "chunked"
            assert resp.getheader("x-seen-for") == "127.0.0.1"  # the caller's address, not node 0's
            assert resp.read1(len(b"first;")) == b"first;"
            assert not gate.exists()
            gate.touch()
            assert resp.read().startswith(b"second;")
        finally:
            conn.close()
        direct = _raw(nodes[1], "GET", f"/lambda-url/{url_id}/big?big={2 * 1024 * 1024}")
        relayed = _raw(nodes[0], "GET", f"/lambda-url/{url_id}/big?big={2 * 1024 * 1024}")
        assert relayed[0] == direct[0] == 201 and relayed[2] == direct[2] and len(direct[2]) > 2 * 1024 * 1024
        # While node 1's one instance is busy, node 0 answers the URL's throttle as a URL does.
        gate = tmp_path / "gate-busy"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            busy = pool.submit(_raw, nodes[1], "GET", f"/lambda-url/{url_id}/?gate={gate}")
            wait_until(lambda: metric(nodes[1], "rapid_cluster_inflight") == 1, timeout=10, what="the busy instance")
            throttled = _raw(nodes[0], "GET", f"/lambda-url/{url_id}/")
            gate.touch()
            assert busy.result()[0] == 201
        assert throttled[0] == 429 and json.loads(throttled[2]) == {"Message": "Rate Exceeded."}


def test_a_peer_dying_mid_stream_breaks_the_stream(tmp_path: Path) -> None:
    with _two(tmp_path) as nodes:
        lam = client(nodes[0])
        invoked = _function(lam, nodes)
        urled = _function(lam, nodes)
        url_id = lam.create_function_url_config(FunctionName=urled, AuthType="NONE",
                                                InvokeMode="RESPONSE_STREAM")["FunctionUrl"].split("//")[1][:32]
        wait_until(lambda: _raw(nodes[0], "GET", f"/lambda-url/{url_id}/")[0] != 403, timeout=10,
                   what="the URL on node 0")
        never = tmp_path / f"never-{uuid.uuid4().hex}"  # the functions wait for it forever
        out = _boto(nodes[0]).invoke_with_response_stream(FunctionName=invoked,
                                                          Payload=json.dumps({"gate": str(never)}))
        events = iter(out["EventStream"])
        assert next(events) == {"PayloadChunk": {"Payload": b"first;"}}
        conn = http.client.HTTPConnection("127.0.0.1", nodes[0].port, timeout=60)
        try:
            conn.request("GET", f"/lambda-url/{url_id}/?gate={never}")
            resp = conn.getresponse()
            assert resp.status == 201
            assert resp.read1(len(b"first;")) == b"first;"
            nodes[1].proc.send_signal(signal.SIGKILL)
            nodes[1].proc.wait(10)
            # The event stream's last event says the stream broke; nothing else came.
            assert list(events) == [{"InvokeComplete": {
                "ErrorCode": "ServiceException",
                "ErrorDetails": "The node running the invocation stopped answering mid-stream; "
                                "the response is incomplete."}}]
            # The URL's body ends without its last chunk.
            with pytest.raises(http.client.IncompleteRead):
                resp.read()
        finally:
            conn.close()
        assert nodes[0].request("GET", "/2015-03-31/functions").status == 200


def test_forwarded_invocations_run_side_by_side(tmp_path: Path) -> None:
    # Reserved 2, both instances on node 1: two invokes and then two streams sent to node 0
    # at once are both forwarded and must run on node 1 together (each waits for a file the
    # test creates only once both run), not one after the other.
    with _two(tmp_path) as nodes:
        lam = client(nodes[0])
        name = f"pair-{unique()}"
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(STREAMER)}, Timeout=60)
        wait_active(lam, name)
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
        wait_until(lambda: all(client(n).get_function_concurrency(FunctionName=name)
                               .get("ReservedConcurrentExecutions") == 2 for n in nodes), timeout=15,
                   what="the reservation everywhere")

        def pair(node, path: str, gate: Path) -> list[tuple[int, dict[str, str], bytes]]:  # type: ignore[no-untyped-def]
            body = json.dumps({"gate": str(gate)}).encode()
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                calls = [pool.submit(_raw, node, "POST", path, body) for _ in range(2)]
                wait_until(lambda: metric(nodes[1], "rapid_cluster_inflight") == 2, timeout=20,
                           what="two invocations running on node 1 at once")
                gate.touch()
                return [c.result() for c in calls]

        invoke_path = f"/2015-03-31/functions/{name}/invocations"
        warm = pair(nodes[1], invoke_path, tmp_path / "gate-warm")  # both instances and leases: node 1's
        assert [r[0] for r in warm] == [200, 200]
        wait_until(lambda: metric(nodes[1], "rapid_cluster_inflight") == 0, timeout=10, what="node 1 idle")
        synced = pair(nodes[0], invoke_path, tmp_path / "gate-sync")
        assert [r[0] for r in synced] == [200, 200] and all(r[2].startswith(b"first;second;") for r in synced)
        wait_until(lambda: metric(nodes[1], "rapid_cluster_inflight") == 0, timeout=10, what="node 1 idle")
        streamed = pair(nodes[0], _stream_path(name), tmp_path / "gate-stream")
        assert [r[0] for r in streamed] == [200, 200]
        assert all(_messages(r[2])[1].startswith(b"first;second;") for r in streamed)
        assert metric(nodes[1], "rapid_cluster_forwarded_in_total") == 4
