"""``rapid deployments``: gradual deployments, their steps and outcome.

    rapid deployments [--url URL | --data-dir DIR] [--function NAME] [--json]

With ``--url`` it asks a running daemon (``GET /_rapid/api/deployments``); with
``--data-dir`` (or ``RAPID_DATA_DIR``) it reads the registry's database, read-only, whether
a daemon runs on it or not. Newest first: one line per deployment (id, alias, versions,
type, status, reason), then its steps indented; ``--json`` prints the records as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("deployments", help="list gradual deployments, their steps and outcome",
                       description="List gradual deployments (newest first) with their steps and outcome.")
    p.add_argument("--url", help="ask a running daemon, e.g. http://127.0.0.1:8080")
    p.add_argument("--data-dir", dest="data_dir", help="read the daemon's data dir instead [RAPID_DATA_DIR]")
    p.add_argument("--function", help="only this function's deployments")
    p.add_argument("--json", action="store_true", help="print the records as JSON")


def fetch(ns: argparse.Namespace) -> list[dict[str, Any]]:
    """The deployments, newest first; raises ``SystemExit`` with a message on failure."""
    if ns.url:
        url = ns.url.rstrip("/") + "/_rapid/api/deployments"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                found: list[dict[str, Any]] = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SystemExit(f"rapid: error: {ns.url}: {getattr(exc, 'reason', exc)}") from None
    else:
        data_dir = ns.data_dir or os.environ.get("RAPID_DATA_DIR")
        if not data_dir:
            raise SystemExit("rapid: error: give --url of a running daemon, or --data-dir (or RAPID_DATA_DIR)")
        path = os.path.join(data_dir, "registry.db")
        if not os.path.exists(path):
            raise SystemExit(f"rapid: error: {path}: no registry there")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT body FROM records WHERE kind = 'deployment'").fetchall()
        except sqlite3.Error as exc:
            raise SystemExit(f"rapid: error: {path}: {exc}") from None
        finally:
            db.close()
        found = sorted((json.loads(body) for (body,) in rows), key=lambda d: d["created"], reverse=True)
    return [d for d in found if ns.function in (None, d["function"])]


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def render(deployments: list[dict[str, Any]]) -> str:
    out = []
    for d in deployments:
        head = (f"{d['id']}  {d['function']}:{d['alias']}  {d['from_version']} -> {d['to_version']}  {d['type']}  "
                f"{d['status']}  {_when(d['created'])}")
        if d.get("reason"):
            head += f"  ({d['reason']})"
        out.append(head)
        for e in d.get("events", []):
            weight = f" {e['weight']:.0%}" if e.get("weight") is not None else ""
            out.append(f"    {_when(e['at'])[11:]}  {e['event'] + weight:<22} {e['status']:<10} {e['detail']}".rstrip())
    return "\n".join(out) + ("\n" if out else "no deployments\n")


def main(ns: argparse.Namespace) -> int:
    try:
        found = fetch(ns)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2 if "give" in str(exc) or "no registry" in str(exc) else 1
    sys.stdout.write(json.dumps(found, indent=2) + "\n" if ns.json else render(found))
    return 0
