"""What one HTTP connection may hold and how long it may dawdle, and the refusals it sends.

``Limits`` bounds a connection (the request head's size, how long headers and idle
keep-alives may take, whether a half-close is answered); ``Clock`` is the coarse time the
listener ticks so connections note the time without a call. ``rapid.http.protocol`` uses
both (and re-exports them); ``rapid.http.server`` sweeps connections by them.
"""

from __future__ import annotations

from rapid.http.message import Response

BAD_REQUEST = Response(400, b'{"message":"Bad Request"}', [("Content-Type", "application/json")])


class Limits:
    """What one connection may hold and how long it may dawdle (None: forever)."""

    __slots__ = ("answer_after_eof", "header_timeout", "idle_timeout", "max_head")

    def __init__(self, max_head: int = 1 << 20, header_timeout: float | None = None,
                 idle_timeout: float | None = None, answer_after_eof: bool = False) -> None:
        self.max_head = max_head  # request line and headers (and trailers), bytes
        self.header_timeout = header_timeout  # a request must keep arriving, headers complete within
        self.idle_timeout = idle_timeout  # a keep-alive connection with nothing to do
        # An end of input is a half-close to answer (invokers), or a hang-up that cancels
        # what is pending (runtimes: a parked /next whose client went away frees its slot).
        self.answer_after_eof = answer_after_eof

    def __repr__(self) -> str:
        return (f"<Limits head={self.max_head} header={self.header_timeout}s idle={self.idle_timeout}s "
                f"answer_after_eof={self.answer_after_eof}>")


class Clock:
    """A coarse clock the listener ticks, so connections note the time without a call."""

    __slots__ = ("now",)

    def __init__(self, now: float = 0.0) -> None:
        self.now = now


DEFAULT_LIMITS = Limits()


def refusal(status: int, max_head: int) -> Response:
    texts = {
        408: "Request Timeout: the request did not arrive in time",
        431: f"Request Header Fields Too Large: the request line and headers must be at most {max_head} bytes",
    }
    return Response.json(status, {"message": texts.get(status, "Bad Request")})
