"""The Runtime API of a real daemon, spoken by hand over raw sockets.

Each function's bootstrap is a stub that never calls ``/next`` itself. It reports its
``AWS_LAMBDA_RUNTIME_API`` to the test over a Unix socket and, on request, opens TCP
connections to that address and hands them over (SCM_RIGHTS) while keeping its own copy
open. So every connection the test uses is held by the runtime's own process, as the
Runtime API's peer check requires, and the test plays the runtime with hand-written HTTP/1.1
bytes: it controls keep-alive, chunking and trailers exactly. An invoke sent in a background
thread starts the instance (and blocks until the invocation is answered).
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capabilities import need
from tests.daemon import Daemon, Reply, make_function, run_server, wait_until

TIMEOUT = 6  # the functions' --timeout, seconds
REGION, ACCOUNT = "us-east-1", "000000000000"
PREFIX = "/2018-06-01/runtime"
MAX_RESPONSE = 6 * 1024 * 1024 + 100  # 6,291,556

OK = {"status": "OK"}
INVALID_ID = {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}
NOT_FOUND = {"errorMessage": "Not Found", "errorType": "NotFound"}


def _transition(current: str, target: str) -> dict[str, str]:
    """RIE's 403 (rapi/handler/constants.go), with RIE's state names (core/states.go)."""
    return {
        "errorMessage": f"State transition from {current} to {target} failed for runtime. "
        "Error: State transition is not allowed",
        "errorType": "InvalidStateTransition",
    }


# -- a runtime made of raw bytes ------------------------------------------------------------


class Raw:
    """One keep-alive connection to a Runtime API; requests and responses are bytes."""

    def __init__(self, sock: socket.socket, timeout: float = 5.0) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "User-Agent: raw-test-runtime"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _fill(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError(f"connection closed; unread: {self.buf!r}")
        self.buf += data

    def response(self) -> Reply:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status, _ = lines[0].split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        assert "transfer-encoding" not in headers
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return Reply(int(status), headers, body)

    def call(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Reply:
        self.request(method, path, body, headers)
        return self.response()

    def nothing_arrives(self, within: float) -> bool:
        """True when no byte comes back within ``within`` seconds (a parked /next)."""
        if self.buf:
            return False
        self.sock.settimeout(within)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(5.0)
        self.buf += data
        return False

    # Runtime API calls
    def next(self, path: str = f"{PREFIX}/invocation/next") -> Reply:
        return self.call("GET", path, headers={"Accept": "*/*"})

    def respond(self, request_id: str, body: bytes, headers: dict[str, str] | None = None) -> Reply:
        return self.call("POST", f"{PREFIX}/invocation/{request_id}/response", body,
                         {"Content-Type": "application/json", **(headers or {})})

    def error(self, request_id: str, body: bytes) -> Reply:
        return self.call("POST", f"{PREFIX}/invocation/{request_id}/error", body,
                         {"Content-Type": "application/json"})

    def close(self) -> None:
        """Hang up for real: the runtime's process holds a copy of this socket, so a plain
        close() of ours would leave the connection open."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Invoke:
    """A synchronous invoke running in a thread; ``result()`` joins it."""

    def __init__(self, d: Daemon, name: str, payload: object = None, headers: dict[str, str] | None = None) -> None:
        self.reply: Reply | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(d, name, payload, headers), daemon=True)
        self.thread.start()

    def _run(self, d: Daemon, name: str, payload: object, headers: dict[str, str] | None) -> None:
        try:
            self.reply = d.invoke(name, payload, headers, timeout=20)
        except BaseException as exc:  # noqa: BLE001 - handed to the test by result()
            self.error = exc

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def result(self, timeout: float = 8.0) -> Reply:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the invoke was not answered"
        if self.error is not None:
            raise self.error
        assert self.reply is not None
        return self.reply


