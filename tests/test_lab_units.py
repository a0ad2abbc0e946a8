"""The pure parts of rapid check and rapid bench, in-process: verdicts and the report, the
tap's reading of requests, the statistics, and the Runtime API edge without a tap."""

from __future__ import annotations

from types import SimpleNamespace

from rapid.api.runtime import RuntimeAPI, TappedRuntimeAPI, runtime_api_for
from rapid.http.message import Request, Response
from rapid.lab import stats
from rapid.lab.tap import Tap
from rapid.lab.verdict import Status, exit_code, failed, passed, render, skipped, warned


def test_the_report_has_one_line_per_behaviour_and_fails_only_on_a_fail():
    ok = passed("start", "first /next 40 ms after spawn", "init ends at /next", "https://x/runtimes-custom.html")
    warn = warned("sigterm", "exited 400 ms after SIGTERM", "about 300 ms", "https://x/shutdown")
    skip = skipped("init-error", "no handler string to break", "-", "-")
    text = render("my runtime", [ok, warn, skip], notes=["note: something"])
    lines = text.splitlines()
    assert lines[0] == "rapid check: my runtime" and lines[1] == "  note: something"
    assert lines[2] == ("PASS  start       first /next 40 ms after spawn. Lambda: init ends at /next. "
                        "https://x/runtimes-custom.html")
    assert lines[4] == "SKIP  init-error  no handler string to break"
    assert lines[-1] == "PASS: 1 PASS, 1 WARN, 1 SKIP"
    assert exit_code([ok, warn, skip]) == 0
    bad = failed("trace-id", "unset", "set", "u")
    assert exit_code([ok, bad]) == 1 and render("r", [ok, bad]).splitlines()[-1] == "FAIL: 1 PASS, 1 FAIL"
    assert bad.status is Status.FAIL


def _request(method: str, target: str, body: bytes = b"", **headers: str) -> Request:
    req = Request(method, target)
    req.body = body
    req.headers.update({k.replace("_", "-"): v for k, v in headers.items()})
    return req


def test_the_tap_records_what_was_sent_and_what_was_answered():
    tap = Tap()
    inst = SimpleNamespace(function=SimpleNamespace(name="f"), id=3, dead=False)
    conn = SimpleNamespace(peer=("127.0.0.1", 40001))
    nxt = tap.request(inst, _request("GET", "/2018-06-01/runtime/invocation/next"), conn)
    tap.answered(nxt, Response(200, b"{}", [("Lambda-Runtime-Aws-Request-Id", "a b"),
                                           ("Lambda-Runtime-Deadline-Ms", "1700000000000")]))
    post = tap.request(inst, _request("POST", "//2018-06-01/runtime/invocation/a%20b/response", b"x" * 10,
                                      transfer_encoding="chunked"), conn)
    tap.answered(post, Response(202, b'{"status":"OK"}'))
    init = tap.request(inst, _request("POST", "/2018-06-01/runtime/init/error", b"{}"), conn)
    odd = tap.request(inst, _request("GET", "/2018-06-01/runtime/nope"), conn)
    tap.answered(odd, None)  # the runtime hung up
    assert [e.kind for e in tap.exchanges] == ["next", "response", "init-error", "other"]
    assert nxt.request_id == "a b" and nxt.deadline_ms == 1700000000000 and nxt.status == 200
    assert post.request_id == "a b" and post.size == 10 and post.headers["transfer-encoding"] == "chunked"
    assert post.connection == 40001 and post.status == 202 and post.answered >= post.received
    assert tap.delivery("a b") is nxt and tap.answer("a b") is post
    assert init.status == 0 and odd.status == -1
    assert tap.of("f", 3) == tap.exchanges and tap.of("g") == []


def test_a_host_without_a_tap_serves_the_plain_runtime_api():
    host = SimpleNamespace(runtime_tap=None)
    inst = SimpleNamespace(function=SimpleNamespace(host=host))
    assert type(runtime_api_for(inst)) is RuntimeAPI  # type: ignore[arg-type]
    host.runtime_tap = Tap()
    tapped = runtime_api_for(inst)  # type: ignore[arg-type]
    assert isinstance(tapped, TappedRuntimeAPI) and tapped.tap is host.runtime_tap


def test_percentiles_and_ratios():
    values = list(range(1, 101))
    assert stats.percentile(values, 50) == 50 and stats.percentile(values, 99) == 99
    assert stats.percentile(values, 100) == 100 and stats.percentile([], 50) == 0.0
    assert stats.percentile([7.0], 99) == 7.0
    spread = stats.spread([1.2, 0.9, 1.1])
    assert spread == {"median": 1.1, "min": 0.9, "max": 1.2}
    assert stats.ratio_text(spread) == "1.10 [0.90-1.20]"
    assert stats.ratio_text(stats.spread([0.006, 0.005, 0.011])) == "0.006 [0.005-0.011]"
    assert stats.ratio_text({}) == "-"
