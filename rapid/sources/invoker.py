"""A poller's way to invoke: one batch event through the function's pool, as a sync invoke.

The ``Invocation`` is built as ``rapid.api.invoke`` builds one and submitted to the pool
``Host.resolve`` picks (an alias by weight, per batch); its settlement resolves a future
through ``on_settled``. Before it is submitted the host's one admission rule is asked
(``rapid.core.admission`` through ``Host.gate``, the rule sync and async invokes obey too):
with no room left in the function's reserved concurrency (or the account's unreserved
pool) the batch waits until a unit comes free, and is never failed for it. A 429 from the
pool below the rule (an instance still dying holds a place) is waited out the same way
(0.1 s doubling to 2 s). Each batch that had to wait counts one throttle.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from rapid.core.admission import Decision, Work
from rapid.core.errors import ServiceError
from rapid.core.invocation import Invocation
from rapid.core.naming import Target, function_arn, trace_id
from rapid.host.host import Host

MAX_BACKOFF = 2.0
WAIT_AT_MOST = 1.0  # a batch waiting for room looks again after this at the latest


@dataclass(frozen=True, slots=True)
class Result:
    request_id: str
    version: str
    body: bytes | None
    function_error: str | None  # "Unhandled" when the function erred
    service_error: ServiceError | None = None  # it never ran (function gone, shutting down)
    throttles: int = 0

    @property
    def status(self) -> int:
        return self.service_error.status if self.service_error is not None else 200


FUNCTION_GONE = "PROBLEM: Function not found."  # a mapping's LastProcessingResult while its function is gone


class Invoker:
    def __init__(self, host: Host) -> None:
        self.host = host

    def unavailable(self, name: str, qualifier: str | None) -> ServiceError | None:
        """Why a batch for ``name:qualifier`` cannot be invoked now (the function, version or
        alias is gone, or not active), or None. A poller asks before it takes messages, so
        a deleted function's messages stay in their queue untouched."""
        try:
            self.host.resolve(Target(name, qualifier))
        except ServiceError as exc:
            return exc
        return None

    async def __call__(self, name: str, qualifier: str | None, payload: bytes) -> Result:
        host = self.host
        loop = asyncio.get_running_loop()
        backoff, throttles, waited = 0.1, 0, False
        while True:
            rid = str(uuid.uuid4())
            try:
                fn = host.resolve(Target(name, qualifier))
            except ServiceError as exc:
                return Result(rid, qualifier or "$LATEST", None, None, exc, throttles)
            if host.gate.decide(fn, Work.POLL) is not Decision.ADMIT:
                if not waited:
                    waited, throttles = True, throttles + 1
                await host.gate.wait(fn, WAIT_AT_MOST)  # then look again (the function may be gone)
                continue
            waited = False
            ticket = host.gate.take(fn, Work.POLL)
            inv = Invocation(request_id=rid, payload=payload,
                             function_arn=function_arn(host.region, host.config.account_id, name, qualifier),
                             timeout=fn.timeout, trace_id=trace_id())
            fut: asyncio.Future[Invocation] = loop.create_future()
            inv.on_settled = lambda i: None if fut.done() else fut.set_result(i)
            host.gate.bind(ticket, inv)
            fn.submit(inv)
            await fut
            outcome = inv.outcome
            assert outcome is not None
            err = outcome.service_error
            if err is not None and err.status == 429 and not host.stopping:
                throttles += 1
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            if err is not None:
                return Result(rid, fn.version, None, None, err, throttles)
            return Result(rid, fn.version, outcome.body, "Unhandled" if outcome.function_error else None,
                          None, throttles)

    def __repr__(self) -> str:
        return f"<Invoker {self.host!r}>"
