"""One instance's life in-process: crash and replacement, timeout (killed, never reused),
suppressed init after a crash, init errors retried inside the next invoke (and no retry
loop), exit during init, init timeout, a runtime that cannot be started, TMPDIR removal."""

from __future__ import annotations

import asyncio
import os

from tests.unit.conftest import until


def rid(reply):
    return reply.headers["x-amzn-requestid"]


async def test_warm_invokes_reuse_one_runtime_and_report_init_once(make_rapid):
    rapid = await make_rapid()
    first = await rapid.invoke("fn", {"who": True})
    second = await rapid.invoke("fn", {"who": True})
    assert first.json() == second.json() == 1
    assert "\tInit Duration: " in rapid.report(first)
    assert "Init Duration" not in rapid.report(second)
    assert "Max Memory Used: 31 MB" in rapid.report(second)  # what the backend measured


async def test_a_crash_answers_exit_error_and_the_instance_is_replaced(make_rapid):
    rapid = await make_rapid()
    await rapid.invoke("fn", {"echo": 0})
    crashed = rapid.backend.spawned[0]
    tmpdir = crashed.tmpdir
    assert os.path.isdir(tmpdir)
    r = await rapid.invoke("fn", {"exit": 3})
    assert r.status == 200 and r.headers["x-amz-function-error"] == "Unhandled"
    assert r.json() == {"errorType": "Runtime.ExitError",
                        "errorMessage": f"RequestId: {rid(r)} Error: Runtime exited with error: exit status 3"}
    assert "\tStatus: error\tError Type: Runtime.ExitError" in rapid.report(r)
    await until(lambda: not os.path.exists(tmpdir), what="the crashed instance's TMPDIR to go")
    assert rapid.fn("fn").instances == {}
    # The next invoke starts a replacement, inside the invoke (suppressed init): no Init
    # Duration on its REPORT, and its own TMPDIR.
    again = await rapid.invoke("fn", {"who": True})
    assert again.json() == 2
    assert "Init Duration" not in rapid.report(again)
    assert rapid.backend.spawned[1].tmpdir != tmpdir and os.path.isdir(rapid.backend.spawned[1].tmpdir)


async def test_a_killed_runtime_says_signal_killed(make_rapid):
    rapid = await make_rapid()
    held = rapid.invoking("fn", {"hang": True})
    await until(lambda: rapid.fn("fn").running == 1, what="the invoke to run")
    rapid.backend.spawned[0].kill()  # as the OOM killer would
    r = await held
    assert r.json()["errorMessage"] == f"RequestId: {rid(r)} Error: Runtime exited with error: signal: killed"


async def test_an_idle_runtime_that_dies_is_replaced_on_the_next_invoke(make_rapid):
    rapid = await make_rapid()
    await rapid.invoke("fn", {"echo": 0})
    await until(lambda: rapid.fn("fn").idle, what="an idle instance")
    rapid.backend.spawned[0].kill()
    await until(lambda: rapid.logs.matching("Error: Runtime exited with error: signal: killed"), what="the log line")
    assert (await rapid.invoke("fn", {"who": True})).json() == 2


async def test_timeout_kills_the_instance_and_never_reuses_it(make_rapid):
    rapid = await make_rapid({"fn": {"timeout": 1}})
    await rapid.invoke("fn", {"echo": 0})
    first = rapid.backend.spawned[0]
    r = await rapid.invoke("fn", {"hang": True})
    assert r.status == 200 and r.headers["x-amz-function-error"] == "Unhandled"
    assert r.json() == {"errorType": "Sandbox.Timedout",
                        "errorMessage": f"RequestId: {rid(r)} Error: Task timed out after 1.00 seconds"}
    assert "\tStatus: timeout" in rapid.report(r)
    await until(lambda: not first.alive, what="the timed-out runtime to be killed")
    assert first.returncode == -9
    assert all(inst.process is not first for inst in rapid.fn("fn").instances.values())
    again = await rapid.invoke("fn", {"who": True})
    assert again.json() == 2  # a new runtime
    assert "Init Duration" not in rapid.report(again)  # its init ran inside the invoke


