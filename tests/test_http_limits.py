"""HTTP limits and timeouts (issue 8, part 3): bounded heads, slow and idle clients timed
out, a flood of idle sockets that cannot stop invokes, half-closing clients answered.

The first tests drive ``HttpConnection`` with bytes and a fake transport; the rest run the
real daemon and talk to it over loopback sockets."""

from __future__ import annotations

import asyncio
import json
import select
import shutil
import socket
import sys
import threading

import pytest

from rapid.http.message import Response
from rapid.http.protocol import Clock, HttpConnection, Limits
from rapid.http.server import expired
from tests.daemon import make_function, run_server
from tests.test_http_protocol import App, FakeTransport, parse_responses

# -- in-process -----------------------------------------------------------------------------


class PausingTransport(FakeTransport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.eof_written = False

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def _connect(app: App, limits: Limits = Limits(), clock: Clock | None = None) -> tuple[HttpConnection, PausingTransport]:
    conn = HttpConnection(app, 1 << 20, limits, clock or Clock())
    transport = PausingTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


@pytest.mark.parametrize("where", ["header", "url", "many headers", "trailer"])
async def test_a_head_past_the_limit_is_answered_431_and_the_rest_drained(where):
    app = App()
    conn, transport = _connect(app, Limits(max_head=4096))
    if where == "header":
        chunks = [b"GET / HTTP/1.1\r\nX-Big: "] + [b"a" * 1000] * 8
    elif where == "url":
        chunks = [b"GET /" ] + [b"a" * 1000] * 8
    elif where == "many headers":
        chunks = [b"GET / HTTP/1.1\r\n"] + [b"X-%d: v\r\n" % i for i in range(1000)]
    else:
        chunks = [b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-T: "] + [b"t" * 1000] * 8
    for chunk in chunks:
        conn.data_received(chunk)
    conn.data_received(b"more of the head, still coming" * 100)  # read and dropped
    (resp,) = parse_responses(transport.data)
    assert resp.status == 431 and resp.headers["connection"] == "close"
    assert "at most 4096 bytes" in json.loads(resp.body)["message"]
    # Our side is shut (the client can read the answer); the socket closes after a linger.
    assert transport.eof_written and not transport.closed and app.requests == []


def test_a_head_within_the_limit_and_a_large_body_are_fine():
    app = App()
    conn, transport = _connect(app, Limits(max_head=4096))
    body = b"x" * 100_000
    conn.data_received(b"POST /p HTTP/1.1\r\nX-H: " + b"h" * 3000 + b"\r\nContent-Length: 100000\r\n\r\n")
    for i in range(0, len(body), 1000):
        conn.data_received(body[i : i + 1000])
    (resp,) = parse_responses(transport.data)
    assert resp.status == 200 and app.requests[0].body == body


async def test_pipelined_requests_behind_a_pending_answer_pause_reading():
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Future[Response]] = []

    def handler(req, conn):
        fut = loop.create_future()
        pending.append(fut)
        return fut

    conn, transport = _connect(App(handler))
    conn.data_received(b"GET /0 HTTP/1.1\r\n\r\n" * 40)
    assert transport.paused  # 39 wait behind the first: the client is not read further
    while pending:
        pending.pop(0).set_result(Response(200, b"ok"))
        await asyncio.sleep(0)
    assert not transport.paused
    assert [r.status for r in parse_responses(transport.data)] == [200] * 40


HALF_CLOSE = Limits(answer_after_eof=True)


def test_a_client_that_half_closes_gets_its_answer_then_the_close():
    app = App()
    conn, transport = _connect(app, HALF_CLOSE)
    conn.data_received(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    assert conn.eof_received() is False  # nothing owed any more: the transport may close
    assert [r.body for r in parse_responses(transport.data)] == [b"/a", b"/b"]


async def test_a_half_closing_client_waiting_on_a_future_is_answered_before_the_close():
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Response] = loop.create_future()
    conn, transport = _connect(App(lambda req, c: fut), HALF_CLOSE)
    conn.data_received(b"POST /invoke HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
    assert conn.eof_received() is True  # keep the transport open: an answer is owed
    assert not transport.closed and not fut.cancelled()
    fut.set_result(Response(200, b"done"))
    await asyncio.sleep(0)
    (resp,) = parse_responses(transport.data)
    assert resp.body == b"done" and transport.closed


@pytest.mark.parametrize(
    ("data", "now", "expect"),
    [
        (b"", 5.0, False),  # idle 5 s: within the idle limit
        (b"", 31.0, True),  # idle past it
        (b"GET / HTTP/1.1\r\nHost", 9.0, False),  # headers still coming, within 10 s
        (b"GET / HTTP/1.1\r\nHost", 11.0, True),  # headers not done 10 s after the first byte
        (b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc", 11.0, True),  # body stalled
    ],
)
def test_the_sweep_verdict(data, now, expect):
    clock = Clock(0.0)
    conn, _ = _connect(App(), Limits(header_timeout=10.0, idle_timeout=30.0), clock)
    if data:
        conn.data_received(data)
    assert expired(conn, now, conn.limits) is expect


async def test_without_answer_after_eof_an_end_of_input_is_a_hang_up():
    """The Runtime API's policy: a runtime whose /next connection ends has gone away."""
    fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    conn, _ = _connect(App(lambda req, c: fut))
    conn.data_received(b"GET /next HTTP/1.1\r\n\r\n")
    assert conn.eof_received() is False  # asyncio then closes, and connection_lost follows
    conn.connection_lost(None)
    assert fut.cancelled()


def test_a_connection_owed_an_answer_is_never_timed_out_by_the_sweep():
    loop = asyncio.new_event_loop()
    try:
        conn, _ = _connect(App(lambda req, c: loop.create_future()), Limits(header_timeout=1.0, idle_timeout=1.0))
        conn.data_received(b"GET / HTTP/1.1\r\n\r\n")
        assert conn.busy  # the listener skips busy connections before asking `expired`
    finally:
        loop.close()


# -- the real daemon --------------------------------------------------------------------------


def _raw(d, data: bytes, *, half_close: bool = False, timeout: float = 20) -> bytes:
    with socket.create_connection(("127.0.0.1", d.port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        return _read_all(s)


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def _invoke_bytes(name: str, payload: bytes) -> bytes:
    return (
        f"POST /2015-03-31/functions/{name}/invocations HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


def test_a_huge_header_is_refused_431_while_other_invokes_go_on(echo_fn):
    with run_server(["--function", f"fn={echo_fn}"]) as d:
        with socket.create_connection(("127.0.0.1", d.port), timeout=20) as big:
            big.sendall(b"POST /2015-03-31/functions/fn/invocations HTTP/1.1\r\nX-Big: ")
            sent = 0
            while sent < 64 << 20 and not select.select([big], [], [], 0)[0]:  # until answered
                big.sendall(b"a" * 65536)
                sent += 65536
                if sent == 512 * 1024:  # mid-header, another client is served
                    assert d.invoke("fn", {"ok": 1}).json() == {"ok": 1}
            answer = _read_all(big)  # the answer, then the daemon's close after its linger
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
        assert sent < 8 << 20, "the daemon kept reading a header past its limit"
        assert d.invoke("fn", {"after": 1}).json() == {"after": 1}


def test_a_client_that_half_closes_after_its_request_gets_the_answer(echo_fn):
    with run_server(["--function", f"fn={echo_fn}"]) as d:
        answer = _raw(d, _invoke_bytes("fn", b'{"half": "closed"}'), half_close=True)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and json.loads(body) == {"half": "closed"}


def test_idle_and_slow_clients_are_timed_out(echo_fn):
    env = {"RAPID_HTTP_IDLE_TIMEOUT": "1", "RAPID_HTTP_HEADER_TIMEOUT": "1"}
    with run_server(["--function", f"fn={echo_fn}"], env=env) as d:
        # Idle keep-alive: closed by the daemon with nothing sent (recv gives b"").
        with socket.create_connection(("127.0.0.1", d.port), timeout=20) as idle:
            assert _read_all(idle) == b""
        # Half-sent headers: 408, then the close.
        answer = _raw(d, b"POST /2015-03-31/functions/fn/invocations HTTP/1.1\r\nHost: x\r\n")
        assert answer.startswith(b"HTTP/1.1 408 ")
        # A body that stops arriving: the same.
        answer = _raw(d, b"POST /2015-03-31/functions/fn/invocations HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        assert answer.startswith(b"HTTP/1.1 408 ")


SLEEPER = """#!{python}
import http.client, json, os, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse(); event = json.loads(r.read())
    time.sleep(event.get("sleep", 0))
    conn.request("POST", "/2018-06-01/runtime/invocation/" + r.getheader("Lambda-Runtime-Aws-Request-Id")
                 + "/response", json.dumps(event))
    conn.getresponse().read()
"""


def test_an_invocation_longer_than_the_http_timeouts_is_answered(tmp_path):
    fn = make_function(tmp_path / "sleeper", SLEEPER.replace("{python}", sys.executable))
    env = {"RAPID_HTTP_IDLE_TIMEOUT": "1", "RAPID_HTTP_HEADER_TIMEOUT": "1"}
    with run_server(["--function", f"fn={fn}", "--timeout", "10"], env=env) as d:
        answer = _raw(d, _invoke_bytes("fn", b'{"sleep": 2.5}'))
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"sleep": 2.5}')


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_thousands_of_idle_sockets_cannot_stop_invokes(echo_fn):
    """3,000 idle clients against a daemon allowed 1,024 descriptors: without a cap, accept()
    fails for lack of descriptors and the next invoke is never answered."""
    with run_server(["--function", f"fn={echo_fn}"], wrapper=["prlimit", "--nofile=1024:1024", "--"]) as d:
        assert d.invoke("fn", {"warm": 1}).json() == {"warm": 1}
        idle = []
        try:
            for _ in range(3000):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", d.port))
                idle.append(s)
            for i in range(5):
                assert d.invoke("fn", {"i": i}, timeout=30).json() == {"i": i}
            # A new function instance (its own Runtime API server, runtime, pipes) can start too.
            replies = _concurrent_invokes(d, 3)
            assert all(r == {"c": n} for n, r in enumerate(replies))
        finally:
            for s in idle:
                s.close()


def _concurrent_invokes(d, n: int) -> list[object]:
    out: list[object] = [None] * n

    def run(i: int) -> None:
        out[i] = d.invoke("fn", {"c": i}, timeout=30).json()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
