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


# Each subcommand's module and the function that adds its parser, in the order ``--help``
# lists them. A module is imported only to add its parser: ``rapid serve ...`` builds the
# parser of ``serve`` alone, so the daemon does not import the lab, the YAML loader or the
# deploy client before it starts (a few hundred milliseconds of every daemon start).
COMMANDS = {
    "serve": "rapid.cli.serve",
    "check": "rapid.cli.check",
    "bench": "rapid.cli.bench",
    "queue": "rapid.events.cli",
    "cluster": "rapid.cli.cluster",  # rapid cluster status
    "init": "rapid.cli.init",  # blueprints (rapid.blueprints)
    "event": "rapid.cli.event",  # sample events
    "logs": "rapid.cli.logs",  # the logs kept per function (rapid.logs)
    "deployments": "rapid.cli.deployments",
    "deploy": "rapid.cli.deploy",
    "pipeline": "rapid.cli.pipeline",  # rapid pipeline run
}


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``only`` (a name in ``COMMANDS``): the same
    answer for that subcommand's arguments, without importing the others."""
    import importlib

    p = argparse.ArgumentParser(prog="rapid", description="A fast, faithful host for AWS Lambda functions.")
    p.add_argument("--version", action="version", version=f"rapid {__version__}")
    sub = p.add_subparsers(dest="command_name", required=True)
    for name, module in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).add_parser(sub)
        else:  # a bare entry: usage and errors name every subcommand, as with the whole parser
            sub.add_parser(name)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = None
    if "--" in args:
        at = args.index("--")
        args, command = args[:at], args[at + 1 :]
    ns = _parser(args[0] if args and args[0] in COMMANDS else None).parse_args(args)
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
