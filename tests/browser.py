"""A real headless Chromium driven over the DevTools protocol, for tests of pages.

``Browser`` starts Debian's ``chromium`` with a throw-away profile and a DevTools port on
127.0.0.1, opens one page, and offers what a test needs: ``goto``, ``evaluate`` (a JS
expression, awaited, its value returned), ``wait_for`` (until a JS expression is truthy,
bounded), ``click`` and ``screenshot``. It speaks the protocol over aiohttp's WebSocket
client (a test dependency already), so no browser-automation package, which would want to
download a browser of its own, is needed. The browser is ended when the block ends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(AssertionError):
    pass


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.console: list[str] = []
        self.errors: list[str] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self._ws.send_json({"id": msg_id, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self._ws.receive(), timeout=30)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise BrowserError(f"DevTools connection ended: {msg.type}")
            data = json.loads(msg.data)
            if data.get("id") == msg_id:
                if "error" in data:
                    raise BrowserError(f"{method}: {data['error']}")
                return data.get("result", {})
            self._note(data)

    def _note(self, event: dict[str, Any]) -> None:
        method = event.get("method")
        params = event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            self.errors.append(params.get("exceptionDetails", {}).get("exception", {}).get("description", "?"))

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Evaluate ``expression`` until it is truthy; its value. Fails after ``timeout``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                value = await self.evaluate(expression)
            except BrowserError:
                value = None
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise BrowserError(f"not true after {timeout} s: {expression}; page errors: {self.errors}")
            await asyncio.sleep(0.1)

    async def click(self, selector: str) -> None:
        found = await self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                                    " if (!e) return false; e.click(); return true; })()")
        if not found:
            raise BrowserError(f"nothing to click at {selector}")

    async def screenshot(self, path: Path) -> Path:
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextlib.asynccontextmanager
async def browser(width: int = 1400, height: int = 1100) -> AsyncIterator[Page]:
    if CHROMIUM is None:
        raise BrowserError("chromium is not installed (.ci/steps/60-chromium.sh installs it)")
    profile = tempfile.mkdtemp(prefix="rapid-chromium-")
    args = [
        CHROMIUM, "--headless", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={profile}",
        f"--window-size={width},{height}", "about:blank",
    ]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port_file = Path(profile, "DevToolsActivePort")
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            if proc.poll() is not None:
                raise BrowserError(f"chromium exited {proc.returncode}")
            await asyncio.sleep(0.1)
        else:
            raise BrowserError("chromium did not open its DevTools port")
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json()
            page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with http.ws_connect(page_url, max_msg_size=64 << 20) as ws:
                page = Page(ws)
                await page.call("Page.enable")
                await page.call("Runtime.enable")
                yield page
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the browser and every helper process it forked
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
