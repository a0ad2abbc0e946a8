"""The pool in-process: scale-up, reuse, throttling (429 with Reason), reserved and
host-wide concurrency. Instances are held busy with ``{"wait": gate}`` until the test
releases them, so how many exist at each step is certain."""

from __future__ import annotations

import asyncio

from tests.unit.conftest import until


async def test_busy_instances_make_the_pool_grow_and_warm_ones_are_reused(make_rapid):
    rapid = await make_rapid()
    fn = rapid.fn("fn")
    held = [rapid.invoking("fn", {"wait": "g"}) for _ in range(3)]
    await until(lambda: fn.running == 3, what="three invocations running")
    assert len(rapid.backend.spawned) == 3  # one instance per concurrent invocation
    rapid.backend.release("g")
    replies = await asyncio.gather(*held)
    assert [r.json() for r in replies] == ["released"] * 3
    await until(lambda: len(fn.idle) == 3, what="three idle instances")
    for _ in range(5):  # sequential invokes: warm instances, no new one
        assert (await rapid.invoke("fn", {"echo": 1})).json() == 1
    assert len(rapid.backend.spawned) == 3


async def test_reserved_concurrency_throttles_with_its_reason(make_rapid):
    rapid = await make_rapid({"fn": {"reserved_concurrency": 2}})
    held = [rapid.invoking("fn", {"wait": "g"}) for _ in range(2)]
    await until(lambda: rapid.fn("fn").running == 2, what="two running")
    r = await rapid.invoke("fn", {"echo": 1})
    assert r.status == 429
    assert r.headers["x-amzn-errortype"] == "TooManyRequestsException"
    assert r.headers["retry-after"] == "1"
    assert r.json() == {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User",
                        "message": "Rate Exceeded."}
    assert len(rapid.backend.spawned) == 2
    rapid.backend.release("g")
    assert [r.json() for r in await asyncio.gather(*held)] == ["released"] * 2
    # A throttled invocation never ran: START lines only for the three that did.
    assert (await rapid.invoke("fn", {"echo": 2})).json() == 2
    assert len(rapid.logs.matching("START RequestId")) == 3


async def test_reserved_concurrency_zero_throttles_everything(make_rapid):
    rapid = await make_rapid({"fn": {"reserved_concurrency": 0}})
    r = await rapid.invoke("fn", {"echo": 1})
    assert (r.status, r.json()["Reason"]) == (429, "ReservedFunctionConcurrentInvocationLimitExceeded")
    assert rapid.backend.spawned == []


async def test_host_wide_limit_throttles_with_its_own_reason_and_spares_reserved(make_rapid):
    rapid = await make_rapid({"a": {}, "b": {}, "r": {"reserved_concurrency": 1}}, max_concurrency=3)
    held = [rapid.invoking("a", {"wait": "g"}), rapid.invoking("b", {"wait": "g"})]
    await until(lambda: rapid.fn("a").running + rapid.fn("b").running == 2, what="a and b running")
    r = await rapid.invoke("a", {"echo": 1})  # 3 - 1 reserved = 2 unreserved, both taken
    assert (r.status, r.json()["Reason"]) == (429, "ConcurrentInvocationLimitExceeded")
    assert (await rapid.invoke("r", {"echo": "reserved"})).json() == "reserved"
    rapid.backend.release("g")
    await asyncio.gather(*held)


async def test_an_idle_instance_of_another_function_makes_room(make_rapid):
    rapid = await make_rapid({"a": {}, "b": {}}, max_concurrency=1)
    assert (await rapid.invoke("a", {"echo": "a"})).json() == "a"
    first = rapid.backend.spawned[0]
    assert (await rapid.invoke("b", {"echo": "b"})).json() == "b"  # a's idle instance stopped for it
    assert not first.alive and len(rapid.fn("a").instances) == 0


async def test_several_invocations_per_instance_share_one_runtime_slotwise(make_rapid):
    # A fake runtime polls one /next at a time: with 3 slots and one poller, invocations
    # beyond the first wait for it (queued, not throttled, as the limit is 3 invocations).
    rapid = await make_rapid({"mi": {"per_instance_concurrency": 3, "reserved_concurrency": 3}})
    assert (await rapid.invoke("mi", {"env": "AWS_LAMBDA_MAX_CONCURRENCY"})).json() == "3"
    assert len(rapid.backend.spawned) == 1


async def test_idle_instances_are_frozen_and_thawed_to_work(make_rapid):
    rapid = await make_rapid()
    await rapid.invoke("fn", {"echo": 1})
    runtime = rapid.backend.spawned[0]
    await until(lambda: runtime.frozen, what="the idle runtime to be frozen")
    held = rapid.invoking("fn", {"wait": "g"})
    await until(lambda: rapid.fn("fn").running == 1, what="the invoke to run")
    assert not runtime.frozen
    rapid.backend.release("g")
    await held
    await until(lambda: runtime.frozen, what="frozen again")
    assert runtime.freezes == 2


async def test_freeze_off_never_freezes(make_rapid):
    rapid = await make_rapid(freeze=False)
    await rapid.invoke("fn", {"echo": 1})
    await until(lambda: rapid.fn("fn").idle, what="an idle instance")
    assert rapid.backend.spawned[0].freezes == 0
