"""Wiring: build the host from a Config, serve the Invoke API, stop cleanly on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import faulthandler
import os
import resource
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from rapid.api.app import App
from rapid.api.autoscaling import AutoScalingAPI
from rapid.api.codedeploy import CodeDeployAPI
from rapid.api.deployments_view import DeploymentsView
from rapid.api.concurrency import ConcurrencyAPI, check_provisioned
from rapid.api.functions import FunctionsAPI
from rapid.api.guard import Guard, is_loopback, read_credentials
from rapid.api.invoke import InvokeAPI
from rapid.api.layers import LayersAPI
from rapid.api.logs import LogsAPI
from rapid.api.mappings import MappingsAPI
from rapid.api.shapes import MAX_CONTROL_REQUEST, Context
from rapid.api.url_config import FunctionUrlsAPI
from rapid.api.versions import VersionsAPI
from rapid.autoscaling.runner import Autoscaler
from rapid.autoscaling.service import AutoScaling
from rapid.config import Config, ConfigError
from rapid.core.scaled_clock import ScaledClock
from rapid.deployments.service import Deployments
from rapid.core.errors import MAX_SYNC_REQUEST
from rapid.events.dispatcher import Dispatcher
from rapid.events.sqlite_store import SQLiteStore
from rapid.events.store import StoreError
from rapid.host.code import code_for
from rapid.host.deployment import Deployment
from rapid.host.host import Host
from rapid.http.protocol import Limits
from rapid.http.server import listen
from rapid.logs import LogSink
from rapid.logs.store import LogReader, LogStore
from rapid.supervisor.reaper import split_if_pid1
from rapid.registry.code_store import CodeStore
from rapid.registry.mappings import MappingStore
from rapid.registry.registry import Registry
from rapid.registry.sqlite_store import SQLiteRegistryStore
from rapid.registry.store import RegistryStoreError
from rapid.queues.sqs_api import SqsAPI
from rapid.queues.sqs_live import LiveQueues
from rapid.queues.sqs_query import SqsQueryAPI, is_query
from rapid.queues.store import Journal
from rapid.sources import metrics as esm_metrics
from rapid.sources.pollers import Pollers
from rapid.streams.kinesis_api import KinesisAPI


def say(text: str) -> None:
    """Daemon messages go to stderr: stdout is the functions' log stream."""
    print(f"rapid: {text}", file=sys.stderr, flush=True)


