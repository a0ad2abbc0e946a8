"""The admission gate in-process (rapid.host.gate): sync invokes and a poller's batches ask
the one rule; a batch with no room waits (never a 429 to it), is woken when a unit comes
free or the reservation changes, and every ticket is given back."""

from __future__ import annotations

import asyncio

from rapid.core.admission import Usage, Work
from rapid.sources.invoker import Invoker
from tests.unit.conftest import until


async def test_a_batch_waits_for_room_a_sync_invoke_holds(make_rapid):
    rapid = await make_rapid({"fn": {"reserved_concurrency": 1}})
    gate = rapid.host.gate
    held = rapid.invoking("fn", {"wait": "g"})
    await until(lambda: rapid.fn("fn").running == 1, what="the sync invoke running")
    assert gate.ledger.usage("fn") == Usage(function=1, async_=0, unreserved=0)
    batch = asyncio.get_running_loop().create_task(Invoker(rapid.host)("fn", None, b'{"echo": "batch"}'))
    await until(lambda: gate._watchers.get("fn"), what="the batch waiting on the gate")
    r = await rapid.invoke("fn", {"echo": "second"})  # a second sync caller has no room: 429
    assert (r.status, r.json()["Reason"]) == (429, "ReservedFunctionConcurrentInvocationLimitExceeded")
    assert not batch.done() and len(rapid.backend.spawned) == 1
    rapid.backend.release("g")
    result = await asyncio.wait_for(batch, 10)
    assert (result.body, result.service_error, result.throttles) == (b'"batch"', None, 1)
    assert (await held).json() == "released"
    assert gate.ledger.by_function == {} and gate.bound == {}  # every ticket given back
    assert len(rapid.backend.spawned) == 1  # never a second instance


async def test_a_reservation_raised_wakes_a_waiting_batch(make_rapid):
    rapid = await make_rapid({"fn": {"reserved_concurrency": 0}})
    batch = asyncio.get_running_loop().create_task(Invoker(rapid.host)("fn", None, b'{"echo": 7}'))
    await until(lambda: rapid.host.gate._watchers.get("fn"), what="the batch waiting (reserved 0)")
    assert rapid.backend.spawned == []
    rapid.host.set_reserved("fn", 1)
    result = await asyncio.wait_for(batch, 10)
    assert (result.body, result.service_error) == (b"7", None)


async def test_unreserved_functions_share_the_account_pool(make_rapid):
    # max_concurrency 102 with r reserving 1: 101 unreserved; a and b draw on them together.
    rapid = await make_rapid({"a": {}, "b": {}, "r": {"reserved_concurrency": 1}}, max_concurrency=102)
    gate = rapid.host.gate
    held = [rapid.invoking("a", {"wait": "g"}), rapid.invoking("b", {"wait": "g"})]
    await until(lambda: gate.ledger.unreserved == 2, what="two unreserved invocations in flight")
    assert gate.ledger.usage("a") == Usage(function=1, async_=0, unreserved=2)
    assert gate.room(rapid.fn("b"), Work.POLL) == 99
    rapid.backend.release("g")
    await asyncio.gather(*held)
    assert gate.ledger.unreserved == 0
