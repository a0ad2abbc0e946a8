"""What an invocation shows: the behaviours ``rapid check`` grades one event at a time.

Each drives the runtime with an event of the test handler's protocol (``{"op": ...}``,
see ``rapid/lab/handlers``), then judges from what rapid saw: the invocation's outcome and
the Runtime API requests the tap recorded. The lifecycle (logs, reuse, the deadline,
SIGTERM) is in ``rapid.lab.lifecycle``; what is read off the whole recording (paths,
connections, streaming) in ``rapid.lab.wire``.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import msgspec

from rapid.lab.rig import Call
from rapid.lab.verdict import (
    CUSTOM,
    ENVIRONMENT,
    LAYERS,
    LIMITS,
    RUNTIME_API,
    Verdict,
    failed,
    judge,
    passed,
    skipped,
)

if TYPE_CHECKING:
    from rapid.lab.session import Session

MAIN, DEADLINE, INIT_ERROR, HANDLER_PATH = "check", "deadline", "init-error", "handler-path"
INIT_ERROR_EXPECTED = ("a runtime that cannot load its handler posts /runtime/init/error with "
                       "{errorType, errorMessage}, then exits")
MB1 = 1024 * 1024
MB6 = 6 * 1024 * 1024 - 1024  # under the 6 MB request limit, with room for a runtime's spaces

_encode = msgspec.json.encode


def event(op: str, **fields: Any) -> bytes:
    """An event of the test handler's protocol: compact JSON, ``op`` first."""
    return _encode({"op": op, **fields})


