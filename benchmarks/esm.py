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
mapping (BatchSize 100). (End-to-end lag p50/p99 is not measured yet.)
"""

from __future__ import annotations

import argparse
import json
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=20000, help="messages (and records) per load (default 20000)")
    p.add_argument("--payload", type=int, default=100, help="message size in bytes (default 100)")
    p.add_argument("--consumers", type=int, default=5, help="threads of the hand-written consumer (default 5)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    payload = "x" * args.payload
    print(describe())
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="rapid-bench-esm-") as tmp:
        d = Daemon(Path(tmp), function_dirs(Path(tmp)), "", {})
        try:
            for name in ("consumer", "esm10", "esm100"):
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
            call(d.port, "Kinesis_20131202.CreateStream", {"StreamName": "bench", "ShardCount": 4}, "1.1")
            import base64

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
        finally:
            d.stop()
    for name in ("esm10", "esm100"):
        print(f"{name}/consumer messages/s: {out[name]['messages_per_s'] / out['consumer']['messages_per_s']:.2f}  "
              f"daemon CPU/message: {out[name]['daemon_cpu_us'] / out['consumer']['daemon_cpu_us']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


def _is_stream(line: str, text: str) -> bool:
    """The Kinesis mapping's line: the one mapping with an iterator-age series."""
    uuid = line.split('uuid="', 1)[1].split('"', 1)[0]
    return f'rapid_esm_iterator_age_seconds{{uuid="{uuid}"' in text


if __name__ == "__main__":
    raise SystemExit(main())
