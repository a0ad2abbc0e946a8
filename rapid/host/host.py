"""The host: every function this daemon serves, and what they share (logs, the guardian,
the folder private TMPDIRs live in). It resolves invoke targets and shuts everything down."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile

from rapid.config import Config, FunctionConfig
from rapid.core.errors import function_not_found, shutting_down
from rapid.core.naming import LATEST, Target, function_arn
from rapid.host.code import Code
from rapid.host.function import Function
from rapid.logs import LogSink
from rapid.supervisor.guardian import Guardian


class Host:
    def __init__(self, config: Config, logs: LogSink) -> None:
        self.config = config
        self.logs = logs
        self.region = config.region
        self.functions: dict[str, Function] = {}
        self.stopping = False
        self.guardian = Guardian()
        # Private TMPDIRs live here; created 0700 so other users cannot look in.
        self.tmp_root = tempfile.mkdtemp(prefix="rapid-tmp-")

    def add(self, name: str, config: FunctionConfig, code: Code, *, tagged: bool) -> Function:
        fn = Function(self, name, config, code, tagged=tagged)
        self.functions[name] = fn
        return fn

    def resolve(self, target: Target) -> Function:
        fn = self.functions.get(target.name)
        if fn is None or (target.qualifier not in (None, LATEST, fn.version)):
            raise function_not_found(
                function_arn(self.region, self.config.account_id, target.name, target.qualifier)
            )
        return fn

    def make_tmpdir(self, instance_hex: str) -> str:
        path = os.path.join(self.tmp_root, instance_hex)
        os.mkdir(path, 0o700)
        return path

    async def shutdown(self) -> None:
        """Stop taking work, let running invocations finish (up to the shutdown timeout),
        then SIGTERM every runtime, SIGKILL what is left after a grace period."""
        self.stopping = True
        for fn in self.functions.values():
            fn.refuse_queued(shutting_down())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_timeout
        while loop.time() < deadline and any(fn.running for fn in self.functions.values()):
            await asyncio.sleep(0.02)
        instances = [i for fn in self.functions.values() for i in fn.instances.values()]
        for inst in instances:
            inst.terminate()
        deadline = loop.time() + 2.0
        while loop.time() < deadline and any(i.process and i.process.alive for i in instances):
            await asyncio.sleep(0.02)
        for inst in instances:
            inst.kill()
        deadline = loop.time() + 2.0
        while loop.time() < deadline and any(i.process and i.process.alive for i in instances):
            await asyncio.sleep(0.02)
        self.guardian.close()
        shutil.rmtree(self.tmp_root, ignore_errors=True)
        self.logs.flush()

    def __repr__(self) -> str:
        return f"<Host functions={sorted(self.functions)} stopping={self.stopping}>"
