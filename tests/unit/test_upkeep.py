"""The host's sweep, driven with a clock of the test's choosing: idle on-demand instances
stop after the idle timeout, provisioned ones never do, old ones are recycled once their
invocation is done."""

from __future__ import annotations

import time

from tests.unit.conftest import until


async def test_idle_on_demand_instances_stop_and_provisioned_ones_stay(make_rapid):
    rapid = await make_rapid({"pc": {"provisioned_concurrency": 2}}, idle_timeout=600)
    fn = rapid.fn("pc")
    await until(lambda: len(fn.idle) == 2, what="the provisioned instances to be ready")
    inits = rapid.logs.matching("INIT_REPORT")
    assert len(inits) == 2 and all("Phase: init\tStatus: success" in line for line in inits)
    assert (await rapid.invoke("pc", {"env": "AWS_LAMBDA_INITIALIZATION_TYPE"})).json() == "provisioned-concurrency"
    held = [rapid.invoking("pc", {"wait": "g"}) for _ in range(3)]  # one more than provisioned
    await until(lambda: fn.running == 3, what="three running")
    on_demand = [i for i in fn.instances.values() if not i.provisioned]
    assert len(on_demand) == 1
    rapid.backend.release("g")
    for task in held:
        await task
    await until(lambda: len(fn.idle) == 3, what="all idle")
    fn.sweep(time.monotonic() + 10_000, idle_timeout=600, max_lifetime=10**9)  # long past the idle timeout
    await until(lambda: len(fn.instances) == 2, what="the on-demand instance to stop")
    assert all(i.provisioned for i in fn.instances.values())
    assert len(rapid.backend.alive) == 2


async def test_a_busy_instance_past_its_lifetime_is_recycled_after_its_invocation(make_rapid):
    rapid = await make_rapid()
    fn = rapid.fn("fn")
    held = rapid.invoking("fn", {"wait": "g"})
    await until(lambda: fn.running == 1, what="the invoke to run")
    (inst,) = fn.instances.values()
    fn.sweep(time.monotonic() + 10_000, idle_timeout=10**9, max_lifetime=1)
    assert inst.retiring and not inst.dead  # it finishes what it runs first
    rapid.backend.release("g")
    assert (await held).json() == "released"
    await until(lambda: inst.dead, what="the old instance to go")
    assert (await rapid.invoke("fn", {"who": True})).json() == 2


async def test_a_young_idle_instance_stays(make_rapid):
    rapid = await make_rapid(idle_timeout=600)
    fn = rapid.fn("fn")
    await rapid.invoke("fn", {"echo": 1})
    await until(lambda: fn.idle, what="an idle instance")
    fn.sweep(time.monotonic() + 599, idle_timeout=600, max_lifetime=10**9)
    assert len(fn.instances) == 1 and rapid.backend.spawned[0].alive
