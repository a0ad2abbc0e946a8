"""``rapid serve [options] [-- CMD [ARGS...]]``: serve the Invoke API and run functions."""

from __future__ import annotations

import argparse
import sys

from rapid.config import ConfigError, load


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser(
        "serve",
        help="serve the Invoke API and run functions",
        usage="rapid serve [options] [-- CMD [ARGS...]]",
        description="Serve functions. With `-- CMD`, serve CMD as the function `function`, "
        "the way the AWS Runtime Interface Emulator does.",
    )
    s.add_argument("--host", help="address to listen on (default 127.0.0.1) [RAPID_HOST]")
    s.add_argument("--port", help="port to listen on (default 8080) [RAPID_PORT]")
    s.add_argument("--function", action="append", default=[], metavar="NAME=PATH",
                   help="a function: a folder with a `bootstrap` or a handler, or a .zip [RAPID_FUNCTIONS]")
    s.add_argument("--config", help="a rapid.toml declaring functions and settings [RAPID_CONFIG]")
    s.add_argument("--runtime", help="provided | python | node | shell (default provided) [RAPID_RUNTIME]")
    s.add_argument("--handler", help="handler for a bundled runtime, e.g. app.handler [RAPID_HANDLER]")
    s.add_argument("--timeout", help="seconds per invocation (default 3; 300 in drop-in mode) [RAPID_TIMEOUT]")
    s.add_argument("--memory", help="memory size in MB (default 128; 3008 in drop-in mode) [RAPID_MEMORY]")
    s.add_argument("--snap-start", dest="snap_start", action="store_const", const="true",
                   help="SnapStart (runtime python): init once, fork each new instance [RAPID_SNAP_START]")
    s.add_argument("--concurrency", help="reserved concurrency per function: at most N instances [RAPID_CONCURRENCY]")
    s.add_argument("--max-concurrency", dest="max_concurrency",
                   help="host-wide limit (default 1000, capped by the machine) [RAPID_MAX_CONCURRENCY]")
    s.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="a variable for the functions [RAPID_ENV, one per line]")
    s.add_argument("--overflow", help="beyond a limit: throttle (429, as AWS; default) or queue [RAPID_OVERFLOW]")
    s.add_argument("--data-dir", dest="data_dir", help="where durable state lives [RAPID_DATA_DIR]")
    s.add_argument("--log-format", dest="log_format", help="text | json (default text) [RAPID_LOG_FORMAT]")
    s.add_argument("--credentials", help="an AWS credentials file: management calls need SigV4 by its keys "
                   "[RAPID_CREDENTIALS]")
    s.add_argument("--allow-unauthenticated", dest="allow_unauthenticated", action="store_const", const="true",
                   help="an open management API on a non-loopback --host [RAPID_ALLOW_UNAUTHENTICATED]")
    s.add_argument("--cluster", metavar="nats://HOST:PORT",
                   help="join a cluster of rapid nodes on NATS JetStream [RAPID_CLUSTER]")
    s.add_argument("--cluster-replicas", dest="cluster_replicas", metavar="N",
                   help="JetStream replicas of the cluster's buckets and streams (default 1; 3 on a "
                        "3-server NATS cluster) [RAPID_CLUSTER_REPLICAS]")
    s.add_argument("--region", help="the region in ARNs and AWS_REGION (default us-east-1) [AWS_REGION]")
    # Templates (rapid.template)
    s.add_argument("--template", help="a SAM / CloudFormation template (YAML or JSON) to serve [RAPID_TEMPLATE]")
    s.add_argument("--parameter-overrides", dest="parameter_overrides", nargs="+", metavar="KEY=VALUE",
                   help="template parameter values [RAPID_PARAMETER_OVERRIDES]")
    s.add_argument("--watch", action="store_const", const="true",
                   help="apply the template again when it or its code changes [RAPID_WATCH]")
    s.add_argument("--api-port", dest="api_port",
                   help="the port of the template's Api / HttpApi events (default 3000) [RAPID_API_PORT]")


def run(ns: argparse.Namespace, command: list[str] | None) -> int:
    values = {k: v for k, v in vars(ns).items() if k != "command_name"}
    if command:
        values["command"] = command
    try:
        config = load(values)
        from rapid.daemon import run as serve_forever

        return serve_forever(config)
    except ConfigError as exc:
        print(f"rapid: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