async def test_an_error_keeps_the_instance_warm(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("fn", {"error": "MyError"})
    assert (r.status, r.headers["x-amz-function-error"]) == (200, "Unhandled")
    assert r.json() == {"errorMessage": "boom", "errorType": "MyError"}
    assert (await rapid.invoke("fn", {"who": True})).json() == 1


async def test_init_error_answers_its_body_and_retries_inside_the_next_invoke(make_rapid):
    rapid = await make_rapid({"fn": {"environment": {"FAKE_INIT": "error"}}})
    fn = rapid.fn("fn")
    r = await rapid.invoke("fn", {"echo": 1})
    assert (r.status, r.headers["x-amz-function-error"]) == (200, "Unhandled")
    assert r.json() == {"errorMessage": "bad init", "errorType": "Runtime.ImportModuleError"}
    inits = rapid.logs.matching("INIT_REPORT")
    # As on Lambda: the init phase failed, then init was tried again inside the invoke.
    assert len(inits) == 2
    assert "Phase: init\tStatus: error\tError Type: Runtime.ImportModuleError" in inits[0]
    assert "Phase: invoke\tStatus: error\tError Type: Runtime.ImportModuleError" in inits[1]
    assert len(rapid.backend.spawned) == 2
    # No retry loop: once the invoke is answered nothing is starting, and nothing starts
    # while no invoke comes (a restart would be scheduled as the instance died, so it
    # would show already, and after the loop has run its callbacks).
    await until(lambda: not rapid.backend.alive, what="the failed runtimes to end")
    for _ in range(10):
        await asyncio.sleep(0)
    assert fn.instances == {} and len(rapid.backend.spawned) == 2
    r = await rapid.invoke("fn", {"echo": 1})
    assert r.json()["errorType"] == "Runtime.ImportModuleError"
    inits = rapid.logs.matching("INIT_REPORT")
    assert len(inits) == 3 and "Phase: invoke" in inits[2]
    assert len(rapid.backend.spawned) == 3


async def test_exit_before_the_first_next_is_an_init_failure(make_rapid):
    rapid = await make_rapid({"fn": {"environment": {"FAKE_INIT": "exit:7"}}})
    r = await rapid.invoke("fn", {})
    assert r.json() == {"errorType": "Runtime.ExitError",
                        "errorMessage": f"RequestId: {rid(r)} Error: Runtime exited with error: exit status 7"}


async def test_init_timeout_then_suppressed_init_on_the_invoke_clock(make_rapid):
    rapid = await make_rapid({"fn": {"environment": {"FAKE_INIT": "hang"}, "timeout": 1}}, init_timeout=0.05)
    r = await rapid.invoke("fn", {"echo": 1})
    assert r.json()["errorType"] == "Sandbox.Timedout"
    inits = rapid.logs.matching("INIT_REPORT")
    assert "Phase: init\tStatus: timeout" in inits[0]
    assert "Phase: invoke\tStatus: timeout" in inits[1]
    assert len(rapid.backend.spawned) == 2 and not any(r.alive for r in rapid.backend.spawned)


async def test_a_runtime_that_cannot_start_is_invalid_entrypoint(make_rapid):
    rapid = await make_rapid()
    rapid.backend.refuse = PermissionError(13, "Permission denied")
    r = await rapid.invoke("fn", {})
    assert r.json() == {"errorType": "Runtime.InvalidEntrypoint",
                        "errorMessage": "RequestId: %s Error: fork/exec fake-runtime: permission denied" % rid(r)}
    assert rapid.backend.spawned == []
    rapid.backend.refuse = None
    assert (await rapid.invoke("fn", {"echo": "recovered"})).json() == "recovered"


async def test_output_lines_join_the_log_tail_between_start_and_end(make_rapid):
    rapid = await make_rapid()
    r = await rapid.invoke("fn", {"print": "hello from the handler"}, headers={"X-Amz-Log-Type": "Tail"})
    import base64

    tail = base64.b64decode(r.headers["x-amz-log-result"]).decode().splitlines()
    assert tail[0] == f"START RequestId: {rid(r)} Version: $LATEST"
    assert tail[1] == "hello from the handler"
    assert tail[2] == f"END RequestId: {rid(r)}"
    assert tail[3].startswith(f"REPORT RequestId: {rid(r)}\tDuration: ")


async def test_shutdown_ends_every_runtime(make_rapid):
    rapid = await make_rapid()
    held = rapid.invoking("fn", {"hang": True})
    await until(lambda: rapid.fn("fn").running == 1, what="the invoke to run")
    await rapid.host.shutdown()
    assert not rapid.backend.alive
    r = await held
    assert r.json()["errorType"] == "Runtime.ExitError"
