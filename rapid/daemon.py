"""Wiring: build the host from a Config, serve the Invoke API, stop cleanly on a signal."""

from __future__ import annotations

import asyncio
import ctypes
import os
import resource
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import msgspec
import uvloop

from rapid.api.invoke import InvokeAPI
from rapid.config import Config, ConfigError
from rapid.core.errors import MAX_SYNC_REQUEST
from rapid.events.dispatcher import Dispatcher
from rapid.events.sqlite_store import SQLiteStore
from rapid.events.store import StoreError
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
    store = SQLiteStore(data_dir)  # the async queue: taken first, so a busy data dir stops start-up
    try:
        recovery = store.open()
    except StoreError as exc:  # the data dir is another daemon's, or unusable
        raise ConfigError(str(exc)) from None
    logs = LogSink()
    cap = machine_capacity()
    if config.max_concurrency > cap:
        say(f"max_concurrency {config.max_concurrency} capped to {cap}, what this machine can run")
        config = msgspec.structs.replace(config, max_concurrency=cap)
    try:
        host = Host(config, logs)
    except RuntimeError as exc:
        store.close()
        raise ConfigError(str(exc)) from None
    try:
        for name, fc in config.functions.items():
            code = code_for(fc, dropin=config.dropin, data_dir=Path(data_dir))
            if code.entrypoint_error is not None:
                say(f"warning: function {name!r}: {code.entrypoint_error.message}")
            warning = host.sandbox.check_function(name, code)
            if warning:
                say(f"warning: {warning}")
            host.add(name, fc, code, tagged=not config.dropin)
    except ConfigError:
        host.guardian.close()
        host.sandbox.close()
        store.close()
        raise
    say(host.sandbox.describe())
    host.start()
    events = Dispatcher(host, store, recovery, data_dir=str(data_dir), scratch=scratch is not None)
    events.start()

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    api = InvokeAPI(host, ready=lambda: True, events=events)
    try:
        server = await serve(api, config.host, config.port, MAX_SYNC_REQUEST)
    except OSError as exc:
        host.guardian.close()
        events.stop_dispatching()
        await events.close()
        say(f"error: cannot listen on {config.host}:{config.port}: {exc.strerror}")
        return 1
    port = server.sockets[0].getsockname()[1]
    names = ", ".join(sorted(host.functions))
    say(f"listening on http://{config.host}:{port} (functions: {names})")

    await stop.wait()
    say("shutting down")
    server.close()
    events.stop_dispatching()
    await host.shutdown()
    await events.close()  # running attempts that did not finish go back to the queue on disk
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def machine_capacity() -> int:
    """How many instances this machine can hold: descriptors (about 8 per instance in the
    daemon, after raising the soft limit to the hard one) and memory (a small runtime's RSS
    is some 16 MB)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    by_fds = max(1, (soft - 256) // 8)
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        by_memory = max(1, pages // (16 * 1024 * 1024))
    except (ValueError, OSError):
        by_memory = by_fds
    return int(min(by_fds, by_memory))


def tune_malloc() -> None:
    """Keep large request and response bodies on glibc's heap instead of fresh mmaps: a
    1 MB body then reuses pages already faulted in rather than faulting 256 new ones on
    every invoke, and freeing it does not hand the memory straight back to the kernel."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 64 * 1024 * 1024)
    libc.mallopt(m_trim_threshold, 256 * 1024 * 1024)


def run(config: Config) -> int:
    tune_malloc()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve_forever(config))