# The stub runtime: reports its Runtime API address, then opens connections on demand and
# passes them to the test, keeping its own copies (so the peer is this process).
STUB = """#!{python}
import os, socket, time
addr = os.environ["AWS_LAMBDA_RUNTIME_API"]
host, _, port = addr.rpartition(":")
ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ctl.connect({control!r})
ctl.sendall(addr.encode() + b"\\n")
held = []
while ctl.recv(1):
    conn = socket.create_connection((host, int(port)))
    held.append(conn)
    socket.send_fds(ctl, [b"c"], [conn.fileno()])
while True:
    time.sleep(1000)
"""


class Stub:
    def __init__(self, name: str) -> None:
        self.name = name
        self.control = f"\0rapid-test-{uuid.uuid4().hex}"  # abstract namespace: no path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.control)
        self.listener.listen(1)
        self.listener.settimeout(5.0)
        self.ctl: socket.socket | None = None
        self.address = ""

    def source(self) -> str:
        return STUB.replace("{python}", sys.executable).replace("{control!r}", repr(self.control))

    def attach(self) -> None:
        if self.ctl is not None:
            return
        try:
            self.ctl, _ = self.listener.accept()
        except TimeoutError:
            raise AssertionError(f"{self.name}'s runtime never started") from None
        self.ctl.settimeout(5.0)
        line = b""
        while not line.endswith(b"\n"):
            chunk = self.ctl.recv(1)
            assert chunk, f"{self.name}'s runtime hung up"
            line += chunk
        self.address = line.decode().strip()

    def connect(self) -> socket.socket:
        self.attach()
        assert self.ctl is not None
        self.ctl.sendall(b"c")
        _, fds, _, _ = socket.recv_fds(self.ctl, 1, 1)
        assert len(fds) == 1, "no connection came back from the runtime"
        return socket.socket(fileno=fds[0])

    def close(self) -> None:
        if self.ctl is not None:
            self.ctl.close()
        self.listener.close()


class Harness:
    def __init__(self, d: Daemon, stubs: dict[str, Stub]) -> None:
        self.d = d
        self.stubs = stubs
        self.invokes: list[Invoke] = []
        self.conns: list[Raw] = []

    def invoke(self, name: str = "fn", payload: object = None, headers: dict[str, str] | None = None) -> Invoke:
        inv = Invoke(self.d, name, payload, headers)
        self.invokes.append(inv)
        return inv

    def address(self, name: str = "fn") -> str:
        self.stubs[name].attach()
        return self.stubs[name].address

    def connect(self, name: str = "fn") -> Raw:
        """A new connection to ``name``'s Runtime API, held by its runtime process."""
        conn = Raw(self.stubs[name].connect())
        self.conns.append(conn)
        return conn


@contextlib.contextmanager
def harness(tmp_path: Path, names: tuple[str, ...] = ("fn",)) -> Iterator[Harness]:
    args = ["--timeout", str(TIMEOUT)]
    stubs = {name: Stub(name) for name in names}
    for name, stub in stubs.items():
        folder = make_function(tmp_path / name, stub.source())
        args += ["--function", f"{name}={folder}"]
    h: Harness | None = None
    try:
        with run_server(args) as d:
            h = Harness(d, stubs)
            yield h
    finally:
        if h is not None:
            for conn in h.conns:
                conn.sock.close()
            for inv in h.invokes:
                inv.thread.join(15)
        for stub in stubs.values():
            stub.close()
        if h is not None:
            assert not any(inv.thread.is_alive() for inv in h.invokes), "an invoke thread outlived the daemon"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with harness(tmp_path) as hh:
        yield hh


def _arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


# -- /next ----------------------------------------------------------------------------------


