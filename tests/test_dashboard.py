"""The dashboard (issue 16): its JSON and live stream as a script sees them, and the page as
a person sees it in a real headless Chromium. Screenshots of the browser test are kept in
.cache/test-artifacts/dashboard/."""

from __future__ import annotations

import json
import os
import socket
import sys

import pytest

from tests.daemon import ROOT, make_function, run_server

ARTIFACTS = ROOT / ".cache" / "test-artifacts" / "dashboard"

# Python: echoes, prints a line, fails when asked to.
PY_FN = """#!{python}
import http.client, json, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse(); event = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    print("handling", json.dumps(event), flush=True)
    if event.get("fail"):
        conn.request("POST", "/2018-06-01/runtime/invocation/" + rid + "/error",
                     json.dumps({"errorType": "ValueError", "errorMessage": "asked to fail"}))
    else:
        conn.request("POST", "/2018-06-01/runtime/invocation/" + rid + "/response", json.dumps(event))
    conn.getresponse().read()
""".replace("{python}", sys.executable)


@pytest.fixture
def two_functions(tmp_path):
    py = make_function(tmp_path / "py", PY_FN)
    return ["--function", f"pyfn={py}", "--function", f"shfn={ROOT / 'examples' / 'shell-echo'}"]


def _get(d, path):
    reply = d.request("GET", path)
    assert reply.status == 200, (path, reply.status, reply.body[:200])
    return reply.json()


def test_the_api_shows_functions_instances_invocations_and_logs(two_functions):
    with run_server(two_functions) as d:
        ok = d.invoke("pyfn", {"n": 1})
        bad = d.invoke("pyfn", {"fail": True})
        sh = d.invoke("shfn", {"s": 1})
        assert ok.status == bad.status == sh.status == 200
        host = _get(d, "/_rapid/api/host")
        by_name = {f["name"]: f for f in host["functions"]}
        assert set(by_name) == {"pyfn", "shfn"}
        (inst,) = by_name["pyfn"]["instances"]
        assert inst["state"] in ("idle", "frozen") and inst["invocations"] == 2 and inst["peakMB"] > 0
        recent = _get(d, "/_rapid/api/invocations")
        assert [r["function"] for r in recent] == ["shfn", "pyfn", "pyfn"]  # newest first
        failed = recent[1]
        assert failed["status"] == "error" and failed["errorType"] == "ValueError"
        assert recent[2]["initDurationMs"] > 0 and recent[1]["initDurationMs"] is None
        rid = ok.headers["x-amzn-requestid"]
        lines = [line["text"] for line in _get(d, f"/_rapid/api/logs?requestId={rid}")]
        assert lines[0].startswith(f"START RequestId: {rid}") and lines[1] == 'handling {"n": 1}'
        assert lines[-1].startswith(f"REPORT RequestId: {rid}")
        matching = _get(d, "/_rapid/api/logs?contains=asked")
        assert matching == [] or all("asked" in line["text"] for line in matching)
        minutes = _get(d, "/_rapid/api/minutes?function=pyfn")["minutes"]
        assert len(minutes) == 60 and minutes[-1][1:] == [2, 1, 0]


def test_invoke_from_the_dashboard(two_functions):
    with run_server(two_functions) as d:
        out = d.request("POST", "/_rapid/api/invoke/pyfn", b'{"from": "dashboard"}').json()
        assert out["status"] == 200 and json.loads(out["payload"]) == {"from": "dashboard"}
        assert "handling" in out["log"] and out["executedVersion"] == "$LATEST"
        missing = d.request("POST", "/_rapid/api/invoke/nope", b"{}").json()
        assert (missing["status"], missing["error"]) == (404, "ResourceNotFoundException")


