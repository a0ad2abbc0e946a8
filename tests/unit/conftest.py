"""In-process rapid for unit tests: the real Host, Functions, Instances, Runtime API servers
and Invoke API edge on the test's event loop, with a fake process backend
(``fake_backend.py``) instead of subprocesses. Fast and deterministic: a test waits on
conditions (``until``), never on the clock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import pytest

from rapid.api.app import App
from rapid.api.invoke import InvokeAPI
from rapid.config import Config, FunctionConfig
from rapid.core.errors import MAX_SYNC_REQUEST
from rapid.host.code import Code
from rapid.host.host import Host
from rapid.http.protocol import serve
from tests.unit.fake_backend import FakeBackend
from tests.unit.http_client import Reply, request


class Lines:
    """The log stream, kept in memory (stands in for ``LogSink``)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def write_lines(self, texts: tuple[str, ...]) -> None:
        self.lines.extend(texts)

    def flush(self) -> None:
        pass

    def matching(self, needle: str) -> list[str]:
        return [line for line in self.lines if needle in line]


class Rapid:
    def __init__(self, root: Path, functions: dict[str, dict[str, object]], settings: dict[str, object]) -> None:
        # No cgroups, no uid drop, no namespace probe: the fake runtimes are this process.
        base = {"private_tmp": "directory", "drop_privileges": "off", "memory_limit": "off",
                "shutdown_timeout": 0.0, "freeze_with": "signal"}
        self.config = msgspec.convert({**base, **settings}, Config)
        self.backend = FakeBackend()
        self.logs = Lines()
        self.host = Host(self.config, self.logs, processes=self.backend)  # type: ignore[arg-type]
        root.mkdir(parents=True, exist_ok=True)
        code = Code(str(root), str(root), ("fake-runtime",))
        for name, fc in functions.items():
            self.host.add(name, msgspec.convert(fc, FunctionConfig), code, tagged=False)
        self.address = ""
        self._server: asyncio.Server | None = None
        self._background: list[asyncio.Task[Reply]] = []

    async def start(self) -> Rapid:
        app = App(InvokeAPI(self.host, ready=lambda: True), ready=lambda: True)
        self._server = await serve(app, "127.0.0.1", 0, MAX_SYNC_REQUEST)
        self.address = "127.0.0.1:%d" % self._server.sockets[0].getsockname()[1]
        self.host.start()
        return self

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            self._server = None
        await self.host.shutdown()
        assert not self.backend.alive, self.backend  # every runtime it started has ended

    def fn(self, name: str):  # type: ignore[no-untyped-def]
        return self.host.functions[name]

    async def invoke(self, name: str, payload: object = None, headers: dict[str, str] | None = None,
                     body: bytes | None = None, path: str | None = None) -> Reply:
        if body is None:
            body = b"" if payload is None else json.dumps(payload).encode()
        return await request(self.address, "POST", path or f"/2015-03-31/functions/{name}/invocations", body,
                             headers)

    def invoking(self, name: str, payload: object = None) -> asyncio.Task[Reply]:
        """An invoke running in the background (await the task for its reply)."""
        task = asyncio.get_running_loop().create_task(self.invoke(name, payload))
        self._background.append(task)
        return task

    def report(self, reply: Reply) -> str:
        (line,) = self.logs.matching(f"REPORT RequestId: {reply.headers['x-amzn-requestid']}")
        return line


async def until(probe, timeout: float = 10.0, what: str = "the condition"):  # type: ignore[no-untyped-def]
    """Let the loop run until ``probe()`` is true (returned); fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = probe()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.002)


@pytest.fixture
async def make_rapid(tmp_path):
    made: list[Rapid] = []

    async def make(functions: dict[str, dict[str, object]] | None = None, **settings: object) -> Rapid:
        rapid = Rapid(tmp_path / f"code{len(made)}", functions or {"fn": {}}, settings)
        made.append(rapid)
        return await rapid.start()

    yield make
    for rapid in made:
        await rapid.stop()
