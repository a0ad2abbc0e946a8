"""A fake process backend: runtimes that are coroutines in the test's own process.

``FakeBackend.spawn`` is called by a real ``Instance`` exactly where the real backend would
start a subprocess. The ``FakeRuntime`` it returns speaks the real Runtime API over
loopback HTTP to that instance's real Runtime API server (its connection really comes from
this process, whose pid it reports, so even the peer check runs for real). What it does is
scripted, like the ``BEHAVE`` runtime of the end-to-end tests:

At start (the function's environment variable ``FAKE_INIT``):
  ""        poll ``/next`` and serve events
  "error"   post ``/init/error`` (Runtime.ImportModuleError), then exit 1
  "hang"    never call ``/next``
  "exit:N"  exit with status N before the first ``/next``

Per event (the invocation's JSON payload):
  {"echo": x}          answer x
  {"error": "T"}       post ``/error`` with errorType T
  {"exit": n}          exit with status n, answering nothing
  {"hang": true}       never answer (until killed)
  {"wait": "g"}        answer "released" once the test calls ``backend.release("g")``
  {"print": "text"}    write a line of output, answer "printed"
  {"who": true}        answer which runtime this is (1 for the first spawned, ...)
  {"env": "NAME"}      answer the value of NAME in its environment
  {"call": [M, PATH]}  make one more Runtime API call mid-invoke (PATH relative to
                       /2018-06-01/runtime/, "{id}" replaced by the request id), answer
                       [status, body] of what the server said
  {"twice": true}      answer "first", then post another response; keeps what the server
                       said to the second in ``runtime.calls``
  anything else        answer "ok"

``kill``/``terminate`` end it (exit status -9/-15, reported through ``on_exit`` on the next
loop turn, as a reaped process is); ``freeze``/``thaw`` are recorded, not enacted (a frozen
fake is parked at ``/next`` anyway).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable, Mapping, Sequence

from tests.unit.http_client import Connection, Reply

API = "/2018-06-01/runtime/"


class FakeRuntime:
    def __init__(self, backend: FakeBackend, serial: int, env: Mapping[str, str],
                 on_line: Callable[[bytes], None], on_exit: Callable[[int], None], tmpdir: str) -> None:
        self.backend = backend
        self.serial = serial
        self.env = dict(env)
        self.tmpdir = tmpdir  # the host folder of its private TMPDIR ("" in a namespace)
        self.pid = os.getpid()  # the process that holds its connections: this one
        self.returncode: int | None = None
        self.frozen = False
        self.freezes = 0
        self.calls: list[Reply] = []  # extra Runtime API answers, for the tests to read
        self._on_line = on_line
        self._on_exit = on_exit
        self._conn = Connection(env["AWS_LAMBDA_RUNTIME_API"])
        self._task = asyncio.get_running_loop().create_task(self._main())

    # -- what it does ---------------------------------------------------------------------

    async def _main(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except (ConnectionError, asyncio.IncompleteReadError):
            self._exit(1)  # its Runtime API went away: a real client dies too

    async def _run(self) -> None:
        init = self.env.get("FAKE_INIT", "")
        if init == "error":
            self.print("failing init")
            body = {"errorMessage": "bad init", "errorType": "Runtime.ImportModuleError"}
            await self._post("init/error", body, {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
            return self._exit(1)
        if init == "hang":
            await asyncio.Event().wait()
        if init.startswith("exit:"):
            return self._exit(int(init[5:]))
        while True:
            r = await self._conn.request("GET", API + "invocation/next")
            if r.status != 200:
                self.calls.append(r)
                return self._exit(1)
            rid = r.headers["lambda-runtime-aws-request-id"]
            event = json.loads(r.body)
            if not isinstance(event, dict):
                event = {}
            if "exit" in event:
                return self._exit(event["exit"])
            if "hang" in event:
                await asyncio.Event().wait()
            if "error" in event:
                await self._post(f"invocation/{rid}/error", {"errorMessage": "boom", "errorType": event["error"]})
                continue
            out: object = "ok"
            if "echo" in event:
                out = event["echo"]
            elif "wait" in event:
                await self.backend.gate(event["wait"]).wait()
                out = "released"
            elif "print" in event:
                self.print(event["print"])
                out = "printed"
            elif "who" in event:
                out = self.serial
            elif "env" in event:
                out = self.env.get(event["env"])
            elif "call" in event:
                method, path = event["call"]
                extra = await self._conn.request(method, API + path.replace("{id}", rid), b"{}")
                self.calls.append(extra)
                out = [extra.status, json.loads(extra.body)]
            elif "twice" in event:
                await self._post(f"invocation/{rid}/response", "first")
                self.calls.append(await self._post(f"invocation/{rid}/response", "second"))
                continue
            await self._post(f"invocation/{rid}/response", out)

    async def _post(self, path: str, body: object, headers: dict[str, str] | None = None) -> Reply:
        return await self._conn.request("POST", API + path, json.dumps(body).encode(), headers)

    def print(self, text: str) -> None:
        self._on_line(text.encode())

    def _exit(self, code: int) -> None:
        if self.returncode is not None:
            return
        self.returncode = code
        self._conn.close()
        if asyncio.current_task() is not self._task:
            self._task.cancel()
        asyncio.get_running_loop().call_soon(self._on_exit, code)  # reaped on a later turn

    # -- the handle the instance drives -----------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.returncode is None

    def kill(self) -> None:
        self._exit(-signal.SIGKILL)

    def terminate(self) -> None:
        self._exit(-signal.SIGTERM)

    def freeze(self) -> None:
        self.frozen = True
        self.freezes += 1

    def thaw(self) -> None:
        self.frozen = False

    def drain(self) -> None:
        pass  # its lines are delivered as it writes them

    def peak_memory_mb(self) -> int:
        return self.backend.memory_mb

    def members(self) -> list[int]:
        return []

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<FakeRuntime #{self.serial} {state}{' frozen' if self.frozen else ''}>"


class FakeBackend:
    """Starts ``FakeRuntime``s; remembers every one it started, in order."""

    def __init__(self, memory_mb: int = 31) -> None:
        self.spawned: list[FakeRuntime] = []
        self.memory_mb = memory_mb
        self._gates: dict[str, asyncio.Event] = {}
        self.refuse: OSError | None = None  # while set, every spawn fails with it

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], cwd: str, on_line: Callable[[bytes], None],
              on_exit: Callable[[int], None], sandbox: object) -> FakeRuntime:
        if self.refuse is not None:
            raise self.refuse
        runtime = FakeRuntime(self, len(self.spawned) + 1, env, on_line, on_exit,
                              getattr(sandbox, "tmpdir_on_host", ""))
        self.spawned.append(runtime)
        return runtime

    def gate(self, name: str) -> asyncio.Event:
        return self._gates.setdefault(name, asyncio.Event())

    def release(self, name: str) -> None:
        self.gate(name).set()

    @property
    def alive(self) -> list[FakeRuntime]:
        return [r for r in self.spawned if r.alive]

    def __repr__(self) -> str:
        return f"<FakeBackend spawned={len(self.spawned)} alive={len(self.alive)}>"
