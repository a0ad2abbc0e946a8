"""The behaviours ``rapid check`` grades, each an async function of the session.

Each drives the runtime with an event of the test handler's protocol (``{"op": ...}``,
see ``rapid/lab/handlers``), then judges from what rapid saw: the invocation's outcome,
the Runtime API requests the tap recorded, and the log lines around START and END.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import msgspec

from rapid.lab import machine
from rapid.lab.rig import Call
from rapid.lab.verdict import (
    CUSTOM,
    ENVIRONMENT,
    LAYERS,
    LIFECYCLE,
    LIMITS,
    LOGS,
    RUNTIME_API,
    SHUTDOWN,
    STREAMING,
    Verdict,
    failed,
    judge,
    passed,
    skipped,
    warned,
)

if TYPE_CHECKING:
    from rapid.lab.session import Session

MAIN, DEADLINE, INIT_ERROR = "check", "deadline", "init-error"
INIT_ERROR_EXPECTED = ("a runtime that cannot load its handler posts /runtime/init/error with "
                       "{errorType, errorMessage}, then exits")
REUSE_INVOKES = 100
LEAK_BOUND_KB = 10 * 1024  # RSS growth allowed from the 10th to the 100th invocation
SIGTERM_GRACE_MS = 300  # what Lambda reserves for the runtime's graceful shutdown
SIGTERM_LIMIT_MS = 2000  # the whole shutdown budget (with external extensions)
MB1 = 1024 * 1024
MB6 = 6 * 1024 * 1024 - 1024  # under the 6 MB request limit, with room for a runtime's spaces

_encode = msgspec.json.encode


def event(op: str, **fields: Any) -> bytes:
    """An event of the test handler's protocol: compact JSON, ``op`` first."""
    return _encode({"op": op, **fields})