async def serve_forever(config: Config) -> int:
    # Whatever start-up took is given back however it ends: a configuration error, a port
    # in use, or a clean shutdown (every step below is safe to undo twice).
    with contextlib.ExitStack() as undo:
        stop = _stop_on_signal(undo)  # first: a SIGTERM during start-up still ends with exit 0
        data_dir = config.data_dir
        scratch = data_dir is None
        if data_dir is None:
            data_dir = tempfile.mkdtemp(prefix="rapid-data-")
            undo.callback(shutil.rmtree, data_dir, True)
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        store = SQLiteStore(data_dir)  # the async queue: taken first, so a busy data dir stops start-up
        try:
            recovery = store.open()
        except StoreError as exc:  # the data dir is another daemon's, or unusable
            raise ConfigError(str(exc)) from None
        undo.callback(store.close)
        cap, max_clients = machine_capacity()
        if config.max_concurrency > cap:
            say(f"max_concurrency {config.max_concurrency} capped to {cap}, what this machine can run")
            config = msgspec.structs.replace(config, max_concurrency=cap)
        try:
            host = Host(config, LogSink())
        except RuntimeError as exc:
            raise ConfigError(str(exc)) from None
        undo.callback(host.close)
        if config.log_max_bytes:  # function logs kept in the data dir (rapid.logs)
            host.log_store = LogStore(os.path.join(data_dir, "logs"), max(65536, config.log_max_bytes))
            undo.callback(host.log_store.close)
        if scratch:
            host.guardian.scratch_folder(data_dir)  # gone even if the daemon is SIGKILLed
        for name, fc in config.functions.items():
            code = code_for(fc, dropin=config.dropin, data_dir=Path(data_dir))
            if code.entrypoint_error is not None:
                say(f"warning: function {name!r}: {code.entrypoint_error.message}")
            warning = host.sandbox.check_function(name, code)
            if warning:
                say(f"warning: {warning}")
            host.add(name, fc, code, tagged=not config.dropin)
        node = _join_cluster(config, str(data_dir))  # None without --cluster (rapid.cluster)
        if node is not None:
            undo.callback(node.close)
        code_store = node.code if node is not None else CodeStore(str(data_dir))
        code_store.clean()
        reg_store = node.store if node is not None else _registry_store(str(data_dir))
        registry = Registry(reg_store, code_store, config.region, config.account_id)
        undo.callback(registry.store.close)
        registry.load()
        registry.declared.update(host.functions)
        if node is not None:
            await asyncio.to_thread(node.prefetch, registry)
        deployment = Deployment(host, registry, say)
        deployment.start()
        if node is not None:
            node.follow(registry)
            store, recovery = node.events(store, recovery)  # async events durable in JetStream
        events = Dispatcher(host, store, recovery, data_dir=str(data_dir), scratch=scratch)
        deployment.on_change(lambda event, name, _: _tell_events(events, event, name))
        app = App(InvokeAPI(host, ready=lambda: True, events=events), ready=lambda: True, guard=_guard(config))
        ctx = Context(host, registry, deployment)
        url_configs = FunctionUrlsAPI(ctx, config.port)
        for part in (FunctionsAPI(ctx), VersionsAPI(ctx), LayersAPI(ctx), ConcurrencyAPI(ctx), url_configs):
            app.add(part)
        app.targets["Logs_20140328"] = LogsAPI(host.log_store, LogReader(os.path.join(data_dir, "logs")),
                                               lambda: sorted(set(host.functions) | set(registry.latest)),
                                               host.region, config.account_id)  # for `aws logs tail`
        queue_owner = None  # in a cluster: one node owns the queues, streams and mappings (rapid.cluster)
        if node is None:
            journal = Journal(data_dir)  # the built-in queues and streams
            undo.callback(journal.close)
            queues = LiveQueues(journal, host.region, config.account_id)  # the pollers' way in: .receive, .delete
            undo.callback(queues.close)
            app.targets["AmazonSQS"] = sqs_api = SqsAPI(queues)
            app.query_protocol = (is_query, SqsQueryAPI(sqs_api))  # older SDKs: Action=..., XML answers
            streams = KinesisAPI(journal, host.region, config.account_id)  # the pollers' way in: .read
            app.targets["Kinesis_20131202"] = streams
            mappings = MappingStore(registry.store)  # event source mappings: in the registry's database
            mappings.load()
            pollers = Pollers(mappings, host, registry, queues, streams, say, events)
            app.add(MappingsAPI(ctx, pollers))
            app.more_metrics.append(lambda: esm_metrics.render(mappings.mappings, pollers.stats))
            journal.start(asyncio.get_running_loop())
        else:
            from rapid.cluster.owned_queues import owner_for, route

            queue_owner = owner_for(node, ctx, events, str(data_dir), config.account_id, say)
            route(queue_owner, app)
        app.serve_urls(registry)
        # Provisioned-concurrency autoscaling (rapid.autoscaling), on its own scalable clock.
        scaling_clock = ScaledClock(config.scaling_time_scale)
        scaling = AutoScaling(registry, scaling_clock.now)
        scaling.load()
        autoscaler = Autoscaler(scaling, host, scaling_clock,
                                lambda name, q, n: check_provisioned(registry, host, name, q, n), say)
        if node is not None:
            autoscaler.active = lambda: False  # until node.control: only the lease's holder scales
        app.targets["AnyScaleFrontendService"] = AutoScalingAPI(scaling, autoscaler)
        app.more_metrics.append(autoscaler.metrics)
        # Gradual deployments of aliases (rapid.deployments): the template applier's host.deployments.
        host.deployments = Deployments(registry, host, scaling_clock, say)
        host.deployments.load(recover=node is None)  # in a cluster, the node that runs them recovers them
        app.targets["CodeDeploy_20141006"] = CodeDeployAPI(host.deployments)
        app.add(DeploymentsView(host.deployments))
        templates = _templates(config, app, host)  # rapid.template: checked before anything listens
        if templates is not None:
            app.ready = lambda: templates.ready
            host.deployments.alarm_source = lambda: templates.load().alarms  # AWS::CloudWatch::Alarm
        try:
            limits = Limits(
                header_timeout=config.http_header_timeout, idle_timeout=config.http_idle_timeout, answer_after_eof=True
            )
            max_body = max(MAX_SYNC_REQUEST, MAX_CONTROL_REQUEST)
            server = await listen(app, config.host, config.port, max_body, limits, max_clients)
        except OSError as exc:
            say(f"error: cannot listen on {config.host}:{config.port}: {exc.strerror}")
            return 1
        say(host.sandbox.describe())
        host.start()
        deployment.started()
        if node is not None:
            await node.attach(host, deployment, app.invoke_api, f"http://{config.host}:{server.sockets[0].getsockname()[1]}",
                              app.urls)
            await node.adopt(events)
            await node.control(app, scaling, autoscaler, host.deployments)  # one node runs them (rapid.cluster)
            app.more_metrics.append(node.metrics)
        events.start()
        if queue_owner is None:
            pollers.start()
        else:
            await queue_owner.start(app)  # the owner (maybe this node) runs the pollers
        autoscaler.start()
        port = server.sockets[0].getsockname()[1]
        url_configs.port = port  # FunctionUrl addresses name the port actually bound
        if templates is not None:
            try:
                await templates.start(port)
            except ValueError as exc:  # a TemplateError: the file, line and resource
                raise ConfigError(str(exc)) from None
        names = sorted(host.functions)
        shown = ", ".join(names) if len(names) <= 20 else ", ".join(names[:20]) + f" and {len(names) - 20} more"
        say(f"listening on http://{config.host}:{port} (functions: {shown})")
        await stop.wait()
        _default_signals()  # a second Ctrl-C or SIGTERM during shutdown acts at once, as before
        say("shutting down")
        server.close()
        if templates is not None:
            await templates.close()
        events.stop_dispatching()
        if queue_owner is None:
            await pollers.stop()  # batches cut short come back: messages after their visibility timeout
        else:
            await queue_owner.stop()  # and another node takes the queues over
        await autoscaler.stop()
        await host.deployments.stop()  # running deployments roll back
        if node is not None:
            await node.stop()
        await host.shutdown()
        if node is not None:
            await node.release()
        await events.close()  # running attempts that did not finish go back to the queue on disk
        return 0