def decode(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


def short(body: bytes, n: int = 120) -> str:
    text = body[:n].decode("utf-8", "replace")
    return repr(text + ("..." if len(body) > n else ""))


def describe(call: Call) -> str:
    o = call.outcome
    if o.service_error is not None:
        return f"no invocation: {o.service_error.code}"
    if o.function_error:
        info = decode(o.body)
        msg = info.get("errorMessage", "") if isinstance(info, dict) else ""
        return f"{o.error_type or 'an error'}: {str(msg)[:160]}"
    return f"response {short(o.body)}"


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
        return failed("start", f"it never polled /next ({describe(call)})", expected, CUSTOM)
    inst = rig.instance_of(call.request_id)
    if inst is not None and inst.spawned_at:
        s.first_next_ms = (nexts[0].received - inst.spawned_at) * 1000.0
    answer = rig.tap.answer(call.request_id)
    if not call.ok or answer is None:
        return failed("start", f"first /next after {s.first_next_ms or 0:.0f} ms, then {describe(call)}",
                      expected, CUSTOM)
    got = decode(call.outcome.body)
    ok = got == decode(payload)
    seen = (f"first /next {s.first_next_ms or 0:.0f} ms after spawn; the JSON event came back "
            f"{'intact' if ok else 'changed: ' + short(call.outcome.body)} through /response "
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
        return failed(name, f"{label} event: {describe(call)}", expected, LIMITS)
    got = decode(call.outcome.body)
    want = decode(payload)
    if got == want:
        return passed(name, f"{len(payload):,} bytes out, {len(call.outcome.body):,} back, equal as JSON",
                      expected, LIMITS)
    data = got.get("data") if isinstance(got, dict) else None
    if isinstance(data, str):
        what = f"{len(data):,} of {len(want['data']):,} bytes of its data"
    elif got is None:
        what = f"{len(call.outcome.body):,} of {len(payload):,} bytes, not JSON: cut short?"
    else:
        what = short(call.outcome.body)
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
        return failed("function-error", f"nothing posted for the failing invocation ({describe(call)})",
                      expected, RUNTIME_API)
    if posted.kind == "response":
        return failed("function-error", f"the error was posted to /response as a success: {short(call.outcome.body)}",
                      expected, RUNTIME_API)
    body = decode(call.outcome.body)
    problems = []
    if not isinstance(body, dict):
        problems.append(f"the body is not a JSON object: {short(call.outcome.body)}")
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
        problems.append(f"the next invocation did not run on the same runtime ({describe(after)})")
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
        body = decode(posted[0].body or b"")
        etype = body.get("errorType") if isinstance(body, dict) else None
        ok = isinstance(body, dict) and isinstance(etype, str) and isinstance(body.get("errorMessage"), str)
        seen = (f"posted /init/error with errorType {etype!r}" if ok
                else "posted /init/error, but its body is not {errorType, errorMessage}: "
                + short(posted[0].body or b""))
        return judge("init-error", ok, seen + " for a handler that does not exist", INIT_ERROR_EXPECTED, CUSTOM)
    if nexts and call.ok:
        s.handler_ignored = True
        return skipped("init-error", "it started normally with a handler that does not exist (it does not load "
                       "its handler by name)", INIT_ERROR_EXPECTED, CUSTOM)
    return failed("init-error", f"no /init/error for a handler that does not exist ({describe(call)})",
                  INIT_ERROR_EXPECTED, CUSTOM)


async def handler_path(s: Session) -> Verdict:
    expected = ("a handler string may name its file by a path below LAMBDA_TASK_ROOT "
                "(dir/file.function), as the managed runtimes accept")
    rig = s.rig
    if HANDLER_PATH not in rig.host.functions:  # type: ignore[union-attr]
        return skipped("handler-path", "the task root is not rapid check's own (give no --task-root, "
                       "or test the form yourself)", expected, CUSTOM)
    if s.handler_ignored:
        return skipped("handler-path", "it does not load its handler by name", expected, CUSTOM)
    call = await rig.invoke(HANDLER_PATH, event("env"))
    await rig.stop_instances(HANDLER_PATH)
    got = decode(call.outcome.body) if call.ok else None
    if not isinstance(got, dict) or not isinstance(got.get("handler_file"), str):
        return failed("handler-path", f"handler {rig.function(HANDLER_PATH).config.handler!r}: {describe(call)}",
                      expected, CUSTOM)
    where = os.path.relpath(os.path.realpath(got["handler_file"]),
                            os.path.realpath(rig.function(HANDLER_PATH).code.task_root))
    ok = where.startswith("nested" + os.sep)
    return judge("handler-path", ok, f"handler {rig.function(HANDLER_PATH).config.handler!r} ran {where}",
                 expected, CUSTOM)


# -- what the handler is told ---------------------------------------------------------------

CLIENT_CONTEXT = {"client": {"installation_id": "rapid-check", "app_title": "rapid", "app_version_name": "1",
                             "app_version_code": "1", "app_package_name": "rapid.check"},
                  "custom": {"rapid-check": "c0ffee"}, "env": {"platform": "rapid"}}
IDENTITY = {"cognitoIdentityId": "us-east-1:rapid-check-identity",
            "cognitoIdentityPoolId": "us-east-1:rapid-check-pool"}
SECOND_TRACE = "Root=1-00000000-rapidcheck000000000000000;Parent=0000000000000001;Sampled=0"


async def _context(s: Session, trace: str | None = None) -> tuple[Call, Any]:
    call = await s.rig.invoke(MAIN, event("context"), client_context=_encode(CLIENT_CONTEXT).decode(),
                              cognito_identity=_encode(IDENTITY).decode(), trace=trace)
    return call, decode(call.outcome.body) if call.ok else None


async def context_call(s: Session) -> tuple[Call, Any]:
    if s.context is None:
        s.context = await _context(s)
    return s.context


async def deadline(s: Session) -> Verdict:
    call, got = await context_call(s)
    expected = ("Lambda-Runtime-Deadline-Ms (epoch ms) gives the handler its remaining time "
                "(context.get_remaining_time_in_millis and the like)")
    if not isinstance(got, dict):
        return failed("deadline", f"the context op failed: {describe(call)}", expected, RUNTIME_API)
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
    second, got2 = await _context(s, trace=SECOND_TRACE)
    seen_ids = []
    for c, g in ((call, got), (second, got2)):
        if not isinstance(g, dict):
            return failed("trace-id", f"the context op failed: {describe(c)}", expected, CUSTOM)
        sent = c.invocation.trace_id
        if g.get("trace_id") != sent:
            have = g.get("trace_id")
            stale = have == call.invocation.trace_id
            why = "unset" if not have else ("the previous invocation's" if stale else repr(have))
            return failed("trace-id", f"_X_AMZN_TRACE_ID was {why}, not {sent!r}", expected, CUSTOM)
        seen_ids.append(sent)
    return passed("trace-id", "_X_AMZN_TRACE_ID was each invocation's own trace id (2 of 2)", expected, CUSTOM)


async def client_context(s: Session) -> Verdict:
    expected = "Lambda-Runtime-Client-Context (JSON) reaches the handler's context"
    call, got = await context_call(s)
    if not isinstance(got, dict):
        return failed("client-context", f"the context op failed: {describe(call)}", expected, RUNTIME_API)
    cc = got.get("client_context")
    custom = cc.get("custom") if isinstance(cc, dict) else None
    ok = custom == CLIENT_CONTEXT["custom"]
    seen = f"context's client context custom = {custom!r}" if cc is not None else "the context has no client context"
    return judge("client-context", ok, seen, expected, RUNTIME_API)


async def cognito_identity(s: Session) -> Verdict:
    expected = "Lambda-Runtime-Cognito-Identity (JSON) reaches the handler's context"
    call, got = await context_call(s)
    if not isinstance(got, dict):
        return failed("cognito-identity", f"the context op failed: {describe(call)}", expected, RUNTIME_API)
    ident = got.get("identity")
    have = ident.get("cognitoIdentityId") if isinstance(ident, dict) else None
    pool = ident.get("cognitoIdentityPoolId") if isinstance(ident, dict) else None
    ok = have == IDENTITY["cognitoIdentityId"] and pool == IDENTITY["cognitoIdentityPoolId"]
    return judge("cognito-identity", ok, f"context's identity id = {have!r}", expected, RUNTIME_API)


async def function_arn(s: Session) -> Verdict:
    expected = "Lambda-Runtime-Invoked-Function-Arn reaches the handler's context"
    call, got = await context_call(s)
    if not isinstance(got, dict):
        return failed("function-arn", f"the context op failed: {describe(call)}", expected, RUNTIME_API)
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
    got = decode(call.outcome.body) if call.ok else None
    if not isinstance(got, dict) or not isinstance(got.get("env"), dict):
        return failed("environment", f"the env op failed: {describe(call)}", expected, ENVIRONMENT)
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