def _json(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


def _short(body: bytes, n: int = 120) -> str:
    text = body[:n].decode("utf-8", "replace")
    return repr(text + ("..." if len(body) > n else ""))


def _describe(call: Call) -> str:
    o = call.outcome
    if o.service_error is not None:
        return f"no invocation: {o.service_error.code}"
    if o.function_error:
        info = _json(o.body)
        msg = info.get("errorMessage", "") if isinstance(info, dict) else ""
        return f"{o.error_type or 'an error'}: {str(msg)[:160]}"
    return f"response {_short(o.body)}"


# -- start --------------------------------------------------------------------------------

async def start(s: Session) -> Verdict:
    """The first invocation: the runtime starts, polls /next, answers a JSON event."""
    rig = s.rig
    payload = event("echo", hello="rapid check")
    task = asyncio.ensure_future(rig.invoke(MAIN, payload, wait=rig.settings["init_timeout"] + 20.0))
    trapped = asyncio.ensure_future(s.trap.event.wait())
    await asyncio.wait([task, trapped], return_when=asyncio.FIRST_COMPLETED, timeout=60.0)
    trapped.cancel()
    expected = ("the runtime initialises, polls GET /runtime/invocation/next (init ends there, within 10 s) "
                "and posts the handler's result to /invocation/{id}/response")
    if not task.done():
        task.cancel()
        await rig.stop_instances(MAIN)
        rig.function(MAIN).refuse_queued(_gone())
        seen = "no /next within the init timeout" if not s.trap.seen else "it called 127.0.0.1:9001 instead"
        return failed("start", seen, expected, CUSTOM)
    try:
        call = task.result()
    except (asyncio.TimeoutError, TimeoutError):
        return failed("start", "the first invocation never settled", expected, CUSTOM)
    s.first = call
    nexts = [e for e in rig.tap.of(MAIN) if e.kind == "next"]
    if not nexts:
        return failed("start", f"it never polled /next ({_describe(call)})", expected, CUSTOM)
    inst = rig.instance_of(call.request_id)
    if inst is not None and inst.spawned_at:
        s.first_next_ms = (nexts[0].received - inst.spawned_at) * 1000.0
    answer = rig.tap.answer(call.request_id)
    if not call.ok or answer is None:
        return failed("start", f"first /next after {s.first_next_ms or 0:.0f} ms, then {_describe(call)}",
                      expected, CUSTOM)
    got = _json(call.outcome.body)
    ok = got == _json(payload)
    seen = (f"first /next {s.first_next_ms or 0:.0f} ms after spawn; the JSON event came back "
            f"{'intact' if ok else 'changed: ' + _short(call.outcome.body)} through /response "
            f"(Content-Type {answer.headers.get('content-type', 'none')})")
    return judge("start", ok, seen, expected, CUSTOM)


def _gone() -> Any:
    from rapid.core.errors import shutting_down

    return shutting_down()


def address(s: Session) -> Verdict:
    expected = "runtimes build every URL from AWS_LAMBDA_RUNTIME_API (host:port), never a fixed address"
    if s.trap.seen:
        first = s.trap.seen[0].split(b"\r\n", 1)[0].decode("latin-1", "replace")
        return failed("address", f"it called 127.0.0.1:9001 ({first!r}) instead of its AWS_LAMBDA_RUNTIME_API",
                      expected, RUNTIME_API)
    used = len(s.rig.tap.of(MAIN))
    if not used:
        return failed("address", "it never reached its AWS_LAMBDA_RUNTIME_API", expected, RUNTIME_API)
    where = "" if s.trap_open else " (127.0.0.1:9001 could not be watched here)"
    return passed("address", f"all {used} requests went to its AWS_LAMBDA_RUNTIME_API{where}",
                  expected, RUNTIME_API)


# -- payloads -----------------------------------------------------------------------------

def _echo_event(total: int) -> bytes:
    head = event("echo", data="")
    return head[:-2] + b"x" * (total - len(head)) + head[-2:]


async def _echo(s: Session, name: str, total: int, label: str) -> Verdict:
    payload = _echo_event(total)
    call = await s.rig.invoke(MAIN, payload)
    expected = f"a {label} event and a {label} response pass intact (the limit is 6 MB each way)"
    if not call.ok:
        return failed(name, f"{label} event: {_describe(call)}", expected, LIMITS)
    got = _json(call.outcome.body)
    want = _json(payload)
    if got == want:
        return passed(name, f"{len(payload):,} bytes out, {len(call.outcome.body):,} back, equal as JSON",
                      expected, LIMITS)
    data = got.get("data") if isinstance(got, dict) else None
    if isinstance(data, str):
        what = f"{len(data):,} of {len(want['data']):,} bytes of its data"
    elif got is None:
        what = f"{len(call.outcome.body):,} of {len(payload):,} bytes, not JSON: cut short?"
    else:
        what = _short(call.outcome.body)
    return failed(name, f"the echo came back different: {what}", expected, LIMITS)


async def echo_1mb(s: Session) -> Verdict:
    return await _echo(s, "echo-1mb", MB1, "1 MB")


async def echo_6mb(s: Session) -> Verdict:
    return await _echo(s, "echo-6mb", MB6, "6 MB")


# -- errors -------------------------------------------------------------------------------

async def function_error(s: Session) -> Verdict:
    rig = s.rig
    message = "rapid check: deliberate failure 7f3a"
    call = await rig.invoke(MAIN, event("fail", message=message))
    expected = ("a handler error goes to /invocation/{id}/error as JSON {errorType, errorMessage} "
                "(Lambda-Runtime-Function-Error-Type optional), and the runtime keeps serving")
    posted = rig.tap.answer(call.request_id)
    if posted is None:
        return failed("function-error", f"nothing posted for the failing invocation ({_describe(call)})",
                      expected, RUNTIME_API)
    if posted.kind == "response":
        return failed("function-error", f"the error was posted to /response as a success: {_short(call.outcome.body)}",
                      expected, RUNTIME_API)
    body = _json(call.outcome.body)
    problems = []
    if not isinstance(body, dict):
        problems.append(f"the body is not a JSON object: {_short(call.outcome.body)}")
    else:
        if not isinstance(body.get("errorType"), str) or not body.get("errorType"):
            problems.append("no errorType")
        if message not in str(body.get("errorMessage", "")):
            problems.append(f"errorMessage {str(body.get('errorMessage'))[:80]!r} lacks the handler's message")
    header = posted.headers.get("lambda-runtime-function-error-type")
    after = await rig.invoke(MAIN, event("echo", after="error"))
    same = rig.tap.delivery(after.request_id)
    first = rig.tap.delivery(call.request_id)
    kept = after.ok and same is not None and first is not None and same.instance == first.instance
    if not kept:
        problems.append(f"the next invocation did not run on the same runtime ({_describe(after)})")
    etype = body.get("errorType") if isinstance(body, dict) else None
    seen = (f"/error with errorType {etype!r}, "
            f"{'header ' + repr(header) if header else 'no Lambda-Runtime-Function-Error-Type header'}"
            f"{', then served the next invocation' if kept else ''}")
    if problems:
        return failed("function-error", seen + "; " + "; ".join(problems), expected, RUNTIME_API)
    return passed("function-error", seen, expected, RUNTIME_API)


async def init_error(s: Session) -> Verdict:
    rig = s.rig
    call = await rig.invoke(INIT_ERROR, event("echo"))
    posted = [e for e in rig.tap.of(INIT_ERROR) if e.kind == "init-error"]
    nexts = [e for e in rig.tap.of(INIT_ERROR) if e.kind == "next"]
    await rig.stop_instances(INIT_ERROR)
    if posted:
        body = _json(posted[0].body or b"")
        etype = body.get("errorType") if isinstance(body, dict) else None
        ok = isinstance(body, dict) and isinstance(etype, str) and isinstance(body.get("errorMessage"), str)
        seen = (f"posted /init/error with errorType {etype!r}" if ok
                else f"posted /init/error, but its body is not {{errorType, errorMessage}}: {_short(posted[0].body or b'')}")
        return judge("init-error", ok, seen + " for a handler that does not exist", INIT_ERROR_EXPECTED, CUSTOM)
    if nexts and call.ok:
        return skipped("init-error", "it started normally with a handler that does not exist (it does not load "
                       "its handler by name)", INIT_ERROR_EXPECTED, CUSTOM)
    return failed("init-error", f"no /init/error for a handler that does not exist ({_describe(call)})",
                  INIT_ERROR_EXPECTED, CUSTOM)


# -- what the handler is told ---------------------------------------------------------------

CLIENT_CONTEXT = {"client": {"installation_id": "rapid-check", "app_title": "rapid", "app_version_name": "1",
                             "app_version_code": "1", "app_package_name": "rapid.check"},
                  "custom": {"rapid-check": "c0ffee"}, "env": {"platform": "rapid"}}
IDENTITY = {"cognitoIdentityId": "us-east-1:rapid-check-identity", "cognitoIdentityPoolId": "us-east-1:rapid-check-pool"}


async def _context(s: Session, trace: str | None = None) -> tuple[Call, Any]:
    call = await s.rig.invoke(MAIN, event("context"), client_context=_encode(CLIENT_CONTEXT).decode(),
                              cognito_identity=_encode(IDENTITY).decode(), trace=trace)
    return call, _json(call.outcome.body) if call.ok else None


async def context_call(s: Session) -> tuple[Call, Any]:
    cached = s.__dict__.get("_context_call")
    if cached is None:
        cached = s.__dict__["_context_call"] = await _context(s)
    return cached


async def deadline(s: Session) -> Verdict:
    call, got = await context_call(s)
    expected = ("Lambda-Runtime-Deadline-Ms (epoch ms) gives the handler its remaining time "
                "(context.get_remaining_time_in_millis and the like)")
    if not isinstance(got, dict):
        return failed("deadline", f"the context op failed: {_describe(call)}", expected, RUNTIME_API)
    given = s.rig.tap.delivery(call.request_id)
    answer = s.rig.tap.answer(call.request_id)
    remaining = got.get("remaining_ms")
    if given is None or answer is None or not isinstance(remaining, (int, float)):
        return failed("deadline", f"no remaining time from the handler ({got.get('remaining_ms')!r})",
                      expected, RUNTIME_API)
    asked_at = given.deadline_ms - remaining  # the wall-clock instant the handler asked
    low, high = s.wall_ms(given.answered) - 50, s.wall_ms(answer.received) + 50
    timeout_ms = s.rig.function(MAIN).timeout * 1000
    ok = low <= asked_at <= high and 0 < remaining <= timeout_ms
    seen = f"the handler had {remaining:.0f} ms of {timeout_ms:.0f} left"
    if not ok:
        seen += f" (with the deadline given, it should have had {given.deadline_ms - s.wall_ms(answer.received):.0f}" \
                f" to {given.deadline_ms - s.wall_ms(given.answered):.0f} ms)"
    return judge("deadline", ok, seen, expected, RUNTIME_API)


async def trace_id(s: Session) -> Verdict:
    expected = "the runtime sets _X_AMZN_TRACE_ID to each invocation's Lambda-Runtime-Trace-Id"
    call, got = await context_call(s)
    second, got2 = await _context(s, trace="Root=1-00000000-rapidcheck000000000000000;Parent=0000000000000001;Sampled=0")
    seen_ids = []
    for c, g in ((call, got), (second, got2)):
        if not isinstance(g, dict):
            return failed("trace-id", f"the context op failed: {_describe(c)}", expected, CUSTOM)
        sent = c.invocation.trace_id
        if g.get("trace_id") != sent:
            have = g.get("trace_id")
            why = "unset" if not have else ("the previous invocation's" if have == call.invocation.trace_id else repr(have))
            return failed("trace-id", f"_X_AMZN_TRACE_ID was {why}, not {sent!r}", expected, CUSTOM)
        seen_ids.append(sent)
    return passed("trace-id", "_X_AMZN_TRACE_ID was each invocation's own trace id (2 of 2)", expected, CUSTOM)


async def client_context(s: Session) -> Verdict:
    expected = "Lambda-Runtime-Client-Context (JSON) reaches the handler's context"
    call, got = await context_call(s)
    if not isinstance(got, dict):
        return failed("client-context", f"the context op failed: {_describe(call)}", expected, RUNTIME_API)
    cc = got.get("client_context")
    custom = cc.get("custom") if isinstance(cc, dict) else None
    ok = custom == CLIENT_CONTEXT["custom"]
    seen = f"context's client context custom = {custom!r}" if cc is not None else "the context has no client context"
    return judge("client-context", ok, seen, expected, RUNTIME_API)


async def cognito_identity(s: Session) -> Verdict:
    expected = "Lambda-Runtime-Cognito-Identity (JSON) reaches the handler's context"
    call, got = await context_call(s)
    if not isinstance(got, dict):
        return failed("cognito-identity", f"the context op failed: {_describe(call)}", expected, RUNTIME_API)
    ident = got.get("identity")
    have = ident.get("cognitoIdentityId") if isinstance(ident, dict) else None
    ok = have == IDENTITY["cognitoIdentityId"] and ident.get("cognitoIdentityPoolId") == IDENTITY["cognitoIdentityPoolId"]
    return judge("cognito-identity", ok, f"context's identity id = {have!r}", expected, RUNTIME_API)


async def function_arn(s: Session) -> Verdict:
    expected = "Lambda-Runtime-Invoked-Function-Arn reaches the handler's context"
    call, got = await context_call(s)
    if not isinstance(got, dict):
        return failed("function-arn", f"the context op failed: {_describe(call)}", expected, RUNTIME_API)
    want = call.invocation.function_arn
    have = got.get("function_arn")
    rid = got.get("request_id")
    ok = have == want and rid == call.request_id
    seen = f"context's ARN {have!r}, request id {'matches' if rid == call.request_id else repr(rid)}"
    return judge("function-arn", ok, seen, expected, RUNTIME_API)


async def environment(s: Session) -> Verdict:
    expected = ("the handler, named file.function in _HANDLER, is loaded from LAMBDA_TASK_ROOT and sees the "
                "function's environment, layer paths (/opt/bin on PATH, /opt/lib on LD_LIBRARY_PATH) included")
    call = await s.rig.invoke(MAIN, event("env"))
    got = _json(call.outcome.body) if call.ok else None
    if not isinstance(got, dict) or not isinstance(got.get("env"), dict):
        return failed("environment", f"the env op failed: {_describe(call)}", expected, ENVIRONMENT)
    import os

    env = got["env"]
    task_root = os.path.realpath(s.rig.function(MAIN).code.task_root)
    problems = []
    for key in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                "AWS_REGION", "LAMBDA_TASK_ROOT"):
        if key not in env:
            problems.append(f"{key} missing")
    if env.get("LAMBDA_TASK_ROOT") and os.path.realpath(env["LAMBDA_TASK_ROOT"]) != task_root:
        problems.append(f"LAMBDA_TASK_ROOT is {env['LAMBDA_TASK_ROOT']!r}")
    handler_file = got.get("handler_file")
    if isinstance(handler_file, str) and not os.path.realpath(handler_file).startswith(task_root + os.sep):
        problems.append(f"the handler was loaded from {handler_file!r}, outside LAMBDA_TASK_ROOT")
    if s.spec.handler and env.get("_HANDLER") != s.spec.handler:
        problems.append(f"_HANDLER is {env.get('_HANDLER')!r}")
    if "/opt/bin" not in env.get("PATH", "").split(":"):
        problems.append("/opt/bin is not on PATH")
    if "/opt/lib" not in env.get("LD_LIBRARY_PATH", "").split(":"):
        problems.append("/opt/lib is not on LD_LIBRARY_PATH")
    where = f"handler {s.spec.handler!r} " if s.spec.handler else "the handler "
    seen = f"{where}ran from LAMBDA_TASK_ROOT, with the function's variables and layer paths"
    if problems:
        return failed("environment", "; ".join(problems), expected, ENVIRONMENT + " ; " + LAYERS)
    return passed("environment", seen, expected, ENVIRONMENT + " ; " + LAYERS)


