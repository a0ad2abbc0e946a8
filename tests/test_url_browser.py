"""Function URLs in a real browser: headless Chromium loads a page that one function URL
serves (by its ``*.localhost`` name) and the page's ``fetch()`` calls another function URL
across origins. The URL's CORS lets one page's origin in and keeps another's out; what
each page shows is read from its DOM."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator

import pytest

from tests.browser import CHROMIUM, browser
from tests.control import ROLE, client, python_zip, wait_active
from tests.daemon import Daemon, run_server, unique

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium (.ci/steps/60-chromium.sh)")]

PAGE = r'''
import json

HTML = """<!doctype html><html><body><p id="out">waiting</p><script>
fetch(%s, {method: "POST", headers: {"Content-Type": "application/json", "X-Token": "t1"},
           body: JSON.stringify({from: location.origin})})
  .then((r) => r.json().then((j) => r.headers.get("x-answer") + ":" + j.greeting + ":" + j.method + ":" + j.origin))
  .then((t) => { document.getElementById("out").textContent = "ok " + t; },
        (e) => { document.getElementById("out").textContent = "refused " + e.name; });
</script></body></html>"""

def handler(event, context):
    api = event["queryStringParameters"]["api"]
    return {"statusCode": 200, "headers": {"content-type": "text/html; charset=utf-8"},
            "body": HTML % json.dumps(api)}
'''

API = r'''
import json

def handler(event, context):
    body = json.loads(event["body"])
    return {"statusCode": 200, "headers": {"content-type": "application/json", "x-answer": "yes"},
            "body": json.dumps({"greeting": "hello from the api", "method": event["requestContext"]["http"]["method"],
                                "origin": body["from"]})}
'''
PY_RUNTIME = f"python3.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with run_server(["--data-dir", str(tmp_path_factory.mktemp("browser") / "state")]) as d:
        yield d


def _url(lam, source: str, **config) -> str:  # type: ignore[no-untyped-def]
    name = "web-" + unique()
    lam.create_function(FunctionName=name, Runtime=PY_RUNTIME, Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": python_zip(source)})
    wait_active(lam, name)
    return lam.create_function_url_config(FunctionName=name, AuthType="NONE", **config)["FunctionUrl"]


async def test_a_page_on_one_url_fetches_another_with_cors(daemon: Daemon) -> None:
    lam = client(daemon)
    allowed_page = _url(lam, PAGE)
    other_page = _url(lam, PAGE)
    api = _url(lam, API, Cors={"AllowOrigins": [allowed_page.rstrip("/")], "AllowMethods": ["POST"],
                               "AllowHeaders": ["content-type", "x-token"], "ExposeHeaders": ["x-answer"]})
    async with browser() as page:
        await page.goto(f"{allowed_page}?api={api}")
        shown = await page.wait_for("document.getElementById('out') && "
                                    "document.getElementById('out').textContent.startsWith('ok') && "
                                    "document.getElementById('out').textContent")
        assert shown == f"ok yes:hello from the api:POST:{allowed_page.rstrip('/')}"
        assert await page.evaluate("location.hostname") == allowed_page.split("//")[1].split(":")[0]

        await page.goto(f"{other_page}?api={api}")
        shown = await page.wait_for("document.getElementById('out') && "
                                    "!document.getElementById('out').textContent.startsWith('waiting') && "
                                    "location.href.startsWith(" + json.dumps(other_page) + ") && "
                                    "document.getElementById('out').textContent")
        assert shown == "refused TypeError"  # fetch() rejects what CORS refuses
