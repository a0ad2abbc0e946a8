"""The Invoke API's answer to an ``Event`` invoke, from what the dispatcher says.

``Dispatcher.accept`` gives a future of plain values: the version the event will run, once
it is durable, or a ``ServiceError`` when it could not be stored. ``answer`` turns it into
the HTTP answer AWS gives: 202 with ``x-amzn-RequestId`` and ``X-Amz-Executed-Version``, or
the error in AWS's shape (500 ``ServiceException``).
"""

from __future__ import annotations

import asyncio

from rapid.api.errors import render
from rapid.core.errors import ServiceError
from rapid.http.message import Response


def accepted(rid: str, version: str) -> Response:
    return Response(202, b"", [("x-amzn-RequestId", rid), ("X-Amz-Executed-Version", version)])


def answer(stored: asyncio.Future[str], rid: str) -> asyncio.Future[Response]:
    """The HTTP answer once ``stored`` settles (a callback, no task: the 202 leaves as soon
    as the commit's callback has run)."""
    out: asyncio.Future[Response] = stored.get_loop().create_future()

    def settled(f: asyncio.Future[str]) -> None:
        if out.done():
            return
        if f.cancelled():
            out.set_result(render(ServiceError(500, "ServiceException", "The event could not be stored: cancelled",
                                               kind="Service"), rid))
            return
        exc = f.exception()
        if exc is None:
            out.set_result(accepted(rid, f.result()))
        elif isinstance(exc, ServiceError):
            out.set_result(render(exc, rid))
        else:
            out.set_exception(exc)

    stored.add_done_callback(settled)
    return out
