"""The Runtime API edge in-process: out-of-order calls are refused 403
``InvalidStateTransition`` in the RIE's words (literal texts), unknown ids 400, and none of
it disturbs the invocation."""

from __future__ import annotations

from tests.unit.conftest import until


def refused(current: str, target: str) -> dict[str, str]:
    return {"errorMessage": f"State transition from {current} to {target} failed for runtime. "
                            "Error: State transition is not allowed", "errorType": "InvalidStateTransition"}


async def test_init_error_while_invoking_is_refused_in_the_ries_words(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("fn", {"call": ["POST", "init/error"]})
    assert r.json() == [403, refused("Running", "InitError")]
    assert (await rapid.invoke("fn", {"who": True})).json() == 1  # the runtime carries on


async def test_next_while_invoking_is_refused(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("fn", {"call": ["GET", "invocation/next"]})
    assert r.json() == [403, refused("Running", "Ready")]


async def test_a_second_response_is_refused_as_an_unknown_request_id(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("fn", {"twice": True})
    assert r.json() == "first"  # the first answer counts
    runtime = rapid.backend.spawned[0]
    await until(lambda: runtime.calls, what="the second answer")
    assert (runtime.calls[0].status, runtime.calls[0].json()) == (
        400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})


async def test_a_response_for_an_unknown_id_is_400_and_changes_nothing(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("fn", {"call": ["POST", "invocation/not-this-one/response"]})
    assert r.json() == [400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}]


async def test_unknown_paths_and_methods(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("fn", {"call": ["GET", "invocation/{id}/response"]})
    assert r.json() == [405, {"errorMessage": "Method Not Allowed", "errorType": "MethodNotAllowed"}]
    r = await rapid.invoke("fn", {"call": ["POST", "invocation/{id}/elsewhere"]})
    assert r.json() == [404, {"errorMessage": "Not Found", "errorType": "NotFound"}]


# A stranger's connection (another process) is refused 403 AccessDenied: that needs a second
# process, so it is tested end to end (tests/test_isolation.py).
