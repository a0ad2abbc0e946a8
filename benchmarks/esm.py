"""Event source mappings: how fast a mapping drains a built-in queue, beside a consumer of
the same daemon written by hand.

    python -m benchmarks.esm [-n 20000] [--payload 100] [--consumers 5]

One daemon (its own ``--data-dir``) with the ``echo`` function (a custom runtime that
answers its event). For each load, ``-n`` messages are sent first (SendMessageBatch), then
timed until the queue is empty:

- **consumer** (the reference): ``--consumers`` threads, each a loop of ReceiveMessage (10),
  a synchronous Invoke of ``echo`` with the SQS event, DeleteMessageBatch; what one writes
  without mappings, over HTTP;
- **esm10** / **esm100**: a mapping with BatchSize 10 / 100 (window 1 s), polling in-process.

Reported per load: messages/s and daemon CPU per message; the ratios esm/consumer are what
to quote. Then a Kinesis stream of 4 shards: ``-n`` records put in, records/s drained by a
mapping (BatchSize 100).

Then the end-to-end lag, PutRecord to handler, on two more 4-shard streams: ``--producers``
threads put ``-n`` records with single PutRecord calls at ``--rate`` records/s in all, each
record's data the time just before its PutRecord; the ``lag`` function (a custom runtime
like ``echo``) takes the difference to its own clock for every record it gets and sends the
figures to a built-in queue once per invocation. Measured for

- **lag-consumer** (the reference): a hand-written poller of the same daemon, one thread per
  shard, GetRecords (100) over HTTP, a synchronous Invoke of ``lag`` with what it got, and
  0.1 s of sleep when a read is empty (KCL's default is 1 s);
- **lag-esm**: a mapping (StartingPosition LATEST, BatchSize 100, no window).

Reported: lag p50 and p99 in ms and their ratios esm/consumer, which are what to quote.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.events import Daemon, function_dirs
from benchmarks.machine import cpu_seconds, describe


def call(port: int, target: str, body: dict[str, object], version: str = "1.0") -> dict[str, object]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=json.dumps(body).encode(), method="POST",
                                 headers={"X-Amz-Target": target, "Content-Type": f"application/x-amz-json-{version}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")  # type: ignore[no-any-return]


def rest(port: int, method: str, path: str, body: dict[str, object] | bytes) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.read()  # type: ignore[no-any-return]


def fill(port: int, queue: str, n: int, payload: str) -> str:
    url = f"http://127.0.0.1:{port}/000000000000/{queue}"
    call(port, "AmazonSQS.CreateQueue", {"QueueName": queue, "Attributes": {"VisibilityTimeout": "120"}})
    for start in range(0, n, 10):
        call(port, "AmazonSQS.SendMessageBatch", {"QueueUrl": url, "Entries": [
            {"Id": str(i), "MessageBody": payload} for i in range(start, min(n, start + 10))]})
    return url


def left(port: int, url: str) -> int:
    a = call(port, "AmazonSQS.GetQueueAttributes", {"QueueUrl": url, "AttributeNames": ["All"]})["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])  # type: ignore[index]


def drain_wait(port: int, url: str) -> None:
    while left(port, url):
        time.sleep(0.05)


def consumer(port: int, url: str, arn: str) -> None:
    while True:
        got = call(port, "AmazonSQS.ReceiveMessage", {"QueueUrl": url, "MaxNumberOfMessages": 10,
                                                      "WaitTimeSeconds": 0}).get("Messages") or []
        if not got:
            return
        event = {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                              "eventSource": "aws:sqs", "eventSourceARN": arn} for m in got]}  # type: ignore[index]
        rest(port, "POST", "/2015-03-31/functions/echo/invocations", event)
        call(port, "AmazonSQS.DeleteMessageBatch", {"QueueUrl": url, "Entries": [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]})  # type: ignore[index]


LAG_BOOTSTRAP = r'''
# The lag benchmark's runtime: for each record, the time since its producer called
# PutRecord (the record's data); the figures go to the daemon's "lags" queue.
import base64, http.client, json, os, time

host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
here = os.path.dirname(os.path.abspath(__file__))
api = None
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    body = r.read()
    now = time.time()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    lags = [now - json.loads(base64.b64decode(rec["kinesis"]["data"]))["t"] for rec in json.loads(body)["Records"]]
    if api is None:
        with open(os.path.join(here, "port")) as f:
            api = http.client.HTTPConnection("127.0.0.1", int(f.read()))
    api.request("POST", "/", json.dumps({"QueueUrl": "http://127.0.0.1/000000000000/lags",
                                         "MessageBody": json.dumps(lags)}),
                {"X-Amz-Target": "AmazonSQS.SendMessage", "Content-Type": "application/x-amz-json-1.0"})
    api.getresponse().read()
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", b"{}", {"Content-Type": "application/json"})
    conn.getresponse().read()
'''


def lag_dir(workdir: Path) -> Path:
    folder = workdir / "lag"
    folder.mkdir()
    (folder / "bootstrap").write_text(f"#!{sys.executable}\n" + LAG_BOOTSTRAP)
    (folder / "bootstrap").chmod(0o755)
    return folder


def produce(port: int, stream: str, n: int, rate: float, threads: int) -> float:
    """``n`` single PutRecord calls at ``rate``/s in all, each record's data the time just
    before its call; the rate achieved."""
    def one(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        count = len(range(k, n, threads))
        gap = threads / rate
        start = time.perf_counter()
        for i in range(count):
            due = start + i * gap
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            data = base64.b64encode(json.dumps({"t": time.time()}).encode()).decode()
            conn.request("POST", "/", json.dumps({"StreamName": stream, "Data": data, "PartitionKey": f"k{k}-{i}"}),
                         {"X-Amz-Target": "Kinesis_20131202.PutRecord", "Content-Type": "application/x-amz-json-1.1"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
        conn.close()

    workers = [threading.Thread(target=one, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return n / (time.perf_counter() - t0)


def shard_consumer(port: int, stream: str, shard: str, stop: threading.Event) -> None:
    """The reference: GetRecords from LATEST, a synchronous Invoke of ``lag`` per read."""
    it = call(port, "Kinesis_20131202.GetShardIterator", {"StreamName": stream, "ShardId": shard,
                                                          "ShardIteratorType": "LATEST"}, "1.1")["ShardIterator"]
    while not stop.is_set():
        got = call(port, "Kinesis_20131202.GetRecords", {"ShardIterator": it, "Limit": 100}, "1.1")
        it = got["NextShardIterator"]
        records = got.get("Records") or []
        if not records:
            time.sleep(0.1)
            continue
        event = {"Records": [{"kinesis": {"data": r["Data"], "sequenceNumber": r["SequenceNumber"]},  # type: ignore[index]
                              "eventSource": "aws:kinesis"} for r in records]}  # type: ignore[union-attr]
        rest(port, "POST", "/2015-03-31/functions/lag/invocations", event)


def collect(port: int, n: int, timeout: float = 120) -> list[float]:
    """Every lag the ``lag`` function sent, once ``n`` of them have arrived."""
    url = f"http://127.0.0.1:{port}/000000000000/lags"
    out: list[float] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        got = call(port, "AmazonSQS.ReceiveMessage", {"QueueUrl": url, "MaxNumberOfMessages": 10,
                                                      "WaitTimeSeconds": 1}).get("Messages") or []
        for m in got:  # type: ignore[union-attr]
            out += json.loads(m["Body"])  # type: ignore[index]
        if got:
            call(port, "AmazonSQS.DeleteMessageBatch", {"QueueUrl": url, "Entries": [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]})  # type: ignore[index]
    return sorted(out)


def lag_run(port: int, name: str, args: argparse.Namespace) -> dict[str, float]:
    stream = f"lag-{name}"
    call(port, "Kinesis_20131202.CreateStream", {"StreamName": stream, "ShardCount": 4}, "1.1")
    stop = threading.Event()
    readers: list[threading.Thread] = []
    uuid = ""
    if name == "consumer":
        shards = call(port, "Kinesis_20131202.ListShards", {"StreamName": stream}, "1.1")["Shards"]
        readers = [threading.Thread(target=shard_consumer, args=(port, stream, s["ShardId"], stop))  # type: ignore[index]
                   for s in shards]  # type: ignore[union-attr]
        for t in readers:
            t.start()
        time.sleep(0.5)  # each reader holds its LATEST iterator
    else:
        m = json.loads(rest(port, "POST", "/2015-03-31/event-source-mappings", {
            "EventSourceArn": f"arn:aws:kinesis:us-east-1:000000000000:stream/{stream}", "FunctionName": "lag",
            "BatchSize": 100, "StartingPosition": "LATEST"}))
        uuid = m["UUID"]
        while json.loads(rest(port, "GET", f"/2015-03-31/event-source-mappings/{uuid}", b""))["State"] != "Enabled":
            time.sleep(0.05)
    try:
        put_rate = produce(port, stream, args.n, args.rate, args.producers)
        lags = collect(port, args.n)
    finally:
        stop.set()
        for t in readers:
            t.join()
        if uuid:
            rest(port, "DELETE", f"/2015-03-31/event-source-mappings/{uuid}", b"")
    assert len(lags) >= args.n, f"only {len(lags)} of {args.n} records reached the handler"
    return {"put_per_s": put_rate, "lag_p50_ms": lags[len(lags) // 2] * 1e3,
            "lag_p99_ms": lags[int(len(lags) * 0.99)] * 1e3, "records": len(lags)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=20000, help="messages (and records) per load (default 20000)")
    p.add_argument("--payload", type=int, default=100, help="message size in bytes (default 100)")
    p.add_argument("--consumers", type=int, default=5, help="threads of the hand-written consumer (default 5)")
    p.add_argument("--rate", type=float, default=1000, help="lag runs: PutRecord calls per second (default 1000)")
    p.add_argument("--producers", type=int, default=4, help="lag runs: producer threads (default 4)")
    p.add_argument("--only", choices=("sqs", "kinesis", "lag"), action="append",
                   help="run only these parts (default all; may be repeated)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    payload = "x" * args.payload
    print(describe())
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="rapid-bench-esm-") as tmp:
        parts = set(args.only or ("sqs", "kinesis", "lag"))
        d = Daemon(Path(tmp), {**function_dirs(Path(tmp)), "lag": lag_dir(Path(tmp))}, "", {})
        (Path(tmp) / "lag" / "port").write_text(str(d.port))
        try:
            for name in ("consumer", "esm10", "esm100") if "sqs" in parts else ():
                url = fill(d.port, name, args.n, payload)
                arn = f"arn:aws:sqs:us-east-1:000000000000:{name}"
                cpu0, t0 = cpu_seconds(d.proc.pid), time.perf_counter()
                if name == "consumer":
                    threads = [threading.Thread(target=consumer, args=(d.port, url, arn))
                               for _ in range(args.consumers)]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                else:
                    size = 10 if name == "esm10" else 100
                    rest(d.port, "POST", "/2015-03-31/event-source-mappings", {
                        "EventSourceArn": arn, "FunctionName": "echo", "BatchSize": size,
                        "MaximumBatchingWindowInSeconds": 0 if size == 10 else 1})
                drain_wait(d.port, url)
                wall, cpu = time.perf_counter() - t0, cpu_seconds(d.proc.pid) - cpu0
                out[name] = {"messages_per_s": args.n / wall, "daemon_cpu_us": cpu / args.n * 1e6}
                print(f"{name:<9} {out[name]['messages_per_s']:>9.0f} messages/s  "
                      f"{out[name]['daemon_cpu_us']:>6.0f} us daemon CPU/message", flush=True)
            if "kinesis" in parts:
                kinesis_drain(d, args, payload, out)
            if "lag" in parts:
                call(d.port, "AmazonSQS.CreateQueue", {"QueueName": "lags"})
                for name in ("consumer", "esm"):
                    out[f"lag-{name}"] = r = lag_run(d.port, name, args)
                    print(f"lag-{name:<9} p50 {r['lag_p50_ms']:>7.1f} ms  p99 {r['lag_p99_ms']:>7.1f} ms  "
                          f"({r['put_per_s']:.0f} PutRecord/s)", flush=True)
        finally:
            d.stop()
    if "consumer" in out:
        for name in ("esm10", "esm100"):
            print(f"{name}/consumer messages/s: {out[name]['messages_per_s'] / out['consumer']['messages_per_s']:.2f}  "
                  f"daemon CPU/message: {out[name]['daemon_cpu_us'] / out['consumer']['daemon_cpu_us']:.2f}")
    if "lag-esm" in out:
        ref = out["lag-consumer"]
        print(f"lag esm/consumer p50: {out['lag-esm']['lag_p50_ms'] / ref['lag_p50_ms']:.2f}  "
              f"p99: {out['lag-esm']['lag_p99_ms'] / ref['lag_p99_ms']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


def kinesis_drain(d: Daemon, args: argparse.Namespace, payload: str, out: dict[str, dict[str, float]]) -> None:
    """records/s of a mapping draining a 4-shard stream filled beforehand."""
    call(d.port, "Kinesis_20131202.CreateStream", {"StreamName": "bench", "ShardCount": 4}, "1.1")
    data = base64.b64encode(payload.encode()).decode()
    for start in range(0, args.n, 500):
        call(d.port, "Kinesis_20131202.PutRecords", {"StreamName": "bench", "Records": [
            {"Data": data, "PartitionKey": f"k{i}"} for i in range(start, min(args.n, start + 500))]}, "1.1")
    cpu0, t0 = cpu_seconds(d.proc.pid), time.perf_counter()
    rest(d.port, "POST", "/2015-03-31/event-source-mappings", {
        "EventSourceArn": "arn:aws:kinesis:us-east-1:000000000000:stream/bench", "FunctionName": "echo",
        "BatchSize": 100, "StartingPosition": "TRIM_HORIZON"})
    while True:
        text = urllib.request.urlopen(f"http://127.0.0.1:{d.port}/metrics", timeout=10).read().decode()
        done = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("rapid_esm_records_total") and _is_stream(line, text))
        if done >= args.n:
            break
        time.sleep(0.05)
    wall, cpu = time.perf_counter() - t0, cpu_seconds(d.proc.pid) - cpu0
    out["kinesis100"] = {"records_per_s": args.n / wall, "daemon_cpu_us": cpu / args.n * 1e6}
    print(f"kinesis100 {out['kinesis100']['records_per_s']:>8.0f} records/s   "
          f"{out['kinesis100']['daemon_cpu_us']:>6.0f} us daemon CPU/record")


def _is_stream(line: str, text: str) -> bool:
    """The Kinesis mapping's line: the one mapping with an iterator-age series."""
    uuid = line.split('uuid="', 1)[1].split('"', 1)[0]
    return f'rapid_esm_iterator_age_seconds{{uuid="{uuid}"' in text


if __name__ == "__main__":
    raise SystemExit(main())