# -- logs ---------------------------------------------------------------------------------

async def logs(s: Session) -> Verdict:
    expected = ("what the handler writes to stdout/stderr reaches the log line by line, during its "
                "invocation (between START and END)")
    marks = ["rapid-check-log-1 a1b2", "rapid-check-log-2 c3d4"]
    call = await s.rig.invoke(MAIN, event("log", lines=marks))
    if not call.ok:
        return failed("logs", f"the log op failed: {_describe(call)}", expected, LOGS)
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
                f"(here: {REUSE_INVOKES} in a row, memory growth under {LEAK_BOUND_KB // 1024} MiB "
                "from the 10th to the last)")
    rig = s.rig
    instances, rss_at_10, rss_last, failures = set(), 0, 0, []
    for i in range(REUSE_INVOKES):
        call = await rig.invoke(MAIN, event("echo", n=i, pad="r" * 1000))
        if not call.ok or _json(call.outcome.body) != {"op": "echo", "n": i, "pad": "r" * 1000}:
            failures.append(f"#{i + 1}: {_describe(call)}")
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
    return judge("reuse", growth <= LEAK_BOUND_KB, seen, expected, LIFECYCLE)


# -- the deadline, from the runtime's side ---------------------------------------------------

async def late_write(s: Session) -> Verdict:
    expected = ("nothing reaches the Runtime API for an invocation after its deadline: at the timeout "
                "Lambda ends the environment (Sandbox.Timedout), and a fresh one serves the next invoke")
    rig = s.rig
    fn = rig.function(DEADLINE)
    sleep_ms = int(fn.timeout * 1000) + 1500
    call = await rig.invoke(DEADLINE, event("sleep", ms=sleep_ms))
    if call.error_type != "Sandbox.Timedout":
        return skipped("late-write", f"the {sleep_ms} ms sleep did not time out ({_describe(call)})",
                       expected, LIFECYCLE)
    given = rig.tap.delivery(call.request_id)
    timed_out_at = call.settled
    await asyncio.sleep((sleep_ms - fn.timeout * 1000) / 1000.0 + 1.0)  # past the end of the handler's sleep
    late = [e for e in rig.tap.of(DEADLINE)
            if e.received > timed_out_at and (e.request_id == call.request_id
                                              or (given is not None and e.instance == given.instance))]
    after = await rig.invoke(DEADLINE, event("echo", after="timeout"))
    if late:
        first = late[0]
        return failed("late-write", f"{first.method} {first.target} arrived {(first.received - timed_out_at) * 1000:.0f} "
                      f"ms after the timeout, from a process that outlived its runtime", expected, LIFECYCLE)
    if not after.ok:
        return failed("late-write", f"after the timeout the next invocation failed: {_describe(after)}",
                      expected, LIFECYCLE)
    await rig.stop_instances(DEADLINE)
    return passed("late-write", f"timed out at {fn.timeout:.0f} s; nothing arrived after its deadline "
                  "(watched until its sleep would have ended); a new runtime served the next invoke",
                  expected, LIFECYCLE)


