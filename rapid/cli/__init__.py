"""The command line: ``rapid serve | check | bench | queue | init | event | logs``, one module per subcommand.

``main`` splits off ``-- CMD [ARGS...]`` (the runtime command of ``serve``, ``check`` and
``bench``) before argparse sees the rest, so a command's own flags are never taken for
rapid's; each subcommand module adds its parser and runs it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rapid import __version__


def _parser() -> argparse.ArgumentParser:
    from rapid.cli import bench, check, cluster, serve
    from rapid.events.cli import add_parser as add_queue

    p = argparse.ArgumentParser(prog="rapid", description="A fast, faithful host for AWS Lambda functions.")
    p.add_argument("--version", action="version", version=f"rapid {__version__}")
    sub = p.add_subparsers(dest="command_name", required=True)
    serve.add_parser(sub)
    check.add_parser(sub)
    bench.add_parser(sub)
    add_queue(sub)  # rapid queue
    cluster.add_parser(sub)  # rapid cluster status
    from rapid.cli import event, init, logs

    init.add_parser(sub)  # rapid init: blueprints (rapid.blueprints)
    event.add_parser(sub)  # rapid event: sample events
    logs.add_parser(sub)  # rapid logs: the logs kept per function (rapid.logs)
    from rapid.cli import deploy, deployments, pipeline

    deployments.add_parser(sub)  # rapid deployments
    deploy.add_parser(sub)  # rapid deploy
    pipeline.add_parser(sub)  # rapid pipeline run
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = None
    if "--" in args:
        at = args.index("--")
        args, command = args[:at], args[at + 1 :]
    ns = _parser().parse_args(args)
    name = ns.command_name
    if name == "queue":
        from rapid.events.cli import main as queue_main

        return queue_main(ns)
    if name == "cluster":
        from rapid.cli.cluster import run as cluster_run

        return cluster_run(ns)
    if name in ("init", "event", "logs"):
        import importlib

        return int(importlib.import_module(f"rapid.cli.{name}").run(ns))
    if name == "deploy":
        from rapid.cli.deploy import run as deploy_run

        return deploy_run(ns)
    if name == "pipeline":
        from rapid.cli.pipeline import run as pipeline_run

        return pipeline_run(ns)
    if name == "deployments":
        from rapid.cli.deployments import main as deployments_main

        return deployments_main(ns)
    if name == "check":
        from rapid.cli.check import run as check_run

        return check_run(ns, command)
    if name == "bench":
        from rapid.cli.bench import run as bench_run

        return bench_run(ns, command)
    from rapid.cli.serve import run as serve_run

    return serve_run(ns, command)
