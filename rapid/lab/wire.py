"""What is read off the whole recording once the other checks ran: the paths a runtime
used, its connections, and what it claimed about streaming."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rapid.lab.checks import MAIN, decode, event
from rapid.lab.verdict import RUNTIME_API, STREAMING, Verdict, failed, passed, skipped, warned

if TYPE_CHECKING:
    from rapid.lab.session import Session


def paths(s: Session) -> Verdict:
    expected = "requests go to /2018-06-01/runtime/... with the method each endpoint takes"
    exchanges = s.rig.tap.exchanges
    odd = [e for e in exchanges if e.kind == "other" or e.status in (404, 405)]
    doubled = [e for e in exchanges if e.target.startswith("//")]
    if odd:
        e = odd[0]
        return failed("paths", f"{len(odd)} requests to paths the Runtime API does not have, "
                      f"e.g. {e.method} {e.target}",
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


STREAMED = b"rapid check stream: part 1, part 2"


async def _stream_probe(s: Session) -> tuple[str, list[str]]:
    """Drive the streaming test handler, where the runtime has one: (what was seen, problems)."""
    rig = s.rig
    if "stream" not in rig.host.functions:  # type: ignore[union-attr]
        return "", []
    ok = await rig.invoke("stream", event("stream"))
    if not ok.ok:
        await rig.stop_instances("stream")
        return f"its test handler has no streaming form ({ok.error_type or 'no answer'})", []
    problems = []
    if ok.outcome.body != STREAMED:
        problems.append(f"the stream arrived as {ok.outcome.body[:80]!r}")
    bad = await rig.invoke("stream", event("stream", fail=True))
    await rig.stop_instances("stream")
    posted = rig.tap.answer(bad.request_id)
    if bad.ok:
        problems.append("a failure mid-stream came back as a success")
    elif posted is not None and posted.kind == "response" and not posted.trailers:
        problems.append("a failure mid-stream ended the stream without the error trailers")
    how = "its trailers" if posted is not None and posted.trailers else f"/{posted.kind}" if posted else "nothing"
    body = decode(bad.outcome.body)
    etype = body.get("errorType") if isinstance(body, dict) else bad.error_type
    return f"a streamed response arrived whole; a failure mid-stream arrived as {etype!r} (in {how})", problems


async def streaming(s: Session) -> Verdict:
    expected = ("a streaming runtime sends Lambda-Runtime-Function-Response-Mode: streaming with "
                "Transfer-Encoding: chunked, declares its error trailers in a Trailer header, and reports a "
                "failure mid-stream in those trailers")
    probe, problems = await _stream_probe(s)
    posts = [e for e in s.rig.tap.exchanges if e.kind in ("response", "error")]
    modes = [e for e in posts if "lambda-runtime-function-response-mode" in e.headers]
    chunked = [e for e in posts if "chunked" in e.headers.get("transfer-encoding", "").lower()]
    undeclared = [e for e in posts if e.trailers and not e.headers.get("trailer")]
    bad_mode = [e for e in modes if e.headers["lambda-runtime-function-response-mode"].lower() != "streaming"]
    if bad_mode:
        value = bad_mode[0].headers["lambda-runtime-function-response-mode"]
        problems.append(f"Response-Mode {value!r} (Lambda answers 400 InvalidFunctionResponseMode)")
    if [e for e in modes if e not in chunked]:
        problems.append("Response-Mode: streaming without Transfer-Encoding: chunked")
    if undeclared:
        problems.append(f"trailers {sorted(undeclared[0].trailers)} sent without a Trailer header")
    if problems:
        return failed("streaming", "; ".join(problems), expected, STREAMING)
    if modes:
        seen = f"{len(modes)} streamed responses, chunked, trailers declared"
    else:
        extra = f"; {len(chunked)} chunked POSTs parsed intact" if chunked else ""
        seen = f"buffered responses, no streaming claimed{extra}"
    return passed("streaming", f"{seen}; {probe}" if probe else seen, expected, STREAMING)