# -- read off the tap at the end ------------------------------------------------------------

def paths(s: Session) -> Verdict:
    expected = "requests go to /2018-06-01/runtime/... with the method each endpoint takes"
    exchanges = s.rig.tap.exchanges
    odd = [e for e in exchanges if e.kind == "other" or e.status in (404, 405)]
    doubled = [e for e in exchanges if e.target.startswith("//")]
    if odd:
        e = odd[0]
        return failed("paths", f"{len(odd)} requests to paths the Runtime API does not have, e.g. {e.method} {e.target}",
                      expected, RUNTIME_API)
    kinds = sorted({f"{e.method} {e.kind}" for e in exchanges})
    if not exchanges:
        return skipped("paths", "no request reached the Runtime API", expected, RUNTIME_API)
    if doubled:
        return warned("paths", f"{len(doubled)} paths start with '//' (e.g. {doubled[0].target}): rapid merges "
                      "the slashes, other hosts may answer 404", expected, RUNTIME_API)
    return passed("paths", f"{len(exchanges)} requests, all known routes ({', '.join(kinds)})", expected, RUNTIME_API)


def keep_alive(s: Session) -> Verdict:
    expected = ("HTTP/1.1 to the Runtime API, keep-alive allowed; /next is a long poll held open with no "
                "client timeout")
    mine = [e for e in s.rig.tap.of(MAIN) if e.kind != "other"]
    by_instance: dict[int, set[int]] = {}
    for e in mine:
        by_instance.setdefault(e.instance, set()).add(e.connection)
    if not mine:
        return skipped("keep-alive", "no requests recorded", expected, RUNTIME_API)
    conns = sum(len(c) for c in by_instance.values())
    hung = [e for e in mine if e.kind == "next" and e.status == -1 and not e.instance_dead]
    if hung:
        return failed("keep-alive", f"it abandoned {len(hung)} held /next (a client timeout on the long poll?)",
                      expected, RUNTIME_API)
    if conns < len(mine):
        how = f"{len(mine)} requests over {conns} connection{'s' if conns > 1 else ''} (kept alive)"
    else:
        how = f"a new connection for each of {len(mine)} requests (allowed; keep-alive saves a connect each)"
    return passed("keep-alive", how, expected, RUNTIME_API)


