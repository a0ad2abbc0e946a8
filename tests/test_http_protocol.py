"""HttpConnection without sockets: bytes in through ``data_received``, bytes out into a fake
transport, in the style of h11's tests. Every test checks what went on the wire."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import pytest

from rapid.http.message import Request, Response
from rapid.http.protocol import HttpConnection

# -- fixtures -------------------------------------------------------------------------------


class FakeTransport:
    """Records every byte written; ``close`` only marks it closed (as a real transport,
    it does not call ``connection_lost`` by itself)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False
        self.written_after_close = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            self.written_after_close += data
            return
        self.data += data

    def writelines(self, parts: Iterable[bytes | bytearray | memoryview]) -> None:
        for part in parts:
            self.write(part)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "peername":
            return ("127.0.0.1", 40000)
        return default


class Parsed:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.header_list = headers
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def __repr__(self) -> str:
        return f"<Parsed {self.status} {self.headers} {self.body!r}>"


def parse_responses(data: bytes | bytearray) -> list[Parsed]:
    """Split what the server wrote into responses (Content-Length framing only, which is
    all HttpConnection writes). Fails on trailing partial data."""
    out: list[Parsed] = []
    buf = bytes(data)
    while buf:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {buf!r}"
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = lines[0].split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        lowered = {k.lower(): v for k, v in headers}
        length = int(lowered.get("content-length", "0"))
        assert len(rest) >= length, f"short body: {rest!r}"
        out.append(Parsed(int(status), reason, headers, rest[:length]))
        buf = rest[length:]
    return out


Handler = Callable[[Request, HttpConnection], "Response | asyncio.Future[Response]"]