def test_next_returns_event_and_headers(h: Harness) -> None:
    context = {"client": {"installation_id": "i-1"}, "custom": {"k": "v"}, "env": {"locale": "fr"}}
    context_text = json.dumps(context)
    payload = {"hello": "world", "n": [1, 2, 3]}
    inv = h.invoke("fn", payload, {"X-Amz-Client-Context": base64.b64encode(context_text.encode()).decode()})
    rt = h.connect()
    before_ms = time.time() * 1000
    r = rt.next()
    assert r.status == 200
    assert r.body == json.dumps(payload).encode()  # the invoker's bytes, untouched
    assert r.headers["content-type"] == "application/json"
    rid = r.headers["lambda-runtime-aws-request-id"]
    assert len(rid) == 36 and rid.count("-") == 4
    deadline = int(r.headers["lambda-runtime-deadline-ms"])
    assert abs(deadline - (before_ms + TIMEOUT * 1000)) < 1500, (deadline, before_ms)
    assert r.headers["lambda-runtime-invoked-function-arn"] == _arn("fn")
    assert r.headers["lambda-runtime-trace-id"].startswith("Root=1-")
    assert r.headers["lambda-runtime-client-context"] == context_text  # decoded JSON
    assert json.loads(r.headers["lambda-runtime-client-context"]) == context
    assert "lambda-runtime-cognito-identity" not in r.headers
    assert int(r.headers["content-length"]) == len(r.body)

    ack = rt.respond(rid, b'{"answer": 42}')
    assert (ack.status, ack.json()) == (202, OK)
    reply = inv.result()
    assert reply.status == 200
    assert reply.body == b'{"answer": 42}'
    assert reply.function_error is None
    assert reply.headers["x-amzn-requestid"] == rid


def test_next_without_client_context_or_payload(h: Harness) -> None:
    inv = h.invoke("fn", None, {"X-Amzn-Trace-Id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Sampled=1"})
    rt = h.connect()
    r = rt.next()
    assert r.status == 200
    assert r.body == b"{}"
    assert "lambda-runtime-client-context" not in r.headers
    assert r.headers["lambda-runtime-trace-id"] == "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Sampled=1"
    rid = r.headers["lambda-runtime-aws-request-id"]
    assert rt.respond(rid, b"null").json() == OK
    assert inv.result().body == b"null"


# -- chunked responses with trailers (the Go client, streaming runtimes) --------------------


def test_chunked_response_with_trailers_then_next_on_same_connection(h: Harness) -> None:
    first = h.invoke("fn", {"n": 1})
    rt = h.connect()
    r = rt.next()
    assert r.status == 200 and r.body == b'{"n": 1}'
    rid = r.headers["lambda-runtime-aws-request-id"]

    rt.send(
        f"POST {PREFIX}/invocation/{rid}/response HTTP/1.1\r\n".encode()
        + b"Host: 127.0.0.1\r\n"
        b"User-Agent: aws-lambda-go/go1.19.8\r\n"
        b"Content-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
        b"\r\n"
    )
    rt.send(b"c\r\n{\"parts\": [\"\r\n")
    time.sleep(0.02)
    rt.send(b"5\r\nalpha\r\n")
    time.sleep(0.02)
    rt.send(b"b;name=value\r\n\", \"beta\"]}\r\n")
    # The Go client declares both trailers on every POST and leaves them empty unless its
    # io.Reader failed (tests/test_supervisor.py covers a failed one).
    rt.send(
        b"0\r\n"
        b"Lambda-Runtime-Function-Error-Type: \r\n"
        b"Lambda-Runtime-Function-Error-Body: \r\n"
        b"\r\n"
    )
    ack = rt.response()
    assert (ack.status, ack.json()) == (202, OK)
    reply = first.result()
    assert reply.status == 200
    assert reply.body == b'{"parts": ["alpha", "beta"]}'  # exactly the de-chunked body

    # The same connection goes on serving: a parked /next gets the next invoke's event.
    rt.request("GET", f"{PREFIX}/invocation/next", headers={"Accept-Encoding": "gzip"})
    assert rt.nothing_arrives(0.1)  # parked: nothing to hand out yet
    second = h.invoke("fn", {"n": 2})
    r2 = rt.response()
    assert r2.status == 200
    assert r2.body == b'{"n": 2}'
    rid2 = r2.headers["lambda-runtime-aws-request-id"]
    assert rid2 != rid
    assert r2.headers["lambda-runtime-invoked-function-arn"] == _arn("fn")
    # Answer chunked again, this time with no trailer fields (Go's usual case).
    rt.send(
        f"POST {PREFIX}/invocation/{rid2}/response HTTP/1.1\r\n".encode()
        + b"Host: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Trailer: Lambda-Runtime-Function-Error-Body,Lambda-Runtime-Function-Error-Type\r\n\r\n"
        b"3\r\n\"ok\r\n1\r\n\"\r\n0\r\n\r\n"
    )
    ack2 = rt.response()
    assert (ack2.status, ack2.json()) == (202, OK)
    assert second.result().body == b'"ok"'


