"""``rapid deploy``: apply a SAM template to a running rapid, with its deployment preference.

    rapid deploy [--template template.yaml] [--url http://127.0.0.1:8080]
                 [--parameter-overrides KEY=VALUE ...] [--stack-name NAME] [--no-wait]

As ``sam deploy`` does for AWS: the template is loaded and checked here (issue 14's
``rapid.template`` loader, the same errors with file, line and resource), then applied to
the daemon at ``--url`` through its API, exactly as ``rapid serve --template`` applies one
in process. A function with ``AutoPublishAlias`` gets a new version when its code or
configuration changed; with a ``DeploymentPreference`` the alias moves as it says (the
daemon runs the deployment: hooks, steps, alarms, rollback). A template Parameter named
``RapidEndpoint`` that is not overridden is given the daemon's URL (for hooks that report
to CodeDeploy there). Unless ``--no-wait``, rapid
deploy follows each deployment it started to its end, printing its steps, and exits 1 if
one failed (rolled back) or stopped, 0 when all succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from rapid.cli import deployments as listing
from rapid.cli.remote import RemoteApp, RemoteDeployments, RemoteHost

def default_url() -> str:
    """RAPID_URL, else rapid on this machine at RAPID_PORT (as rapid serve reads it), else 8080."""
    return os.environ.get("RAPID_URL") or f"http://127.0.0.1:{os.environ.get('RAPID_PORT') or 8080}"


ENDPOINT_PARAMETER = "RapidEndpoint"  # a template Parameter rapid deploy fills with the daemon's URL


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("deploy", help="apply a SAM template to a running rapid, with its deployment preference",
                       description="Apply a SAM / CloudFormation template to a running rapid (as sam deploy does "
                                   "for AWS); gradual deployments follow each function's DeploymentPreference.")
    add_arguments(p)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--template", default="template.yaml", help="the template (default template.yaml)")
    p.add_argument("--url", default=None, help="the daemon (default http://127.0.0.1:$RAPID_PORT, else :8080) [RAPID_URL]")
    p.add_argument("--parameter-overrides", dest="parameter_overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="template parameters")
    p.add_argument("--stack-name", dest="stack_name", help="the stack's name (default: the template's folder, as rapid serve --template names it)")
    p.add_argument("--no-wait", dest="wait", action="store_false", help="do not follow the deployments started")


def _overrides(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--parameter-overrides: {item!r} is not KEY=VALUE")
        out[key] = value
    return out


async def deploy(template: str, url: str, overrides: dict[str, str], stack_name: str | None,
                 say: Any = None) -> list[str]:
    """Apply ``template`` to the daemon at ``url``; the ids of the deployments it started."""
    from rapid.template.applier import Applier
    from rapid.template.control import Control
    from rapid.template.loader import load_template

    say = say or (lambda text: print(f"rapid: {text}", file=sys.stderr, flush=True))
    path, stack = os.path.abspath(template), stack_name  # None: the template's folder, as rapid serve names it
    t = load_template(path, overrides, stack_name=stack, endpoint=url)
    if ENDPOINT_PARAMETER in t.parameters and ENDPOINT_PARAMETER not in overrides:
        # A template that asks for rapid's address (its hooks report to CodeDeploy there) gets it.
        t = load_template(path, {**overrides, ENDPOINT_PARAMETER: url}, stack_name=stack, endpoint=url)
    remote = RemoteDeployments(url, alarms=t.alarms)
    applier = Applier(Control(RemoteApp(url), host_header=url.split("://", 1)[-1]), RemoteHost(remote), say)
    await applier.apply(t)
    return remote.started


def follow(url: str, ids: list[str], timeout: float = 24 * 3600) -> list[dict[str, Any]]:
    """Print each deployment's steps as they happen; its final records."""
    ns = argparse.Namespace(url=url, data_dir=None, function=None)
    shown: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while True:
        found = {d["id"]: d for d in listing.fetch(ns) if d["id"] in ids}
        for did in ids:
            d = found.get(did)
            if d is None:
                continue
            for e in d["events"][shown.get(did, 0):]:
                weight = f" {e['weight']:.0%}" if e.get("weight") is not None else ""
                print(f"{did} {d['function']}:{d['alias']}  {e['event']}{weight}  {e['status']}  {e['detail']}".rstrip(),
                      flush=True)
            shown[did] = len(d["events"])
        if all(found.get(i, {}).get("status") in ("Succeeded", "Failed", "Stopped") for i in ids) \
                or time.monotonic() > deadline:
            return [found[i] for i in ids if i in found]
        time.sleep(0.2)


def run(ns: argparse.Namespace) -> int:
    from rapid.template.control import ControlError
    from rapid.template.loader import TemplateError

    url = (ns.url or default_url()).rstrip("/")
    try:
        ids = asyncio.run(deploy(ns.template, url, _overrides(ns.parameter_overrides), ns.stack_name))
    except (TemplateError, ValueError) as exc:
        print(f"rapid: error: {exc}", file=sys.stderr)
        return 2
    except (ControlError, RuntimeError, OSError) as exc:
        print(f"rapid: error: {url}: {exc}", file=sys.stderr)
        return 1
    if not ids:
        print("rapid: deployed (no gradual deployment started)", file=sys.stderr)
        return 0
    if not ns.wait:
        print("\n".join(ids))
        return 0
    results = follow(url, ids)
    failed = [d for d in results if d["status"] != "Succeeded"]
    for d in failed:
        print(f"rapid: deployment {d['id']} of {d['function']}:{d['alias']} {d['status']}: {d.get('reason')}",
              file=sys.stderr)
    return 1 if failed or len(results) < len(ids) else 0
