"""A simulated cluster on this machine: 1, 2 and 3 rapid nodes on one nats-server, all on
loopback (one machine's CPUs shared by every node, NATS and the clients: a simulation of
a cluster, not one).

    python -m benchmarks.cluster [--seconds 5] [--clients 8] [--events 2000]

Measured, each beside its reference from the same run:

- **sync**: invokes/s and p50/p99 latency of a warm echo function (a custom runtime
  answering its event) with ``--clients`` keep-alive clients spread round-robin over the
  nodes; for 1, 2 and 3 nodes, and a single daemon without ``--cluster`` as the reference;
- **forwarded**: sequential invokes of a function whose only instance (reserved
  concurrency 1) is on node 1, sent to node 1 (local) and to node 2 (forwarded over NATS
  request/reply): the p50 ratio is the cost of a forward; the same for
  InvokeWithResponseStream (its head by request/reply, its bytes as frames on an inbox);
- **sqs**: sequential SendMessage calls (JSON protocol) to a built-in queue: on a single
  daemon (the reference, a commit to ``queues.db``), on the node that owns the cluster's
  queues (a JetStream publish acknowledged first) and on another node (forwarded to the
  owner over NATS request/reply): p50 latency;
- **async**: ``--events`` Event invokes accepted across 3 nodes and run to the end (every
  event acknowledged and deleted from JetStream): events/s, beside the same on a single
  daemon without ``--cluster``;
- **records**: ``--events`` Event invokes across 3 nodes of a function whose on-success
  destination is a built-in queue, until the queue holds every record (each record put in
  JetStream before its event is acknowledged, then imported by the queues' owner): events/s,
  beside the same on a single daemon.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from benchmarks.machine import describe

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def nats_server(folder: Path) -> Iterator[str]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = free_port()
    conf = folder / "nats.conf"
    conf.write_text(f'listen: "127.0.0.1:{port}"\nmax_payload: 8MB\njetstream {{ store_dir: "{folder}/js" }}\n')
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        time.sleep(0.3)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


class Node:
    def __init__(self, args: list[str], folder: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAPID_")}
        env["HOME"] = str(folder)
        self.proc = subprocess.Popen([sys.executable, "-m", "rapid", "serve", "--port", "0", "--data-dir",
                                      str(folder / "data"), *args], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            m = re.search(rb"listening on http://[\d.]+:(\d+)", raw)
            if m:
                self.port = int(m.group(1))
                break
        else:
            raise RuntimeError("node did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()  # type: ignore[union-attr]

    def call(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
             ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body, headers or {})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def metric(self, name: str) -> float:
        text = self.call("GET", "/metrics")[1].decode()
        return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def echo_zip() -> bytes:
    source = (ROOT / "benchmarks" / "echo_bootstrap.py").read_text()
    source = f"#!{sys.executable}\n" + source.split("\n", 1)[1]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = (0o755 | 0o100000) << 16
        zf.writestr(info, source)
    return buf.getvalue()


def create(node: Node, name: str, reserved: int | None = None) -> None:
    body = {"FunctionName": name, "Runtime": "provided.al2023", "Role": "arn:aws:iam::000000000000:role/r",
            "Handler": "x", "Code": {"ZipFile": base64.b64encode(echo_zip()).decode()}, "Timeout": 30}
    status, text = node.call("POST", "/2015-03-31/functions", json.dumps(body).encode())
    assert status == 201, text
    if reserved is not None:
        node.call("PUT", f"/2017-10-31/functions/{name}/concurrency",
                  json.dumps({"ReservedConcurrentExecutions": reserved}).encode())


def until(probe, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.05)


def invokes_ok(node: Node, name: str) -> bool:
    return node.call("POST", f"/2015-03-31/functions/{name}/invocations", b'{"a":1}')[0] == 200


def load(nodes: list[Node], name: str, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = time.monotonic() + seconds
    errors = [0]

    def client(i: int) -> None:
        node = nodes[i % len(nodes)]
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=60)
        path = f"/2015-03-31/functions/{name}/invocations"
        while time.monotonic() < stop:
            t = time.perf_counter()
            conn.request("POST", path, b'{"hello":"world"}')
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                errors[0] += 1
            latencies[i].append(time.perf_counter() - t)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    all_l = sorted(x for lst in latencies for x in lst)
    return {"per_s": len(all_l) / elapsed, "p50_ms": all_l[len(all_l) // 2] * 1000,
            "p99_ms": all_l[int(len(all_l) * 0.99)] * 1000, "errors": errors[0]}


def sequential(node: Node, name: str, n: int, path: str = "/2015-03-31/functions/{}/invocations") -> float:
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=60)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", path.format(name), b'{"hello":"world"}')
        r = conn.getresponse()
        r.read()
        assert r.status == 200
        out.append(time.perf_counter() - t)
    conn.close()
    return sorted(out)[len(out) // 2] * 1000


def propagation(writer: Node, reader: Node, name: str, n: int) -> tuple[float, float]:
    """p50 of an UpdateFunctionConfiguration on ``writer``, and of the time from sending it
    until ``reader`` answers GetFunctionConfiguration with the new value."""
    writes, seen = [], []
    for i in range(n):
        text = f"bench-{i}-{time.time()}"
        t = time.perf_counter()
        status, _ = writer.call("PUT", f"/2015-03-31/functions/{name}/configuration",
                                json.dumps({"Description": text}).encode())
        assert status == 200
        writes.append(time.perf_counter() - t)
        while json.loads(reader.call("GET", f"/2015-03-31/functions/{name}/configuration")[1]).get(
                "Description") != text:
            time.sleep(0.001)
        seen.append(time.perf_counter() - t)
        until(lambda: json.loads(writer.call("GET", f"/2015-03-31/functions/{name}/configuration")[1]).get(
            "LastUpdateStatus") == "Successful")
    return sorted(writes)[n // 2] * 1000, sorted(seen)[n // 2] * 1000


def send_events(nodes: list[Node], name: str, events: int) -> None:
    """``events`` Event invokes from 8 keep-alive clients, round-robin over ``nodes``."""
    def sender(part: int) -> None:
        node = nodes[part % len(nodes)]
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=60)
        for i in range(part, events, 8):
            conn.request("POST", f"/2015-03-31/functions/{name}/invocations", json.dumps({"i": i}).encode(),
                         {"X-Amz-Invocation-Type": "Event"})
            r = conn.getresponse()
            r.read()
            assert r.status == 202, r.status
        conn.close()

    threads = [threading.Thread(target=sender, args=(p,)) for p in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def async_run(nodes: list[Node], name: str, events: int, cluster: bool) -> float:
    start = time.monotonic()
    send_events(nodes, name, events)
    if cluster:
        until(lambda: sum(n.metric("rapid_cluster_events_finished_total") for n in nodes) >= events, 300)
    else:
        until(lambda: nodes[0].metric('rapid_async_succeeded_total') >= events, 300)
    return events / (time.monotonic() - start)


def sqs(node: Node, action: str, body: dict[str, object]) -> dict[str, object]:
    status, text = node.call("POST", "/", json.dumps(body).encode(), {
        "X-Amz-Target": f"AmazonSQS.{action}", "Content-Type": "application/x-amz-json-1.0"})
    assert status == 200, text
    return json.loads(text)  # type: ignore[no-any-return]


def records_run(nodes: list[Node], name: str, queue: str, events: int) -> float:
    """Events/s until ``queue`` holds the on-success record of each of ``events`` events."""
    url = sqs(nodes[0], "CreateQueue", {"QueueName": queue})["QueueUrl"]
    arn = sqs(nodes[0], "GetQueueAttributes", {"QueueUrl": url, "AttributeNames": ["QueueArn"]})["Attributes"]
    config = {"DestinationConfig": {"OnSuccess": {"Destination": arn["QueueArn"]}}}  # type: ignore[index]
    path = f"/2019-09-25/functions/{name}/event-invoke-config"
    status, text = nodes[0].call("PUT", path, json.dumps(config).encode())
    assert status == 200, text
    for node in nodes:
        until(lambda node=node: b"DestinationConfig" in node.call("GET", path)[1] and
              b"OnSuccess" in node.call("GET", path)[1])

    def held() -> int:
        attrs: dict[str, str] = sqs(nodes[-1], "GetQueueAttributes",  # type: ignore[assignment]
                                    {"QueueUrl": url, "AttributeNames": ["All"]})["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    start = time.monotonic()
    send_events(nodes, name, events)
    until(lambda: held() >= events, 300)
    return events / (time.monotonic() - start)


def sqs_sends(node: Node, queue: str, n: int) -> float:
    """p50 (ms) of ``n`` sequential SendMessage calls through ``node`` (the queue is made once)."""
    headers = {"X-Amz-Target": "AmazonSQS.CreateQueue", "Content-Type": "application/x-amz-json-1.0"}
    status, body = node.call("POST", "/", json.dumps({"QueueName": queue}).encode(), headers)
    assert status == 200, body
    url = json.loads(body)["QueueUrl"]
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=60)
    times = []
    headers = {**headers, "X-Amz-Target": "AmazonSQS.SendMessage"}
    for i in range(n):
        t = time.perf_counter()
        conn.request("POST", "/", json.dumps({"QueueUrl": url, "MessageBody": f"m{i}"}).encode(), headers)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
        times.append(time.perf_counter() - t)
    conn.close()
    return sorted(times)[n // 2] * 1000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cluster")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--events", type=int, default=2000)
    args = p.parse_args(argv)
    print(describe())
    print("a simulated cluster: every node, nats-server and the clients share this machine, on loopback")
    work = Path(tempfile.mkdtemp(prefix="rapid-bench-cluster-"))
    results: dict[str, object] = {}
    try:
        single = Node([], work / "single")
        try:
            create(single, "echo")
            until(lambda: invokes_ok(single, "echo"))
            results["sync_single_daemon"] = ref = load([single], "echo", args.clients, args.seconds)
            print(f"sync, one daemon without --cluster (reference): {ref['per_s']:.0f}/s "
                  f"p50 {ref['p50_ms']:.2f} ms p99 {ref['p99_ms']:.2f} ms")
            results["async_single_daemon"] = aref = async_run([single], "echo", args.events, cluster=False)
            print(f"async, one daemon without --cluster (reference): {aref:.0f} events/s")
            results["sqs_single_p50_ms"] = sref = sqs_sends(single, "bench", 300)
            print(f"SendMessage, one daemon without --cluster (reference): p50 {sref:.2f} ms")
            create(single, "recorder")
            until(lambda: invokes_ok(single, "recorder"))
            results["records_single_daemon"] = rref = records_run([single], "recorder", "bench-records", args.events)
            print(f"async with a record for a built-in queue, one daemon (reference): {rref:.0f} events/s")
        finally:
            single.stop()
        with nats_server(work) as url:
            nodes: list[Node] = []
            try:
                for n in (1, 2, 3):
                    while len(nodes) < n:
                        nodes.append(Node(["--cluster", url], work / f"n{len(nodes)}"))
                    if n == 1:
                        create(nodes[0], "echo")
                    for node in nodes:
                        until(lambda node=node: invokes_ok(node, "echo"))
                    r = load(nodes, "echo", args.clients, args.seconds)
                    results[f"sync_{n}_nodes"] = r
                    print(f"sync, {n} node(s) round-robin: {r['per_s']:.0f}/s p50 {r['p50_ms']:.2f} ms "
                          f"p99 {r['p99_ms']:.2f} ms ({r['per_s'] / ref['per_s']:.2f}x the single daemon)")
                writes, seen = propagation(nodes[0], nodes[2], "echo", 20)
                results["registry"] = {"write_p50_ms": writes, "seen_elsewhere_p50_ms": seen}
                print(f"registry change: written on node 0 in {writes:.2f} ms (p50), served by node 2 "
                      f"{seen:.2f} ms after the write was sent ({seen / writes:.2f}x the write)")
                create(nodes[0], "pinned", reserved=1)
                until(lambda: invokes_ok(nodes[0], "pinned"))  # its one lease and instance: node 0's
                until(lambda: nodes[1].metric("rapid_cluster_nodes") == 3)
                time.sleep(1.5)  # node 0's status shows the lease
                local = sequential(nodes[0], "pinned", 400)
                forwarded = sequential(nodes[1], "pinned", 400)
                results["forward"] = {"local_p50_ms": local, "forwarded_p50_ms": forwarded}
                print(f"forwarded invoke p50 {forwarded:.2f} ms vs local {local:.2f} ms: {forwarded / local:.2f}x")
                stream = "/2021-11-15/functions/{}/response-streaming-invocations"
                local_s = sequential(nodes[0], "pinned", 400, stream)
                forwarded_s = sequential(nodes[1], "pinned", 400, stream)
                results["stream_forward"] = {"local_p50_ms": local_s, "forwarded_p50_ms": forwarded_s}
                print(f"forwarded InvokeWithResponseStream p50 {forwarded_s:.2f} ms vs local {local_s:.2f} ms: "
                      f"{forwarded_s / local_s:.2f}x")
                a = async_run(nodes, "echo", args.events, cluster=True)
                results["async_3_nodes"] = a
                print(f"async, 3 nodes: {a:.0f} events/s end to end ({a / aref:.2f}x the single daemon)")
                owner = next(n for n in nodes if n.metric("rapid_cluster_queues_owner") == 1)
                other = next(n for n in nodes if n is not owner)
                on_owner, forwarded_send = sqs_sends(owner, "bench-owner", 300), sqs_sends(other, "bench-other", 300)
                results["sqs"] = {"owner_p50_ms": on_owner, "forwarded_p50_ms": forwarded_send}
                print(f"SendMessage p50 on the queues' owner {on_owner:.2f} ms ({on_owner / sref:.2f}x the single "
                      f"daemon), through another node {forwarded_send:.2f} ms ({forwarded_send / sref:.2f}x)")
                create(nodes[0], "recorder")
                for node in nodes:
                    until(lambda node=node: invokes_ok(node, "recorder"))
                r3 = records_run(nodes, "recorder", "bench-records", args.events)
                results["records_3_nodes"] = r3
                print(f"async with a record for a built-in queue, 3 nodes: {r3:.0f} events/s until every record is "
                      f"in the queue ({r3 / rref:.2f}x the single daemon)")
            finally:
                for node in nodes:
                    node.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