class App:
    """Records every request; answers with ``handler`` (default: 200 echoing the path)."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.requests: list[Request] = []
        self.handler = handler

    def __call__(self, req: Request, conn: HttpConnection) -> Response | asyncio.Future[Response]:
        self.requests.append(req)
        if self.handler is not None:
            return self.handler(req, conn)
        return Response(200, req.path.encode(), [("Content-Type", "text/plain")])


def connect(app: App, max_body: int = 1 << 20) -> tuple[HttpConnection, FakeTransport]:
    conn = HttpConnection(app, max_body)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def feed(conn: HttpConnection, data: bytes, mode: str = "whole") -> None:
    if mode == "whole":
        conn.data_received(data)
    elif mode == "bytes":
        for i in range(len(data)):
            conn.data_received(data[i : i + 1])
    else:
        raise AssertionError(mode)


GET = b"GET /a HTTP/1.1\r\nHost: rapid\r\n\r\n"

# A Go-client-like chunked POST: `Trailer:` declared up front, body in three chunks, two
# trailer fields after the last chunk.
CHUNKED_POST_WITH_TRAILERS = (
    b"POST /2018-06-01/runtime/invocation/r-1/response HTTP/1.1\r\n"
    b"Host: rapid\r\n"
    b"Content-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
    b"\r\n"
    b"5\r\nhello\r\n"
    b"1\r\n \r\n"
    b"5;ext=1\r\nworld\r\n"
    b"0\r\n"
    b"Lambda-Runtime-Function-Error-Type: MyError\r\n"
    b"Lambda-Runtime-Function-Error-Body: eyJ9\r\n"
    b"\r\n"
)
NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rapid\r\nAccept: */*\r\n\r\n"


# -- Response.head --------------------------------------------------------------------------


def test_head_renders_status_headers_and_content_length() -> None:
    r = Response(202, b'{"status":"OK"}', [("Content-Type", "application/json"), ("X-A", "b")])
    assert r.head(True) == (
        b"HTTP/1.1 202 Accepted\r\n"
        b"Content-Type: application/json\r\n"
        b"X-A: b\r\n"
        b"Content-Length: 15\r\n"
        b"\r\n"
    )


def test_head_empty_body_still_has_content_length_zero() -> None:
    assert Response(200).head(True) == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def test_head_omits_content_length_for_204_and_304() -> None:
    assert Response(204, b"", [("x-amzn-RequestId", "r")]).head(True) == (
        b"HTTP/1.1 204 No Content\r\nx-amzn-RequestId: r\r\n\r\n"
    )
    assert b"Content-Length" not in Response(304).head(True)


def test_head_connection_close_when_not_keep_alive() -> None:
    assert Response(404, b"x").head(False) == (
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"
    )


def test_response_json() -> None:
    r = Response.json(400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}, [("X", "1")])
    assert r.status == 400
    assert bytes(r.body) == b'{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}'
    assert r.headers == [("Content-Type", "application/json"), ("X", "1")]


# -- one request at a time ------------------------------------------------------------------


async def test_simple_get_keep_alive_gets_one_response() -> None:
    app = App()
    conn, t = connect(app)
    conn.data_received(GET)
    [resp] = parse_responses(t.data)
    assert (resp.status, resp.reason, resp.body) == (200, "OK", b"/a")
    assert resp.headers == {"content-type": "text/plain", "content-length": "2"}
    assert not t.closed
    [req] = app.requests
    assert (req.method, req.target, req.path, req.query) == ("GET", "/a", "/a", "")
    assert req.headers == {"host": "rapid"}
    assert req.trailers == {}
    assert req.body == b""
    assert req.keep_alive and not req.too_large
    # And the connection serves a second one.
    conn.data_received(b"GET /b?x=1 HTTP/1.1\r\nHost: rapid\r\n\r\n")
    assert [r.body for r in parse_responses(t.data)] == [b"/a", b"/b"]
    assert app.requests[1].query == "x=1"
    assert not t.closed


async def test_header_names_are_lowercased_and_a_repeat_joins_its_values() -> None:
    app = App()
    conn, t = connect(app)
    conn.data_received(b"GET / HTTP/1.1\r\nHOST: a\r\nX-Thing: 1\r\nx-thing: 2\r\n\r\n")
    assert app.requests[0].headers == {"host": "a", "x-thing": "1,2"}  # RFC 9110 5.3, as Lambda's URLs see it
    conn.data_received(b"GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n")
    assert app.requests[1].headers["cookie"] == "a=1; b=2"
    assert len(parse_responses(t.data)) == 2


@pytest.mark.parametrize("mode", ["whole", "bytes"])
async def test_content_length_body(mode: str) -> None:
    app = App()
    conn, t = connect(app)
    body = b'{"hello": "world", "n": 12345}'
    feed(conn, b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body, mode)
    [req] = app.requests
    assert bytes(req.body) == body
    assert req.headers == {"host": "a", "content-length": str(len(body))}
    assert len(parse_responses(t.data)) == 1


# -- chunked bodies and trailers ------------------------------------------------------------


def _split_modes() -> list[str]:
    return ["whole", "bytes", "separate", "split-in-trailer"]


@pytest.mark.parametrize("mode", _split_modes())
async def test_chunked_post_with_trailers_then_get_on_same_connection(mode: str) -> None:
    """The aiohttp bug (runtime-clients.md §6): its llhttp parser dropped the trailers and
    leaked the last trailer field into the NEXT request's headers. Here the trailers belong
    to the POST and the GET carries exactly what it sent."""
    app = App()
    conn, t = connect(app)
    wire = CHUNKED_POST_WITH_TRAILERS + NEXT
    if mode == "whole":
        conn.data_received(wire)
    elif mode == "bytes":
        feed(conn, wire, "bytes")
    elif mode == "separate":
        conn.data_received(CHUNKED_POST_WITH_TRAILERS)
        assert len(app.requests) == 1
        conn.data_received(NEXT)
    else:  # a read boundary in the middle of the last trailer field and before its CRLF
        cut = CHUNKED_POST_WITH_TRAILERS.index(b": eyJ9") + 3
        conn.data_received(CHUNKED_POST_WITH_TRAILERS[:cut])
        conn.data_received(CHUNKED_POST_WITH_TRAILERS[cut:-2])
        conn.data_received(CHUNKED_POST_WITH_TRAILERS[-2:] + NEXT[:10])
        conn.data_received(NEXT[10:])

    post, get = app.requests
    assert post.method == "POST"
    assert post.path == "/2018-06-01/runtime/invocation/r-1/response"
    assert bytes(post.body) == b"hello world"
    assert post.trailers == {
        "lambda-runtime-function-error-type": "MyError",
        "lambda-runtime-function-error-body": "eyJ9",
    }
    assert post.headers == {
        "host": "rapid",
        "content-type": "application/json",
        "transfer-encoding": "chunked",
        "trailer": "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
    }
    assert not post.too_large

    assert get.method == "GET"
    assert get.path == "/2018-06-01/runtime/invocation/next"
    assert get.headers == {"host": "rapid", "accept": "*/*"}  # NO trailer field leaked here
    assert get.trailers == {}
    assert get.body == b""

    assert [r.status for r in parse_responses(t.data)] == [200, 200]
    assert not t.closed


async def test_chunked_without_trailers_has_empty_trailers() -> None:
    """Go declares `Trailer:` on every POST but usually sends none."""
    app = App()
    conn, t = connect(app)
    conn.data_received(
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Trailer: Lambda-Runtime-Function-Error-Body,Lambda-Runtime-Function-Error-Type\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n" + GET
    )
    post, get = app.requests
    assert bytes(post.body) == b"{}"
    assert post.trailers == {}
    assert get.headers == {"host": "rapid"}
    assert len(parse_responses(t.data)) == 2


async def test_chunked_body_byte_by_byte_with_many_chunks() -> None:
    app = App()
    conn, t = connect(app)
    payload = bytes(range(256)) * 4
    pieces = [payload[i : i + 37] for i in range(0, len(payload), 37)]
    chunks = b"".join(b"%x\r\n" % len(piece) + piece + b"\r\n" for piece in pieces)
    wire = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    feed(conn, wire, "bytes")
    [req] = app.requests
    assert bytes(req.body) == payload
    assert len(parse_responses(t.data)) == 1


async def test_expect_100_continue_gets_an_interim_response_before_the_body() -> None:
    """curl, which the docs' bash runtime uses for every POST, sends `Expect: 100-continue`
    with bodies over 1 MiB and then waits up to 1 s for `100 Continue` before sending the
    body. RIE (Go net/http) sends the interim response; without it every large response
    from such a runtime stalled for a full second (regression)."""
    app = App()
    conn, t = connect(app)
    conn.data_received(
        b"POST /2018-06-01/runtime/invocation/r/response HTTP/1.1\r\nHost: a\r\n"
        b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    assert bytes(t.data) == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.data_received(b"body")
    interim, final = parse_responses(t.data)
    assert interim.status == 100 and final.status == 200
    assert bytes(app.requests[0].body) == b"body"


# -- pipelining and futures -----------------------------------------------------------------


async def test_pipelined_requests_answered_in_order_behind_a_pending_future() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[Response] = loop.create_future()

    def handler(req: Request, conn: HttpConnection) -> Response | asyncio.Future[Response]:
        if req.path == "/first":
            return first
        return Response(200, b"second")

    app = App(handler)
    conn, t = connect(app)
    conn.data_received(
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
    )
    # The second waits its turn: not even handed to the app while the first is pending.
    assert [r.path for r in app.requests] == ["/first"]
    assert t.data == b""
    await asyncio.sleep(0.01)
    assert t.data == b""

    first.set_result(Response(200, b"first"))
    await asyncio.sleep(0)  # the done callback runs on the loop
    assert [r.path for r in app.requests] == ["/first", "/second"]
    assert bytes(app.requests[1].body) == b"abc"
    assert [r.body for r in parse_responses(t.data)] == [b"first", b"second"]
    assert not t.closed


async def test_pipelined_chain_of_futures() -> None:
    loop = asyncio.get_running_loop()
    futures: dict[str, asyncio.Future[Response]] = {}

    def handler(req: Request, conn: HttpConnection) -> asyncio.Future[Response]:
        futures[req.path] = fut = loop.create_future()
        return fut

    app = App(handler)
    conn, t = connect(app)
    conn.data_received(b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(3)))
    assert list(futures) == ["/0"]
    futures["/0"].set_result(Response(200, b"0"))
    await asyncio.sleep(0)
    assert list(futures) == ["/0", "/1"]
    # A fourth request arriving while /1 waits queues behind /2.
    conn.data_received(b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
    for i in (1, 2, 3):
        futures[f"/{i}"].set_result(Response(200, str(i).encode()))
        await asyncio.sleep(0)
    assert [r.body for r in parse_responses(t.data)] == [b"0", b"1", b"2", b"3"]


async def test_future_resolved_with_exception_gives_500_and_closes() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Response] = loop.create_future()
    app = App(lambda req, conn: fut)
    conn, t = connect(app)
    conn.data_received(GET)
    fut.set_exception(RuntimeError("handler bug (expected in this test)"))
    await asyncio.sleep(0)
    [resp] = parse_responses(t.data)
    assert resp.status == 500
    assert resp.body == b'{"message":"Internal error"}'
    assert resp.headers["connection"] == "close"
    assert t.closed


async def test_connection_lost_while_future_pending_cancels_it() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Response] = loop.create_future()

    def handler(req: Request, conn: HttpConnection) -> Response | asyncio.Future[Response]:
        return fut if req.path == "/wait" else Response(200, b"late")

    app = App(handler)
    conn, t = connect(app)
    conn.data_received(b"GET /wait HTTP/1.1\r\nHost: a\r\n\r\n" + GET)
    assert not conn.closed
    conn.connection_lost(None)
    assert fut.cancelled()
    assert conn.closed
    await asyncio.sleep(0)
    # Nobody is listening: the queued request is dropped, nothing is written.
    assert [r.path for r in app.requests] == ["/wait"]
    assert t.data == b""


async def test_connection_lost_after_answer_does_not_touch_resolved_future() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Response] = loop.create_future()
    app = App(lambda req, conn: fut)
    conn, t = connect(app)
    conn.data_received(GET)
    fut.set_result(Response(200, b"ok"))
    await asyncio.sleep(0)
    conn.connection_lost(ConnectionResetError())
    assert fut.done() and not fut.cancelled()
    assert [r.body for r in parse_responses(t.data)] == [b"ok"]


# -- body limit -----------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
async def test_body_over_max_body_sets_too_large_and_connection_stays_usable(chunked: bool) -> None:
    app = App()
    conn, t = connect(app, max_body=10)
    body = b"x" * 25
    if chunked:
        wire = (b"POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"8\r\nxxxxxxxx\r\n8\r\nxxxxxxxx\r\n9\r\nxxxxxxxxx\r\n0\r\n\r\n")
    else:
        wire = b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 25\r\n\r\n" + body
    conn.data_received(wire + GET)
    big, get = app.requests
    assert big.too_large
    assert big.body == b""  # nothing of it is kept
    assert not get.too_large
    assert get.path == "/a"
    assert [r.body for r in parse_responses(t.data)] == [b"/big", b"/a"]
    assert not t.closed


async def test_body_exactly_max_body_is_not_too_large() -> None:
    app = App()
    conn, t = connect(app, max_body=10)
    conn.data_received(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789")
    [req] = app.requests
    assert not req.too_large
    assert [r.body for r in parse_responses(t.data)] == [b"/x"]
    assert bytes(req.body) == b"0123456789"


async def test_too_large_byte_by_byte() -> None:
    app = App()
    conn, t = connect(app, max_body=10)
    feed(conn, b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n" + b"y" * 11 + GET, "bytes")
    big, get = app.requests
    assert big.too_large and big.body == b""
    assert get.path == "/a" and not get.too_large
    assert len(parse_responses(t.data)) == 2


# -- closing --------------------------------------------------------------------------------


async def test_connection_close_request_gets_connection_close_and_transport_closed() -> None:
    app = App()
    conn, t = connect(app)
    conn.data_received(b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    [resp] = parse_responses(t.data)
    assert resp.status == 200
    assert resp.headers["connection"] == "close"
    assert t.closed
    assert not app.requests[0].keep_alive


async def test_connection_close_with_pending_future_closes_after_answer() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Response] = loop.create_future()
    app = App(lambda req, conn: fut)
    conn, t = connect(app)
    conn.data_received(b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert not t.closed
    fut.set_result(Response(200, b"done"))
    await asyncio.sleep(0)
    [resp] = parse_responses(t.data)
    assert resp.body == b"done" and resp.headers["connection"] == "close"
    assert t.closed


async def test_requests_pipelined_after_connection_close_are_not_handled() -> None:
    """RFC 9112 §9.6: a server that receives `close` "SHOULD NOT process any further
    requests received on that connection" (h11 refuses them). Handling them here would run
    a Runtime API call (say, settle an invocation) whose answer can never be delivered."""
    app = App()
    conn, t = connect(app)
    conn.data_received(
        b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
    )
    assert [r.path for r in app.requests] == ["/a"]
    assert [r.body for r in parse_responses(t.data)] == [b"/a"]
    assert t.closed


async def test_nothing_is_written_after_the_connection_close_response() -> None:
    """Regression: llhttp rejects bytes after a `Connection: close` message
    (HPE_CLOSED_CONNECTION), and ``_fail`` used to write a 400 into the transport ``_write``
    had already closed. On a real socket whose first response is still being flushed
    (asyncio and uvloop both keep writing buffered data after close()), the client received
    an unsolicited `400 Bad Request` after its answer."""
    app = App()
    conn, t = connect(app)
    conn.data_received(
        b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert [r.body for r in parse_responses(t.data)] == [b"/a"]
    assert t.written_after_close == b"", "a response was written after close()"


async def test_bad_bytes_behind_a_pending_future_do_not_jump_the_queue() -> None:
    """Requests on one connection are answered in order (protocol.py's docstring). A
    malformed request pipelined behind a parked one must not have its 400 sent as the
    answer to the parked one: the parked request's answer comes first, never a 400 in its
    place (regression: the 400 used to go out at once)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Response] = loop.create_future()
    app = App(lambda req, conn: fut)
    conn, t = connect(app)
    conn.data_received(GET + b"\x00garbage\r\n\r\n")
    assert [r.status for r in parse_responses(t.data)] == [], "400 sent before the pending answer"
    fut.set_result(Response(200, b"answer"))
    await asyncio.sleep(0)
    assert [r.status for r in parse_responses(t.data)] in ([200], [200, 400])
    assert t.closed