def _registry_store(data_dir: str) -> SQLiteRegistryStore:
    try:
        return SQLiteRegistryStore(data_dir)
    except RegistryStoreError as exc:
        raise ConfigError(str(exc)) from None


def _join_cluster(config: Config, data_dir: str):  # type: ignore[no-untyped-def]
    if not config.cluster:
        return None
    try:
        from rapid.cluster.link import LinkError
        from rapid.cluster.node import Node
    except ImportError as exc:
        raise ConfigError(f"--cluster needs nats-py (pip install 'rapid[cluster]'): {exc}") from None
    try:
        node = Node.join(config.cluster, data_dir, say, config.cluster_replicas)
    except LinkError as exc:
        raise ConfigError(str(exc)) from None
    say(f"cluster: node {node.id} joined {config.cluster}")
    return node


def _templates(config: Config, app: App, host: Host) -> Any:
    """The template service (``rapid.template.service``), imported only when one is given."""
    if not config.template:
        return None
    from rapid.template.loader import TemplateError
    from rapid.template.service import TemplateService

    service = TemplateService(config, app, host, say)
    try:
        service.check()
    except TemplateError as exc:
        raise ConfigError(str(exc)) from None
    return service


def _tell_events(events: Dispatcher, event: str, name: str) -> None:
    if event == "delete":
        events.function_deleted(name)
    elif event == "create":
        events.function_created(name)


def _guard(config: Config) -> Guard | None:
    """Who may use the management API (``rapid.api.guard``): None is everyone."""
    if config.credentials:
        try:
            return Guard(read_credentials(config.credentials))
        except ValueError as exc:
            raise ConfigError(f"credentials: {exc}") from None
    if is_loopback(config.host) or config.allow_unauthenticated:
        return None
    say(f"the management API is closed on {config.host}: give --credentials FILE or --allow-unauthenticated")
    return Guard(None)


def _stop_on_signal(undo: contextlib.ExitStack) -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, from now until ``undo`` closes.

    Installed before anything starts, so a signal that arrives while the daemon is still
    starting (before "listening") is kept: start-up finishes, then the daemon shuts down
    cleanly and exits 0, instead of dying with the signal's default action."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    undo.callback(_default_signals)
    return stop


def _default_signals() -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)


def machine_capacity() -> tuple[int, int]:
    """How many instances this machine can hold, and how many invoker connections.

    Descriptors, after raising the soft limit to the hard one: 256 kept for the daemon, a
    quarter of the rest (at least 64) for invokers' connections, and about 8 per instance
    for the remainder, so no flood of clients can take what the runtimes need. Memory: a
    small runtime's RSS is some 16 MB."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    clients = max(64, (soft - 256) // 4)
    by_fds = max(1, (soft - 256 - clients) // 8)
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        by_memory = max(1, pages // (16 * 1024 * 1024))
    except (ValueError, OSError):
        by_memory = by_fds
    return int(min(by_fds, by_memory)), clients


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
    # A crash in native code (the event loop, NATS's thread, SQLite) prints every thread's
    # Python stack on stderr before the process dies, so it can be told where it was.
    faulthandler.enable(all_threads=True)
    # SIGUSR2 prints the same stacks and goes on: how a test tells where a daemon hangs.
    faulthandler.register(signal.SIGUSR2, all_threads=True, chain=False)
    split_if_pid1()  # in a container: PID 1 stays a reaper of orphans, the daemon runs as its child
    tune_malloc()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve_forever(config))
