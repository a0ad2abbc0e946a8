"""Wiring: build the host from a Config, serve the Invoke API, stop cleanly on a signal."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import uvloop

from rapid.api.invoke import InvokeAPI
from rapid.config import Config, ConfigError
from rapid.core.errors import MAX_SYNC_REQUEST
from rapid.host.code import code_for
from rapid.host.host import Host
from rapid.http.protocol import serve
from rapid.logs import LogSink


def say(text: str) -> None:
    """Daemon messages go to stderr: stdout is the functions' log stream."""
    print(f"rapid: {text}", file=sys.stderr, flush=True)


async def serve_forever(config: Config) -> int:
    loop = asyncio.get_running_loop()
    data_dir = config.data_dir
    scratch = None
    if data_dir is None:
        data_dir = scratch = tempfile.mkdtemp(prefix="rapid-data-")
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    logs = LogSink()
    host = Host(config, logs)
    try:
        for name, fc in config.functions.items():
            code = code_for(fc, dropin=config.dropin, data_dir=Path(data_dir))
            if code.entrypoint_error is not None:
                say(f"warning: function {name!r}: {code.entrypoint_error.message}")
            host.add(name, fc, code, tagged=not config.dropin)
    except ConfigError:
        host.guardian.close()
        raise

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    api = InvokeAPI(host, ready=lambda: True)
    try:
        server = await serve(api, config.host, config.port, MAX_SYNC_REQUEST)
    except OSError as exc:
        host.guardian.close()
        say(f"error: cannot listen on {config.host}:{config.port}: {exc.strerror}")
        return 1
    port = server.sockets[0].getsockname()[1]
    names = ", ".join(sorted(host.functions))
    say(f"listening on http://{config.host}:{port} (functions: {names})")

    await stop.wait()
    say("shutting down")
    server.close()
    await host.shutdown()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def run(config: Config) -> int:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve_forever(config))
