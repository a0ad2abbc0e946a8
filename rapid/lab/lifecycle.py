"""The lifecycle, from the runtime's side: its log lines, a hundred invocations on one
process, an invocation past its deadline, and SIGTERM."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from rapid.lab import machine
from rapid.lab.checks import DEADLINE, MAIN, decode, describe, event
from rapid.lab.verdict import (
    LIFECYCLE,
    LOGS,
    SHUTDOWN,
    Verdict,
    failed,
    judge,
    passed,
    skipped,
    warned,
)

if TYPE_CHECKING:
    from rapid.lab.session import Session

REUSE_INVOKES = 100
# Memory growth allowed from the 10th to the 100th invocation: 10 MiB, plus a tenth of what
# the runtime held at the 10th (a large heap, V8's say, breathes by a few MiB on its own).
LEAK_BOUND_KB = 10 * 1024
LEAK_BOUND_SHARE = 0.10
SIGTERM_GRACE_MS = 300  # what Lambda reserves for the runtime's graceful shutdown
SIGTERM_LIMIT_MS = 2000  # the whole shutdown budget (with external extensions)


# -- logs ---------------------------------------------------------------------------------

async def logs(s: Session) -> Verdict:
    expected = ("what the handler writes to stdout/stderr reaches the log line by line, during its "
                "invocation (between START and END)")
    marks = ["rapid-check-log-1 a1b2", "rapid-check-log-2 c3d4"]
    call = await s.rig.invoke(MAIN, event("log", lines=marks))
    if not call.ok:
        return failed("logs", f"the log op failed: {describe(call)}", expected, LOGS)
    lines = s.rig.lines_of(call.request_id) or []
    end = next((i for i, t in enumerate(lines) if t.startswith("END RequestId:")), len(lines))
    inside = lines[:end]
    where = [next((i for i, t in enumerate(inside) if m in t), None) for m in marks]
    if all(w is not None for w in where) and where[0] != where[1] and where[0] < where[1]:  # type: ignore[operator]
        return passed("logs", "both handler lines appeared as their own lines, in order, before END", expected, LOGS)
    await asyncio.sleep(0.5)  # where did they go, then?
    texts = [t for _at, t in s.rig.logs.lines]
    later = [m for m in marks if any(m in t for t in texts)]
    if where[0] is not None and where[0] == where[1]:
        seen = "both lines arrived joined in one log line"
    elif later:
        seen = f"{len(later)} of 2 handler lines appeared only after END (output buffered, not line by line)"
    else:
        seen = "the handler's lines never reached the log"
    return failed("logs", seen, expected, LOGS)


# -- reuse --------------------------------------------------------------------------------

async def reuse(s: Session) -> Verdict:
    expected = (f"one runtime process serves invocation after invocation, its memory bounded "
                f"(here: {REUSE_INVOKES} in a row; from the 10th to the last, memory grows less than "
                f"{LEAK_BOUND_KB // 1024} MiB plus {LEAK_BOUND_SHARE:.0%} of what it was)")
    rig = s.rig
    instances, rss_at_10, rss_last, failures = set(), 0, 0, []
    for i in range(REUSE_INVOKES):
        call = await rig.invoke(MAIN, event("echo", n=i, pad="r" * 1000))
        if not call.ok or decode(call.outcome.body) != {"op": "echo", "n": i, "pad": "r" * 1000}:
            failures.append(f"#{i + 1}: {describe(call)}")
            if len(failures) > 3:
                break
            continue
        given = rig.tap.delivery(call.request_id)
        instances.add(given.instance if given else None)
        if i in (9, REUSE_INVOKES - 1):
            inst = rig.instance_of(call.request_id)
            pid = inst.process.pid if inst and inst.process else None
            if pid:  # measured idle (back at /next), the same state each time
                await rig.until_idle(MAIN)
                if i == 9:
                    rss_at_10 = machine.family_pss_kb(pid)
                else:
                    rss_last = machine.family_pss_kb(pid)
    if failures:
        return failed("reuse", f"{len(failures)} invocations failed: {'; '.join(failures[:2])}", expected, LIFECYCLE)
    if len(instances) != 1:
        return failed("reuse", f"{REUSE_INVOKES} invocations needed {len(instances)} runtime processes "
                      "(it exits or crashes between invocations)", expected, LIFECYCLE)
    growth = rss_last - rss_at_10
    seen = (f"{REUSE_INVOKES} invocations on one process; memory (PSS of its processes) "
            f"{rss_at_10 / 1024:.1f} MiB at the 10th, {rss_last / 1024:.1f} MiB at the last")
    return judge("reuse", growth <= LEAK_BOUND_KB + LEAK_BOUND_SHARE * rss_at_10, seen, expected, LIFECYCLE)


# -- the deadline, from the runtime's side ---------------------------------------------------

async def late_write(s: Session) -> Verdict:
    expected = ("nothing reaches the Runtime API for an invocation after its deadline: at the timeout "
                "Lambda ends the environment (Sandbox.Timedout), and a fresh one serves the next invoke")
    rig = s.rig
    fn = rig.function(DEADLINE)
    sleep_ms = int(fn.timeout * 1000) + 1500
    call = await rig.invoke(DEADLINE, event("sleep", ms=sleep_ms))
    if call.error_type != "Sandbox.Timedout":
        return skipped("late-write", f"the {sleep_ms} ms sleep did not time out ({describe(call)})",
                       expected, LIFECYCLE)
    given = rig.tap.delivery(call.request_id)
    timed_out_at = call.settled
    await asyncio.sleep((sleep_ms - fn.timeout * 1000) / 1000.0 + 2.0)  # well past the end of its sleep
    late = [e for e in rig.tap.of(DEADLINE)
            if e.received > timed_out_at and (e.request_id == call.request_id
                                              or (given is not None and e.instance == given.instance))]
    after = await rig.invoke(DEADLINE, event("echo", after="timeout"))
    if late:
        first = late[0]
        late_ms = (first.received - timed_out_at) * 1000
        return failed("late-write", f"{first.method} {first.target} arrived {late_ms:.0f} "
                      f"ms after the timeout, from a process that outlived its runtime", expected, LIFECYCLE)
    if not after.ok:
        return failed("late-write", f"after the timeout the next invocation failed: {describe(after)}",
                      expected, LIFECYCLE)
    await rig.stop_instances(DEADLINE)
    return passed("late-write", f"timed out at {fn.timeout:.0f} s; nothing arrived after its deadline "
                  "(watched until its sleep would have ended); a new runtime served the next invoke",
                  expected, LIFECYCLE)


# -- last: shutdown ---------------------------------------------------------------------------

async def sigterm(s: Session) -> Verdict:
    expected = (f"on shutdown Lambda sends SIGTERM; the runtime has about {SIGTERM_GRACE_MS} ms to exit "
                f"before SIGKILL (at most {SIGTERM_LIMIT_MS} ms of shutdown in all)")
    fn = s.rig.function(MAIN)
    live = [i for i in fn.instances.values() if i.process is not None and i.process.alive and not i.running]
    if not live:
        return skipped("sigterm", "no idle runtime left to stop", expected, SHUTDOWN)
    inst = live[0]
    process = inst.process
    assert process is not None
    t0 = time.monotonic()
    inst.terminate()
    while process.alive and time.monotonic() - t0 < SIGTERM_LIMIT_MS / 1000.0:
        await asyncio.sleep(0.005)
    ms = (time.monotonic() - t0) * 1000.0
    if process.alive:
        inst.kill()
        return failed("sigterm", f"still running {SIGTERM_LIMIT_MS} ms after SIGTERM (killed)", expected, SHUTDOWN)
    code = process.returncode
    how = "by the signal" if code is not None and code < 0 else f"with status {code}"
    if ms > SIGTERM_GRACE_MS:
        return warned("sigterm", f"exited {how} {ms:.0f} ms after SIGTERM", expected, SHUTDOWN)
    return passed("sigterm", f"exited {how} {ms:.0f} ms after SIGTERM", expected, SHUTDOWN)
