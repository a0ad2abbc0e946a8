"""``rapid event TYPE [--body TEXT]``: print a sample event in AWS's shape, as
``sam local generate-event`` does; ``rapid event --list`` names the types."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from rapid.blueprints.sample_events import BUILDERS

    s = sub.add_parser("event", help="print a sample event (sqs, kinesis, apigateway-v2, schedule, s3, sns, dynamodb)",
                       usage="rapid event --list | rapid event TYPE [--body TEXT] [--region R] [--account ID]")
    s.add_argument("--list", action="store_true", help="list the event types")
    s.add_argument("type", nargs="?", help=", ".join(BUILDERS))
    s.add_argument("--body", help="the message, record data, request body or object key the event carries")
    s.add_argument("--region", default="us-east-1", help="the region in its ARNs (default us-east-1)")
    s.add_argument("--account", default="123456789012", help="the account in its ARNs")


def run(ns: argparse.Namespace) -> int:
    from rapid.blueprints.sample_events import BUILDERS, build

    if ns.list or not ns.type:
        for name, (_, _, what) in BUILDERS.items():
            print(f"{name.ljust(14)} {what}")
        return 0 if ns.list else 2
    if ns.type not in BUILDERS:
        print(f"rapid: error: no event type {ns.type!r}; choose one of: {', '.join(BUILDERS)}", file=sys.stderr)
        return 2
    print(json.dumps(build(ns.type, ns.body, ns.region, ns.account), indent=2))
    return 0
