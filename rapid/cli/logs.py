"""``rapid logs NAME [--follow] [--since 10m] [--filter TEXT]``: a function's logs, as
``sam logs`` prints them: the log stream, the time, the message; coloured on a terminal.

The logs come from a running daemon's CloudWatch Logs API (``--endpoint-url``, default
``http://127.0.0.1:$RAPID_PORT`` or 8080), or straight from a data dir (``--data-dir``,
which works with the daemon stopped). ``--follow`` asks again every second from the newest
time it printed, and skips the events it already printed, as ``aws logs tail`` does.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
CYAN, YELLOW, RED, BOLD, RESET = "\033[36m", "\033[33m", "\033[31m", "\033[1m", "\033[0m"
_PLATFORM = re.compile(r"^(START|END|REPORT|INIT_START|INIT_REPORT|EXTENSION|TELEMETRY) ")
_ERROR = re.compile(r"(Error|Exception|Traceback|Task timed out|errorType|\[ERROR\])")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("logs", help="print a function's logs (as sam logs does)",
                       usage="rapid logs NAME [--follow] [--since 10m] [--filter TEXT] [--data-dir DIR]")
    s.add_argument("name", help="the function's name, or its log group /aws/lambda/NAME")
    s.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    s.add_argument("--since", default="10m", help="from when: 30s, 10m, 2h, 1d, an ISO time or epoch ms (default 10m)")
    s.add_argument("--filter", dest="filter_pattern", help="only events with TEXT (a CloudWatch filter pattern)")
    s.add_argument("--endpoint-url", dest="endpoint_url", help="a running rapid (default http://127.0.0.1:8080)")
    s.add_argument("--data-dir", dest="data_dir", help="read the logs kept in this data dir instead")
    s.add_argument("--color", choices=("auto", "on", "off"), default="auto", help="colours (default: on a terminal)")


def since_ms(text: str, now: float | None = None) -> int:
    now = time.time() if now is None else now
    m = _RELATIVE.match(text.strip())
    if m:
        return int((now - int(m.group(1)) * _UNITS[m.group(2)]) * 1000)
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r}: give 30s, 10m, 2h, 1d, 1w, an ISO time or epoch milliseconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def render(event: dict[str, Any], color: bool) -> str:
    stamp = datetime.fromtimestamp(event["timestamp"] / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    stream, message = event["logStreamName"], event["message"].rstrip("\n")
    if not color:
        return f"{stream} {stamp} {message}"
    if _PLATFORM.match(message):
        message = BOLD + message + RESET
    elif _ERROR.search(message):
        message = RED + message + RESET
    return f"{CYAN}{stream}{RESET} {YELLOW}{stamp}{RESET} {message}"


class LogsError(Exception):
    pass


def _over_http(url: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    parts = urlsplit(url)

    def call(body: dict[str, Any]) -> dict[str, Any]:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
        try:
            conn.request("POST", "/", json.dumps(body), {"X-Amz-Target": "Logs_20140328.FilterLogEvents",
                                                         "Content-Type": "application/x-amz-json-1.1"})
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
        except (OSError, ValueError) as exc:
            raise LogsError(f"cannot reach rapid at {url}: {exc} (--data-dir DIR reads a stopped daemon's logs)") \
                from None
        finally:
            conn.close()
        if resp.status != 200:
            raise LogsError(f"{data.get('__type', resp.status)}: {data.get('message', '')}")
        return dict(data)

    return call


def _from_files(data_dir: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    from rapid.api.logs import LogsAPI
    from rapid.api.logs import LogsError as ApiError
    from rapid.logs.store import LogReader

    api = LogsAPI(None, LogReader(os.path.join(data_dir, "logs")), lambda: [], "us-east-1", "000000000000")

    def call(body: dict[str, Any]) -> dict[str, Any]:
        try:
            return api.filter_events(body)
        except ApiError as exc:
            raise LogsError(f"{exc.code}: {exc.message}") from None

    return call


def run(ns: argparse.Namespace) -> int:
    group = ns.name if ns.name.startswith("/aws/lambda/") else f"/aws/lambda/{ns.name}"
    try:
        start = since_ms(ns.since)
    except ValueError as exc:
        print(f"rapid: error: {exc}", file=sys.stderr)
        return 2
    if ns.data_dir:
        fetch = _from_files(ns.data_dir)
    else:
        url = ns.endpoint_url or f"http://127.0.0.1:{os.environ.get('RAPID_PORT') or 8080}"
        fetch = _over_http(url)
    color = ns.color == "on" or (ns.color == "auto" and sys.stdout.isatty())
    body: dict[str, Any] = {"logGroupName": group, "startTime": start, "interleaved": True}
    if ns.filter_pattern:
        body["filterPattern"] = ns.filter_pattern
    seen: dict[int, set[str]] = {}
    try:
        while True:
            try:
                answer = fetch(body)
            except LogsError as exc:
                if not ns.follow or "ResourceNotFound" not in str(exc):
                    print(f"rapid: error: {exc}", file=sys.stderr)
                    return 1
                answer = {"events": []}  # following a function whose first line is yet to come
            for event in answer.get("events", []):
                ids = seen.setdefault(event["timestamp"], set())
                if event["eventId"] in ids:
                    continue
                ids.add(event["eventId"])
                print(render(event, color), flush=True)
            if "nextToken" in answer:
                body["nextToken"] = answer["nextToken"]
                continue
            if not ns.follow:
                return 0
            body.pop("nextToken", None)
            if seen:
                newest = max(seen)
                seen = {newest: seen[newest]}
                body["startTime"] = newest
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0