def streaming(s: Session) -> Verdict:
    expected = ("a streaming runtime sends Lambda-Runtime-Function-Response-Mode: streaming with "
                "Transfer-Encoding: chunked, and declares its error trailers in a Trailer header")
    posts = [e for e in s.rig.tap.exchanges if e.kind in ("response", "error")]
    modes = [e for e in posts if "lambda-runtime-function-response-mode" in e.headers]
    chunked = [e for e in posts if "chunked" in e.headers.get("transfer-encoding", "").lower()]
    undeclared = [e for e in posts if e.trailers and not e.headers.get("trailer")]
    bad_mode = [e for e in modes if e.headers["lambda-runtime-function-response-mode"].lower() != "streaming"]
    if bad_mode:
        value = bad_mode[0].headers["lambda-runtime-function-response-mode"]
        return failed("streaming", f"Response-Mode {value!r} (Lambda answers 400 InvalidFunctionResponseMode)",
                      expected, STREAMING)
    unchunked = [e for e in modes if e not in chunked]
    if unchunked:
        return failed("streaming", "Response-Mode: streaming without Transfer-Encoding: chunked", expected, STREAMING)
    if undeclared:
        return failed("streaming", f"trailers {sorted(undeclared[0].trailers)} sent without a Trailer header",
                      expected, STREAMING)
    if modes:
        return passed("streaming", f"{len(modes)} streamed responses, chunked", expected, STREAMING)
    extra = f"; {len(chunked)} chunked POSTs parsed intact" if chunked else ""
    return passed("streaming", f"buffered responses, no streaming claimed{extra}", expected, STREAMING)


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


RUNNING = [
    ("echo-1mb", echo_1mb),
    ("echo-6mb", echo_6mb),
    ("function-error", function_error),
    ("init-error", init_error),
    ("deadline", deadline),
    ("trace-id", trace_id),
    ("client-context", client_context),
    ("cognito-identity", cognito_identity),
    ("function-arn", function_arn),
    ("environment", environment),
    ("logs", logs),
    ("reuse", reuse),
    ("late-write", late_write),
]