async def test_http10_without_keep_alive_closes() -> None:
    app = App()
    conn, t = connect(app)
    conn.data_received(b"GET /old HTTP/1.0\r\nHost: a\r\n\r\n")
    [resp] = parse_responses(t.data)
    assert resp.status == 200 and resp.body == b"/old"
    assert resp.headers["connection"] == "close"
    assert t.closed
    assert not app.requests[0].keep_alive


async def test_http10_with_keep_alive_stays_open() -> None:
    app = App()
    conn, t = connect(app)
    conn.data_received(b"GET /old HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
    assert app.requests[0].keep_alive
    assert not t.closed
    [resp] = parse_responses(t.data)
    assert resp.headers.get("connection", "").lower() != "close"


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x01\x02 not http at all\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost a-header-without-colon\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
)
async def test_garbage_gets_400_and_close(garbage: bytes) -> None:
    app = App()
    conn, t = connect(app)
    conn.data_received(garbage)
    [resp] = parse_responses(t.data)
    assert resp.status == 400
    assert resp.body == b'{"message":"Bad Request"}'
    assert resp.headers["connection"] == "close"
    assert t.closed
    assert app.requests == []


async def test_garbage_after_a_good_request() -> None:
    app = App()
    conn, t = connect(app)
    conn.data_received(GET + b"\xff\xfe\r\n\r\n")
    assert [r.status for r in parse_responses(t.data)] == [200, 400]
    assert t.closed