# -- wrong request ids and wrong states -----------------------------------------------------


def test_response_before_any_next_is_invalid_request_id(h: Harness) -> None:
    inv = h.invoke("fn", {"x": 1})
    rt = h.connect()
    r = rt.respond("8476a536-e9f4-11e8-9739-2dfe598c3fcd", b'"early"')
    assert (r.status, r.json()) == (400, INVALID_ID)
    # Nothing was settled by it: init completes and the event is handed out normally.
    n = rt.next()
    assert n.status == 200 and n.body == b'{"x": 1}'
    rid = n.headers["lambda-runtime-aws-request-id"]
    assert rt.respond(rid, b'"on time"').json() == OK
    assert inv.result().body == b'"on time"'


def test_unknown_and_repeated_request_ids(h: Harness) -> None:
    inv = h.invoke("fn", {"x": 1})
    rt = h.connect()
    rid = rt.next().headers["lambda-runtime-aws-request-id"]

    r = rt.respond("00000000-0000-0000-0000-000000000000", b'"wrong"')
    assert (r.status, r.json()) == (400, INVALID_ID)
    r = rt.error("not-a-request-id", b'{"errorType":"X","errorMessage":"y"}')
    assert (r.status, r.json()) == (400, INVALID_ID)
    assert not inv.done  # the invoker is still waiting for the real answer

    r = rt.respond(rid, b'"right"')
    assert (r.status, r.json()) == (202, OK)
    r = rt.respond(rid, b'"again"')
    assert (r.status, r.json()) == (400, INVALID_ID)
    r = rt.error(rid, b'{"errorType":"X","errorMessage":"late"}')
    assert (r.status, r.json()) == (400, INVALID_ID)
    reply = inv.result()
    assert reply.body == b'"right"'
    assert reply.function_error is None


def test_next_while_invocation_outstanding_is_403(h: Harness) -> None:
    inv = h.invoke("fn", {"x": 1})
    rt = h.connect()
    rid = rt.next().headers["lambda-runtime-aws-request-id"]
    r = rt.next()
    assert (r.status, r.json()) == (403, _transition("Running", "Ready"))
    other = h.connect()  # from another connection too
    r = other.next()
    assert (r.status, r.json()) == (403, _transition("Running", "Ready"))
    assert not inv.done
    assert rt.respond(rid, b'"fine"').json() == OK
    assert inv.result().body == b'"fine"'


def test_init_error_after_init_is_403(h: Harness) -> None:
    inv = h.invoke("fn", {"x": 1})
    rt = h.connect()
    rid = rt.next().headers["lambda-runtime-aws-request-id"]
    body = b'{"errorMessage":"Failed to load function.","errorType":"InvalidFunctionException"}'
    r = rt.call("POST", f"{PREFIX}/init/error", body, {"Lambda-Runtime-Function-Error-Type": "Unhandled"})
    assert (r.status, r.json()) == (403, _transition("Running", "InitError"))
    # The instance is unharmed: the invocation is still answerable.
    assert rt.respond(rid, b'"survived"').json() == OK
    assert inv.result().body == b'"survived"'