def test_live_events_arrive_over_server_sent_events(two_functions):
    with run_server(two_functions) as d:
        with socket.create_connection(("127.0.0.1", d.port), timeout=20) as s:
            s.sendall(b"GET /_rapid/api/events HTTP/1.1\r\nHost: x\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            assert head.startswith(b"HTTP/1.1 200 ") and b"text/event-stream" in head
            rid = d.invoke("shfn", {"live": 1}).headers["x-amzn-requestid"]
            events, buf, fields, invocations, lines = [], head.partition(b"\r\n\r\n")[2], None, [], []
            while not any(row[fields["invocations"].index("requestId")] == rid for row in invocations):
                while b"\n\n" not in buf:
                    chunk = s.recv(65536)
                    assert chunk, "the stream ended"
                    buf += chunk
                block, _, buf = buf.partition(b"\n\n")
                kind, data = _sse(block)
                if kind is None:
                    continue  # "retry: ..." or a ping
                events.append(kind)
                if kind == "fields":
                    fields = json.loads(data)
                elif kind == "batch":
                    batch = json.loads(data)
                    invocations += batch["invocations"]
                    lines += batch["logs"]
            assert events[0] == "fields"
            inv = dict(zip(fields["invocations"], next(r for r in invocations if rid in r)))
            assert inv["function"] == "shfn" and inv["status"] == "success"
            texts = [dict(zip(fields["logs"], r))["text"] for r in lines]
            assert f"START RequestId: {rid} Version: $LATEST" in texts and "shell-echo got: {\"live\": 1}" in texts


def _sse(block: bytes) -> tuple[str | None, str]:
    kind, data = None, []
    for line in block.decode().split("\n"):
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
    return kind, "\n".join(data)


def test_unknown_dashboard_paths_are_404_and_static_files_cannot_escape(two_functions):
    with run_server(two_functions) as d:
        for path in ("/_rapid/api/nope", "/_rapid/static/../../config.py", "/_rapid/static/nope.js"):
            assert d.request("GET", path).status == 404, path
        assert d.request("GET", "/_rapid").status == 301
        page = d.request("GET", "/_rapid/")
        assert page.status == 200 and b"<title>rapid</title>" in page.body


@pytest.mark.slow
@pytest.mark.skipif(
    not (os.path.exists("/usr/bin/chromium") or os.environ.get("CI")),
    reason="needs Debian's chromium (.ci/steps/60-chromium.sh installs it)",
)
async def test_the_page_in_a_real_browser(two_functions):
    from tests.browser import browser

    with run_server(two_functions) as d:
        d.invoke("pyfn", {"n": 1})
        fail_id = d.invoke("pyfn", {"fail": True}).headers["x-amzn-requestid"]
        d.invoke("shfn", {"s": 1})
        async with browser() as page:
            await page.goto(f"{d.url}/_rapid/")
            await page.wait_for("document.body.dataset.ready === 'true'")
            names = await page.wait_for(
                "(() => { const n = [...document.querySelectorAll('#functions tbody tr')].map(r => r.dataset.function);"
                " return n.length === 2 ? n : null; })()")
            assert names == ["pyfn", "shfn"]
            assert await page.evaluate("document.querySelectorAll('#instances tbody tr').length") == 2
            rows = await page.evaluate(
                "[...document.querySelectorAll('#invocations tbody tr')].map(r => ({id: r.dataset.requestId,"
                " error: r.classList.contains('error'), cells: [...r.cells].map(c => c.textContent)}))")
            assert len(rows) == 3
            failed = next(r for r in rows if r["id"] == fail_id)
            assert failed["error"] and "ValueError" in failed["cells"] and "error" in failed["cells"]
            assert all(float(r["cells"][4]) > 0 for r in rows)  # durations shown
            await page.screenshot(ARTIFACTS / "1-loaded.png")
            # Clicking an invocation shows its log lines.
            await page.click(f'#invocations tr[data-request-id="{fail_id}"]')
            text = await page.wait_for(
                "document.querySelector('#request-logs').hidden ? null :"
                " document.querySelector('#request-logs-lines').textContent")
            assert f"START RequestId: {fail_id}" in text and 'handling {"fail": true}' in text
            # A live invoke appears without reloading.
            live_id = d.invoke("shfn", {"live": True}).headers["x-amzn-requestid"]
            await page.wait_for(f"!!document.querySelector('#invocations tr[data-request-id=\"{live_id}\"]')")
            await page.wait_for("document.querySelector('#live').textContent === 'live'")
            await page.screenshot(ARTIFACTS / "2-live.png")
            assert page.errors == []


@pytest.mark.slow
@pytest.mark.skipif(
    not (os.path.exists("/usr/bin/chromium") or os.environ.get("CI")),
    reason="needs Debian's chromium (.ci/steps/60-chromium.sh installs it)",
)
async def test_versions_aliases_and_actions_through_the_lambda_api(tmp_path):
    """A function deployed with boto3: the page shows its versions and alias weights, and
    its buttons publish a version, shift a weight and set reserved concurrency."""
    from tests.browser import browser
    from tests.control import ROLE, client, python_zip, wait_active, wait_updated

    with run_server(["--data-dir", str(tmp_path / "state")]) as d:
        lam = client(d)
        lam.create_function(FunctionName="api-fn", Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip("def handler(e, c):\n    return 1\n")})
        wait_active(lam, "api-fn")
        lam.publish_version(FunctionName="api-fn")
        lam.update_function_code(FunctionName="api-fn", ZipFile=python_zip("def handler(e, c):\n    return 2\n"))
        wait_updated(lam, "api-fn")
        lam.publish_version(FunctionName="api-fn")
        lam.create_alias(FunctionName="api-fn", Name="live", FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": {"2": 0.25}})
        assert d.invoke("api-fn:live", {}).status == 200
        async with browser() as page:
            await page.goto(f"{d.url}/_rapid/")
            await page.wait_for("document.body.dataset.ready === 'true'")
            row = "document.querySelector('#functions tr[data-function=\"api-fn\"]')"
            assert await page.wait_for(f"{row}.querySelector('.versions').textContent") == "$LATEST, 1, 2"
            assert await page.evaluate(f"{row}.querySelector('.aliases').textContent") == "live → 1 + 2 at 25%"
            await page.screenshot(ARTIFACTS / "3-versions.png")
            # Publish: a new version appears (after a change, so there is something to publish).
            lam.update_function_code(FunctionName="api-fn", ZipFile=python_zip("def handler(e, c):\n    return 3\n"))
            wait_updated(lam, "api-fn")
            await page.click('#functions tr[data-function="api-fn"] button.publish')
            await page.wait_for(f"{row}.querySelector('.versions').textContent === '$LATEST, 1, 2, 3'")
            # Shift the alias's weight, and set reserved concurrency, through prompts.
            await page.evaluate("window.prompt = () => '3 0.5'")
            await page.click('#functions tr[data-function="api-fn"] button.alias')
            await page.wait_for(f"{row}.querySelector('.aliases').textContent === 'live → 1 + 3 at 50%'")
            await page.evaluate("window.prompt = () => '7'")
            await page.click('#functions tr[data-function="api-fn"] button.concurrency')
            await page.wait_for("document.querySelector('#invoke-result').textContent === 'concurrency api-fn: done'")
            assert page.errors == []
        assert lam.get_alias(FunctionName="api-fn", Name="live")["RoutingConfig"]["AdditionalVersionWeights"] == {"3": 0.5}
        assert lam.get_function_concurrency(FunctionName="api-fn")["ReservedConcurrentExecutions"] == 7
        assert [v["Version"] for v in lam.list_versions_by_function(FunctionName="api-fn")["Versions"]] == [
            "$LATEST", "1", "2", "3"]
