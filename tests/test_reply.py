"""rapid.http.reply.Reply: a Future whose immediate listeners run inside answer/cancel."""

from __future__ import annotations

import asyncio

from rapid.http.reply import Reply


async def test_a_listener_runs_inside_answer_and_ordinary_callbacks_on_a_later_turn() -> None:
    loop = asyncio.get_running_loop()
    r = Reply(loop)
    seen: list[object] = []
    r.when_answered(lambda f: seen.append(("now", f.result())))
    r.add_done_callback(lambda f: seen.append(("later", f.result())))
    r.answer("A")
    seen.append("answer returned")
    assert seen == [("now", "A"), "answer returned"]
    await asyncio.sleep(0)
    assert seen[-1] == ("later", "A")
    r.answer("B")  # a second answer is ignored
    assert r.result() == "A"


async def test_it_is_a_future_that_can_be_awaited() -> None:
    loop = asyncio.get_running_loop()
    r = Reply(loop)
    assert isinstance(r, asyncio.Future)

    async def wait() -> object:
        return await r

    task = asyncio.ensure_future(wait())
    await asyncio.sleep(0)
    r.answer(42)
    assert await asyncio.wait_for(task, 5) == 42


async def test_cancel_tells_listeners_and_a_late_listener_is_still_called() -> None:
    loop = asyncio.get_running_loop()
    r = Reply(loop)
    seen: list[bool] = []
    r.when_answered(lambda f: seen.append(f.cancelled()))
    assert r.cancel() is True
    assert seen == [True]
    assert r.cancel() is False and seen == [True]

    done = Reply(loop)
    done.answer(1)
    late: list[object] = []
    done.when_answered(lambda f: late.append(f.result()))  # after the answer: on the next turn
    assert late == []
    for _ in range(5):
        await asyncio.sleep(0)
        if late:
            break
    assert late == [1]