# -- payload limit --------------------------------------------------------------------------


def test_response_over_limit_is_413_and_invoker_gets_size_error(h: Harness) -> None:
    inv = h.invoke("fn", {"big": True})
    rt = h.connect()
    rid = rt.next().headers["lambda-runtime-aws-request-id"]
    body = b'"' + b"x" * (MAX_RESPONSE - 1) + b'"'  # MAX_RESPONSE + 1 bytes
    assert len(body) == MAX_RESPONSE + 1
    r = rt.respond(rid, body)
    assert r.status == 413
    assert r.json() == {
        "errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "RequestEntityTooLarge",
    }
    reply = inv.result()
    assert reply.status == 200
    assert reply.function_error == "Unhandled"
    assert reply.json() == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    # The connection survived the oversize body and the runtime can go on.
    again = rt.respond(rid, b'"late"')
    assert (again.status, again.json()) == (400, INVALID_ID)
    nxt = h.invoke("fn", {"after": 1})
    r2 = rt.next()
    assert r2.status == 200 and r2.body == b'{"after": 1}'
    assert rt.respond(r2.headers["lambda-runtime-aws-request-id"], b"1").json() == OK
    assert nxt.result().body == b"1"


def test_response_exactly_at_limit_is_accepted(h: Harness) -> None:
    inv = h.invoke("fn", {"big": True})
    rt = h.connect()
    rid = rt.next().headers["lambda-runtime-aws-request-id"]
    body = b'"' + b"y" * (MAX_RESPONSE - 2) + b'"'
    assert len(body) == MAX_RESPONSE
    r = rt.respond(rid, body)
    assert (r.status, r.json()) == (202, OK)
    reply = inv.result()
    assert reply.status == 200 and reply.function_error is None
    assert reply.body == body


# -- /error ---------------------------------------------------------------------------------


def test_error_body_reaches_invoker_unchanged(h: Harness) -> None:
    inv = h.invoke("fn", {"x": 1})
    rt = h.connect()
    rid = rt.next().headers["lambda-runtime-aws-request-id"]
    body = (
        b'{"errorMessage": "something bad happened", "errorType": "MyError", '
        b'"requestId": "' + rid.encode() + b'", "stackTrace": ["  File \\"/var/task/app.py\\", line 45\\n"]}'
    )
    r = rt.error(rid, body)
    assert (r.status, r.json()) == (202, OK)
    reply = inv.result()
    assert reply.status == 200
    assert reply.function_error == "Unhandled"
    assert reply.body == body


# -- how clients spell paths ----------------------------------------------------------------


def test_url_encoded_request_id(h: Harness) -> None:
    inv = h.invoke("fn", {"x": 1})
    rt = h.connect()
    rid = rt.next().headers["lambda-runtime-aws-request-id"]
    encoded = "".join(f"%{ord(c):02X}" for c in rid)  # every character percent-encoded
    r = rt.respond(encoded, b'"encoded"')
    assert (r.status, r.json()) == (202, OK)
    assert inv.result().body == b'"encoded"'
    # And an encoded id that does not decode to the current one is still refused.
    inv2 = h.invoke("fn", {"x": 2})
    rid2 = rt.next().headers["lambda-runtime-aws-request-id"]
    r = rt.respond(rid2[:-1] + "%2F" + rid2[-1:], b'"no"')
    assert (r.status, r.json()) == (400, INVALID_ID)
    assert rt.respond(rid2.replace("-", "%2d"), b'"yes"').json() == OK
    assert inv2.result().body == b'"yes"'


