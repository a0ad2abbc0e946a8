"""What a runtime sent to its Runtime API, request by request.

The host calls the tap for every request an instance's Runtime API server parses (and
again when the answer goes out), through ``rapid.api.runtime.TappedRuntimeAPI``. Each
becomes an ``Exchange``: the method and path exactly as sent, the headers and trailers,
the body's size (and the body itself when small), whether the runtime asked to keep the
connection, which connection it came on (the runtime's source port), and the times it
arrived and was answered. Checks read these instead of guessing what a client does.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from rapid.host.instance import Instance
    from rapid.http.message import Request, Response
    from rapid.http.protocol import HttpConnection

KEEP_BODY = 64 * 1024  # bodies up to this size are kept (error JSON); larger ones only sized
_PREFIX = "/2018-06-01/runtime/"


@dataclass(slots=True, eq=False)
class Exchange:
    function: str
    instance: int
    connection: int  # the runtime's source port: one per TCP connection
    method: str
    target: str
    headers: dict[str, str]
    trailers: dict[str, str]
    size: int
    body: bytes | None  # None when larger than KEEP_BODY
    keep_alive: bool
    received: float  # time.monotonic() when the whole request had arrived
    instance_dead: bool  # the instance had already been ended when it arrived
    status: int = 0  # 0: not answered yet; -1: the runtime hung up before the answer
    answered: float = 0.0
    request_id: str = ""  # /next: the invocation handed out; posts: the id in the path
    deadline_ms: int = 0  # /next: Lambda-Runtime-Deadline-Ms given
    answer_headers: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """next | response | error | init-error | other (a path the API does not have)."""
        path = self.target.partition("?")[0]
        while path.startswith("//"):
            path = path[1:]
        if not path.startswith(_PREFIX):
            return "other"
        rest = path[len(_PREFIX):]
        if rest == "invocation/next":
            return "next"
        if rest == "init/error":
            return "init-error"
        if rest.startswith("invocation/"):
            action = rest.rpartition("/")[2]
            if action in ("response", "error"):
                return action
        return "other"

    def __repr__(self) -> str:
        return f"<Exchange {self.function}#{self.instance} {self.method} {self.target} {self.size}B -> {self.status}>"


class Tap:
    """Collects every ``Exchange`` of every instance of the host it is set on."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.polled: asyncio.Event | None = None  # set on every /next, for whoever waits on it

    # -- called by the host (rapid.api.runtime.TappedRuntimeAPI) ---------------------------

    def request(self, instance: Instance, req: Request, conn: HttpConnection) -> Exchange:
        body = req.body
        peer = conn.peer
        ex = Exchange(
            function=instance.function.name,
            instance=instance.id,
            connection=peer[1] if peer else 0,
            method=req.method,
            target=req.target,
            headers=dict(req.headers),
            trailers=dict(req.trailers),
            size=len(body),
            body=bytes(body) if len(body) <= KEEP_BODY else None,
            keep_alive=req.keep_alive,
            received=time.monotonic(),
            instance_dead=instance.dead,
        )
        if ex.kind in ("response", "error"):
            ex.request_id = unquote(ex.target.partition("?")[0].rstrip("/").split("/")[-2])
        self.exchanges.append(ex)
        if self.polled is not None and ex.kind == "next":
            self.polled.set()
        return ex

    def answered(self, record: object, response: Response | None) -> None:
        assert isinstance(record, Exchange)
        record.answered = time.monotonic()
        if response is None:
            record.status = -1
            return
        record.status = response.status
        if record.kind == "next" and response.status == 200:
            headers = {k.lower(): v for k, v in response.headers}
            record.answer_headers = headers
            record.request_id = headers.get("lambda-runtime-aws-request-id", "")
            record.deadline_ms = int(headers.get("lambda-runtime-deadline-ms") or 0)

    # -- reading --------------------------------------------------------------------------

    def of(self, function: str, instance: int | None = None) -> list[Exchange]:
        return [e for e in self.exchanges if e.function == function and (instance is None or e.instance == instance)]

    def for_request(self, request_id: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.request_id == request_id]

    def delivery(self, request_id: str) -> Exchange | None:
        """The /next that handed out ``request_id``."""
        for e in self.exchanges:
            if e.request_id == request_id and e.kind == "next":
                return e
        return None

    def answer(self, request_id: str) -> Exchange | None:
        """The runtime's first /response or /error for ``request_id``."""
        for e in self.exchanges:
            if e.request_id == request_id and e.kind in ("response", "error"):
                return e
        return None

    def __repr__(self) -> str:
        return f"<Tap exchanges={len(self.exchanges)}>"