# -- handler failures -----------------------------------------------------------------------


async def test_handler_raising_gets_500_and_connection_keeps_working(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(req: Request, conn: HttpConnection) -> Response:
        if req.path == "/boom":
            raise ValueError("handler bug (expected in this test)")
        return Response(200, b"fine")

    app = App(handler)
    conn, t = connect(app)
    conn.data_received(b"GET /boom HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.data_received(GET)
    first, second = parse_responses(t.data)
    assert first.status == 500
    assert first.body == b'{"message":"Internal error"}'
    assert first.headers["content-type"] == "application/json"
    assert "connection" not in first.headers
    assert (second.status, second.body) == (200, b"fine")
    assert not t.closed
    assert "ValueError" in capsys.readouterr().err


# -- large responses ------------------------------------------------------------------------


async def test_large_response_body_written_whole() -> None:
    big = bytes(range(256)) * 1000  # over the single-write threshold
    app = App(lambda req, conn: Response(200, big, [("Content-Type", "application/octet-stream")]))
    conn, t = connect(app)
    conn.data_received(GET + GET)
    a, b = parse_responses(t.data)
    assert a.body == big and b.body == big
    assert a.headers["content-length"] == str(len(big))


async def test_memoryview_and_bytearray_bodies() -> None:
    bodies = iter([memoryview(b"view"), bytearray(b"array")])
    app = App(lambda req, conn: Response(200, next(bodies)))
    conn, t = connect(app)
    conn.data_received(GET + GET)
    assert [r.body for r in parse_responses(t.data)] == [b"view", b"array"]
