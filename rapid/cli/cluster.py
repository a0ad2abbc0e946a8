"""``rapid cluster status [--cluster nats://HOST:PORT] [--json]``: the nodes of a cluster,
their instances and invocations, and the async queue's lag, read from JetStream itself
(the nodes' heartbeats in ``rapid-nodes``, the ``RAPID_EVENTS`` stream and its consumers),
so it works from any machine that reaches NATS, whether or not a node runs there."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    c = sub.add_parser("cluster", help="the nodes of a cluster on NATS JetStream",
                       usage="rapid cluster status [--cluster nats://HOST:PORT] [--json]")
    c.add_argument("action", choices=["status"])
    c.add_argument("--cluster", help="the NATS server (default $RAPID_CLUSTER)")
    c.add_argument("--json", action="store_true", help="one JSON object instead of a table")


def run(ns: argparse.Namespace) -> int:
    url = ns.cluster or os.environ.get("RAPID_CLUSTER")
    if not url:
        print("rapid: error: give --cluster nats://HOST:PORT (or RAPID_CLUSTER)", file=sys.stderr)
        return 2
    try:
        status = asyncio.run(_read(url))
    except Exception as exc:  # noqa: BLE001 - one clear line
        print(f"rapid: error: cannot read the cluster at {url}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    if ns.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(_table(status))
    return 0


async def _read(url: str) -> dict[str, Any]:
    import nats

    from rapid.events.jetstream_store import BACKLOG, STREAM

    async def quiet(exc: Exception) -> None:  # nats-py would print each failed attempt's traceback
        return None

    # max_reconnect_attempts=0 means "no limit" to nats-py's first connect: one try, 5 s at most.
    nc = await asyncio.wait_for(nats.connect(url, connect_timeout=5, max_reconnect_attempts=1, allow_reconnect=False,
                                             error_cb=quiet), 10)
    try:
        js = nc.jetstream(timeout=5)
        try:
            nodes = await _nodes(js)
        except Exception:  # noqa: BLE001 - no node has joined yet
            nodes = []
        lag: dict[str, Any] = {"stream": STREAM, "backlog": None, "held": {}}
        try:
            info = await js.consumer_info(STREAM, BACKLOG)
            lag["backlog"] = info.num_pending
            for ci in await js.consumers_info(STREAM):
                if ci.name and ci.name.startswith("ev-"):
                    lag["held"][ci.name[3:]] = {"unacknowledged": ci.num_ack_pending, "undelivered": ci.num_pending}
        except Exception:  # noqa: BLE001 - no async event yet
            pass
        queues: dict[str, Any] = {"owner": None, "journal": None}  # rapid.cluster.queue_owner
        try:
            from rapid.cluster import queue_journal, queue_owner

            entry = await (await js.key_value(queue_owner.BUCKET)).get(queue_owner.KEY)
            queues["owner"] = bytes(entry.value).decode() if entry.value else None
            queues["journal"] = (await js.stream_info(queue_journal.STREAM)).state.messages
        except Exception:  # noqa: BLE001 - no node has owned the queues yet
            pass
        control: dict[str, Any] = {"owner": None}  # rapid.cluster.control_owner
        try:
            from rapid.cluster import control_owner

            entry = await (await js.key_value(control_owner.BUCKET)).get(control_owner.KEY)
            control["owner"] = bytes(entry.value).decode() if entry.value else None
        except Exception:  # noqa: BLE001 - no node has held it yet
            pass
        return {"nats": url, "nodes": sorted(nodes, key=lambda n: n["id"]), "async": lag, "queues": queues,
                "control": control}
    finally:
        await nc.close()


async def _nodes(js: Any) -> list[dict[str, Any]]:
    """Every node's last heartbeat in ``rapid-nodes``, each key read once.

    The bucket's stream is asked which keys it holds now, then each key's last message is
    read by itself. (A KV watch read up to its "caught up" marker is no snapshot: while the
    nodes rewrite their keys every second, JetStream's pending count can reach 0 early, so
    such a read handed one node's key twice and missed another's.) A key deleted (a node
    that stopped) or expired meanwhile is left out."""
    import msgspec
    from nats.js.errors import NotFoundError

    from rapid.cluster.membership import BUCKET, STALE
    from rapid.cluster.status import NodeStatus

    stream, prefix = f"KV_{BUCKET}", f"$KV.{BUCKET}."
    info = await js.stream_info(stream, subjects_filter=f"{prefix}>")
    nodes = []
    for subject in sorted(info.state.subjects or {}):
        try:
            msg = await js.get_msg(stream, subject=subject)
        except NotFoundError:  # expired since
            continue
        if not msg.data or (msg.headers and ("KV-Operation" in msg.headers or "Nats-Marker-Reason" in msg.headers)):
            continue  # a delete or purge marker
        node = msgspec.json.decode(msg.data, type=NodeStatus)
        age = time.time() - msg.time.timestamp() if msg.time else 0.0
        nodes.append({**msgspec.to_builtins(node), "seen_seconds_ago": round(age, 1), "alive": age <= STALE + 1})
    return nodes


def _table(status: dict[str, Any]) -> str:
    lines = [f"cluster {status['nats']}: {sum(1 for n in status['nodes'] if n['alive'])} node(s) alive"]
    lines.append(f"{'NODE':<44} {'ADDRESS':<24} {'INSTANCES':>9} {'RUNNING':>7} {'FWD OUT':>7} {'FWD IN':>6} "
                 f"{'HELD':>6}  SEEN")
    held = status["async"]["held"]
    for n in status["nodes"]:
        mine = held.get(n["id"], {}).get("unacknowledged", 0)
        seen = f"{n['seen_seconds_ago']} s ago" + ("" if n["alive"] else " (gone)")
        lines.append(f"{n['id']:<44} {n['url']:<24} {n['instances']:>9} {n['inflight']:>7} {n['forwarded_out']:>7} "
                     f"{n['forwarded_in']:>6} {mine:>6}  {seen}")
        for name, load in sorted(n["functions"].items()):
            instances, idle, leases = load
            lines.append(f"  {name:<42} instances {instances}, idle {idle}, leases {leases}")
    backlog = status["async"]["backlog"]
    lines.append(f"async queue lag ({status['async']['stream']}): "
                 + ("no event yet" if backlog is None else f"{backlog} event(s) not finished"))
    queues = status.get("queues") or {}
    lines.append("built-in queues, streams and mappings: "
                 + (f"owned by {queues['owner']}, journal {queues['journal']} message(s)" if queues.get("owner")
                    else "no owner now"))
    control = status.get("control") or {}
    lines.append("autoscaler and gradual deployments: "
                 + (f"run by {control['owner']}" if control.get("owner") else "no node runs them now"))
    orphans = [k for k in held if k not in {n["id"] for n in status["nodes"] if n["alive"]}]
    if orphans:
        lines.append(f"events of gone nodes, waiting to be taken over: "
                     + ", ".join(f"{k} ({held[k]['unacknowledged'] + held[k]['undelivered']})" for k in orphans))
    return "\n".join(lines)