def test_leading_double_slash_paths(h: Harness) -> None:
    """The SST fork joins "/" + "/2018-06-01/...": every path starts with //."""
    inv = h.invoke("fn", {"x": 1})
    rt = h.connect()
    r = rt.next(f"/{PREFIX}/invocation/next")
    assert r.status == 200 and r.body == b'{"x": 1}'
    rid = r.headers["lambda-runtime-aws-request-id"]
    ack = rt.call("POST", f"/{PREFIX}/invocation/{rid}/response", b'"slashes"',
                  {"Content-Type": "application/json", "lambda-runtime-aws-request-id": rid})
    assert (ack.status, ack.json()) == (202, OK)
    assert inv.result().body == b'"slashes"'


def test_unknown_paths_are_404(h: Harness) -> None:
    inv = h.invoke("fn", {"x": 1})
    rt = h.connect()
    for method, path in [
        ("GET", "/"),
        ("GET", "/2018-06-01/runtime/next"),
        ("GET", "/2018-06-01/runtime/"),
        ("GET", "/2020-01-01/extension/bogus"),  # the Extensions API answers its own paths
        ("POST", "/2018-06-01/runtime/foo"),
        ("POST", "/2018-06-01/runtime/invocation/abc/bogus"),
        ("GET", "/2018-06-01/runtime/init/errors"),
    ]:
        r = rt.call(method, path)
        assert (r.status, r.json()) == (404, NOT_FOUND), (method, path)
    # None of that touched the instance: init and the invocation proceed normally.
    n = rt.next()
    assert n.status == 200
    rid = n.headers["lambda-runtime-aws-request-id"]
    r = rt.call("POST", f"{PREFIX}/invocation/{rid}/bogus", b"{}")
    assert (r.status, r.json()) == (404, NOT_FOUND)
    assert rt.respond(rid, b"{}").json() == OK
    assert inv.result().body == b"{}"


def test_wrong_method_on_a_known_path_is_405(h: Harness) -> None:
    h.invoke("fn", {"x": 1})
    rt = h.connect()
    method_not_allowed = {"errorMessage": "Method Not Allowed", "errorType": "MethodNotAllowed"}
    for method, path in [
        ("POST", f"{PREFIX}/invocation/next"),
        ("GET", f"{PREFIX}/invocation/abc/response"),
        ("GET", f"{PREFIX}/invocation/abc/error"),
        ("GET", f"{PREFIX}/init/error"),
    ]:
        r = rt.call(method, path)
        assert (r.status, r.json()) == (405, method_not_allowed), (method, path)
    n = rt.next()
    assert n.status == 200
    assert rt.respond(n.headers["lambda-runtime-aws-request-id"], b"{}").json() == OK


def test_paths_that_match_no_route_are_404_whatever_the_method(h: Harness) -> None:
    """RIE's router (chi) only knows ``invocation/next`` (GET) and
    ``invocation/{id}/response|error`` (POST): these paths match no route and get 404, not
    a 405 that suggests POST would work there (regression: rapid answered 405 to any
    non-POST under ``invocation/``)."""
    h.invoke("fn", {"x": 1})
    rt = h.connect()
    for method, path in [
        ("GET", f"{PREFIX}/invocation/nxt"),
        ("GET", f"{PREFIX}/invocation/next/"),
        ("GET", f"{PREFIX}/invocation/abc/bogus"),
    ]:
        r = rt.call(method, path)
        assert (r.status, r.json()) == (404, NOT_FOUND), (method, path)
    n = rt.next()
    assert rt.respond(n.headers["lambda-runtime-aws-request-id"], b"{}").json() == OK


# -- connections come and go ----------------------------------------------------------------


def test_runtime_drops_parked_next_and_polls_again(h: Harness) -> None:
    """A runtime whose /next connection goes away (Node rotates connections; a client can
    be restarted) polls again on a new one and gets the next event there."""
    first = h.invoke("fn", {"n": 1})
    rt = h.connect()
    # Opened now: a runtime parked at /next is frozen and can hand out nothing more.
    dropped, fresh = h.connect(), h.connect()
    rid = rt.next().headers["lambda-runtime-aws-request-id"]
    assert rt.respond(rid, b"1").json() == OK
    assert first.result().body == b"1"

    dropped.request("GET", f"{PREFIX}/invocation/next")
    assert dropped.nothing_arrives(0.1)
    peer = dropped.sock.getsockname()[1]
    api_port = int(h.address().rsplit(":", 1)[1])
    assert not _daemon_closed(api_port, peer)  # the probe sees the open connection
    dropped.close()
    # The daemon has noticed the hang-up once it has closed its end of that connection.
    wait_until(lambda: _daemon_closed(api_port, peer), 10, "the daemon to see the hang-up")

    fresh.request("GET", f"{PREFIX}/invocation/next")
    second = h.invoke("fn", {"n": 2})
    r = fresh.response()
    assert r.status == 200 and r.body == b'{"n": 2}'
    assert fresh.respond(r.headers["lambda-runtime-aws-request-id"], b"2").json() == OK
    assert second.result().body == b"2"


def _daemon_closed(port: int, peer: int) -> bool:
    """Whether the daemon's end of the loopback connection from ``peer`` to ``port`` is
    closed (gone, or past CLOSE_WAIT: the daemon closed it after the peer's FIN)."""
    want_local, want_remote = f":{port:04X}", f":{peer:04X}"
    with open("/proc/net/tcp") as f:
        for line in list(f)[1:]:
            fields = line.split()
            if fields[1].endswith(want_local) and fields[2].endswith(want_remote):
                return fields[3] not in ("01", "08")  # ESTABLISHED, CLOSE_WAIT
    return True


def test_pipelined_response_and_next(h: Harness) -> None:
    """A runtime that writes its response and its next /next in one go is answered in
    order: 202 for the response, then the queued event."""
    first = h.invoke("fn", {"n": 1})
    rt = h.connect()
    rid = rt.next().headers["lambda-runtime-aws-request-id"]
    second = h.invoke("fn", {"n": 2})  # queued: the only instance is busy
    time.sleep(0.05)
    rt.send(
        f"POST {PREFIX}/invocation/{rid}/response HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1"
        f"GET {PREFIX}/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    ack = rt.response()
    assert (ack.status, ack.json()) == (202, OK)
    r = rt.response()
    assert r.status == 200 and r.body == b'{"n": 2}'
    assert first.result().body == b"1"
    assert rt.respond(r.headers["lambda-runtime-aws-request-id"], b"2").json() == OK
    assert second.result().body == b"2"


# The docs' bash runtime, as runtime-clients.md §3 recorded it: curl, a new connection
# per request, the response posted with -d (here --data-binary, to keep the bytes).
CURL_RUNTIME = """#!/bin/sh
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
HEADERS="$(mktemp)"
while true; do
  curl -sS -LD "$HEADERS" -o /dev/null "$API/invocation/next"
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  curl -sS -o /dev/null -X POST "$API/invocation/$REQUEST_ID/response" --data-binary @response.json
done
"""


def test_curl_runtime_posting_a_large_response_is_not_stalled(tmp_path: Path) -> None:
    """curl sends `Expect: 100-continue` with bodies over 1 MiB and then waits up to 1 s
    for `100 Continue` before sending the body. RIE (Go net/http) sends it; without it
    every large response from a curl-based runtime stalled for a full second
    (regression). What curl saw is in its own trace, printed into the function's log."""
    need("curl")
    body = b'"' + b"z" * (2 * 1024 * 1024) + b'"'
    traced = CURL_RUNTIME.replace(
        '-X POST "$API/invocation/$REQUEST_ID/response" --data-binary @response.json',
        '-v -X POST "$API/invocation/$REQUEST_ID/response" --data-binary @response.json 2>&1 | grep -i "^< HTTP/"')
    folder = make_function(tmp_path / "curl", traced)
    (folder / "response.json").write_bytes(body)  # read from the task root, the working directory
    with run_server(["--function", f"curl={folder}", "--timeout", str(TIMEOUT)]) as d:
        assert d.invoke("curl", {"warm": 1}).body == body
        reply = d.invoke("curl", {"warm": 2})
        assert reply.status == 200 and reply.function_error is None
        assert reply.body == body
        # curl was told to go on at once (the interim answer came before the final one).
        replies = d.wait_for_line(r"< HTTP/1.1 202")
        lines = [line.split("] ", 1)[-1].strip() for line in d.lines if "< HTTP/" in line]
        assert lines[:2] == ["< HTTP/1.1 100 Continue", "< HTTP/1.1 202 Accepted"], replies


# -- isolation between instances ------------------------------------------------------------


def test_instances_cannot_touch_each_others_invocations(tmp_path: Path) -> None:
    with harness(tmp_path, ("fa", "fb")) as h:
        inv_a = h.invoke("fa", {"for": "a"})
        inv_b = h.invoke("fb", {"for": "b"})
        a, b = h.connect("fa"), h.connect("fb")
        assert h.address("fa") != h.address("fb")

        ra = a.next()
        assert ra.body == b'{"for": "a"}'
        assert ra.headers["lambda-runtime-invoked-function-arn"] == _arn("fa")
        rid_a = ra.headers["lambda-runtime-aws-request-id"]

        # B has not even finished init: A's id means nothing here.
        r = b.respond(rid_a, b'"hijacked"')
        assert (r.status, r.json()) == (400, INVALID_ID)

        rb = b.next()
        assert rb.body == b'{"for": "b"}'  # B gets B's event, never A's
        assert rb.headers["lambda-runtime-invoked-function-arn"] == _arn("fb")
        rid_b = rb.headers["lambda-runtime-aws-request-id"]
        assert rid_b != rid_a

        for attempt in (b.respond(rid_a, b'"hijacked"'), b.error(rid_a, b'{"errorType":"Hijack"}')):
            assert (attempt.status, attempt.json()) == (400, INVALID_ID)
        r = a.respond(rid_b, b'"hijacked"')  # nor A answer B's
        assert (r.status, r.json()) == (400, INVALID_ID)
        assert not inv_a.done and not inv_b.done

        assert b.respond(rid_b, b'"from b"').json() == OK
        assert inv_b.result().body == b'"from b"'
        assert a.respond(rid_a, b'"from a"').json() == OK
        reply_a = inv_a.result()
        assert reply_a.body == b'"from a"' and reply_a.function_error is None

        # B parks a /next; a new event for A waits for A and never shows up on B.
        b.request("GET", f"{PREFIX}/invocation/next")
        inv_a2 = h.invoke("fa", {"for": "a", "n": 2})
        assert b.nothing_arrives(0.3)
        ra2 = a.next()
        assert ra2.body == b'{"for": "a", "n": 2}'
        assert a.respond(ra2.headers["lambda-runtime-aws-request-id"], b"2").json() == OK
        assert inv_a2.result().body == b"2"
        assert b.nothing_arrives(0.05)


def test_a_process_outside_the_instance_cannot_take_its_events(h: Harness) -> None:
    """The Runtime API answers only the instance's own processes (rapid's peer check,
    ``verify_runtime_peer``, on by default): a connection the test opens itself is refused
    and never sees the event, which still reaches the real runtime."""
    inv = h.invoke("fn", {"secret": 1})
    host, _, port = h.address().rpartition(":")
    outsider = Raw(socket.create_connection((host, int(port)), timeout=5))
    try:
        r = outsider.next()
        assert r.status == 403
        assert r.json()["errorType"] == "AccessDenied"
        assert b"secret" not in r.body
        with pytest.raises(ConnectionError):  # and it is hung up on
            outsider.next()
    finally:
        outsider.close()
    rt = h.connect()
    n = rt.next()
    assert n.status == 200 and n.body == b'{"secret": 1}'
    assert rt.respond(n.headers["lambda-runtime-aws-request-id"], b'"mine"').json() == OK
    assert inv.result().body == b'"mine"'
