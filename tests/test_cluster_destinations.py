"""Records of asynchronous invocations on their way to destinations, across rapid nodes on a
real nats-server (loopback only): durable in JetStream until delivered, from any node.

- On-success and on-failure records for built-in queues (``arn:aws:sqs:...``), made on
  nodes that do not own the queues, all reach the queues, each once, and ReceiveMessage
  on any node gets them.
- The queues' owner killed (SIGKILL) mid-run, then a node making records killed: nothing
  is lost; duplicates are counted and bounded by what the dead node held.
- A node holding HTTP records it cannot deliver yet (the endpoint is down) is killed; the
  endpoint comes up; a survivor delivers every record. The same for records for a file
  that cannot be written yet (its folder's name is taken by a plain file).
- While no node can own the queues (the lease held by a silent holder), a node holding 30
  queue records is killed: the survivor takes them over and, once it owns the queues,
  imports each once.
- ``rapid queue --cluster`` (and ``rapid cluster status``) on an unreachable NATS: one line.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.server
import json
import re
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.config
import pytest

from tests.cluster import collector, metric
from tests.control import ROLE, python_zip, wait_active
from tests.daemon import Daemon, run_cli, run_server, unique, wait_until
from tests.nats import free_port, nats_server

pytestmark = pytest.mark.slow

ENV = {"RAPID_SHUTDOWN_TIMEOUT": "2", "RAPID_ASYNC_CONCURRENCY": "4"}
HANDLER = """import os, time, urllib.request
def handler(event, context):
    time.sleep(float(os.environ.get("PAUSE", "0")))
    if event.get("held"):
        urllib.request.urlopen(os.environ["GATE"], timeout=150).read()
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"i": event["i"]}
"""


def aws(node: Daemon, service: str):  # type: ignore[no-untyped-def]
    return boto3.client(service, endpoint_url=node.url, region_name="us-east-1", aws_access_key_id="k",
                        aws_secret_access_key="s",
                        config=botocore.config.Config(retries={"max_attempts": 0}, read_timeout=60))


def owner(nodes: list[Daemon]) -> list[Daemon]:
    return [n for n in nodes if metric(n, "rapid_cluster_queues_owner") == 1]


def create(node: Daemon, name: str, pause: float, destinations: dict[str, dict[str, str]], gate: str = "") -> None:
    lam = aws(node, "lambda")
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": python_zip(HANDLER)}, Timeout=180,
                        Environment={"Variables": {"PAUSE": str(pause), "GATE": gate}})
    wait_active(lam, name)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0, DestinationConfig=destinations)


def configured(node: Daemon, name: str) -> bool:
    try:
        return bool(aws(node, "lambda").get_function_event_invoke_config(FunctionName=name).get("DestinationConfig"))
    except Exception:  # noqa: BLE001 - not there yet
        return False


def send(nodes: list[Daemon], name: str, numbers: range, held: range = range(0)) -> list[int]:
    """Event invokes round-robin over ``nodes`` (odd numbers fail, ``held`` ones wait at the
    gate first); the numbers answered 202."""
    def one(i: int) -> int | None:
        body = json.dumps({"i": i, "fail": i % 2 == 1, "held": i in held}).encode()
        try:
            reply = nodes[i % len(nodes)].request("POST", f"/2015-03-31/functions/{name}/invocations", body,
                                                  {"X-Amz-Invocation-Type": "Event"})
        except OSError:
            return None
        return i if reply.status == 202 else None

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return [i for i in pool.map(one, numbers) if i is not None]


class Queues:
    """The on-success and on-failure queues, drained through one node; what each held."""

    def __init__(self, node: Daemon, name: str) -> None:
        self.use(node)
        self.urls = {}
        self.arns = {}
        self.got: dict[str, Counter[int]] = {"ok": Counter(), "failed": Counter()}
        for kind in self.got:
            url = self.sqs.create_queue(QueueName=f"{name}-{kind}", Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
            self.urls[kind] = url
            self.arns[kind] = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]

    def use(self, node: Daemon) -> None:
        self.node, self.sqs = node, aws(node, "sqs")

    def drain(self) -> None:
        for kind, url in self.urls.items():
            url = url.rsplit("/", 2)
            url = f"{self.node.url}/{url[-2]}/{url[-1]}"
            try:
                msgs = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                                MessageAttributeNames=["All"]).get("Messages", [])
            except Exception:  # noqa: BLE001 - the queues are moving to another node: next round
                continue
            for m in msgs:
                record = json.loads(m["Body"])
                assert record["requestContext"]["condition"] == ("Success" if kind == "ok" else "RetriesExhausted")
                self.got[kind][record["requestPayload"]["i"]] += 1
            if msgs:
                with contextlib.suppress(Exception):
                    self.sqs.delete_message_batch(QueueUrl=url, Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(msgs)])

    def missing(self, accepted: list[int]) -> list[int]:
        return [i for i in accepted if not self.got["failed" if i % 2 else "ok"][i]]

    def all_of(self, accepted: list[int], timeout: float) -> None:
        def done() -> bool:
            self.drain()
            return not self.missing(accepted)

        wait_until(done, timeout=timeout, what=f"every record in the queues: {len(self.missing(accepted))} missing")

    def duplicates(self) -> int:
        return sum(n - 1 for c in self.got.values() for n in c.values() if n > 1)

    def misplaced(self) -> list[int]:
        return [i for i in self.got["ok"] if i % 2] + [i for i in self.got["failed"] if not i % 2]


def figures(nats_url: str, queue: str) -> tuple[int, int]:
    """(events accepted across the cluster, messages in ``queue``), by ``rapid queue --cluster --prometheus``."""
    page = run_cli(["queue", "--cluster", nats_url, "--prometheus"])
    assert page.returncode == 0, page.stderr
    accepted = sum(float(v) for v in re.findall(r'^rapid_async_accepted_total\{function="[^"]*"\} (\S+)$',
                                                page.stdout, re.M))
    held = re.findall(rf'^rapid_queue_messages\{{queue="{re.escape(queue)}"\}} (\S+)$', page.stdout, re.M)
    return int(accepted), int(float(held[0])) if held else 0


def test_records_for_built_in_queues_arrive_once_from_every_node(tmp_path: Path) -> None:
    with nats_server() as nats, contextlib.ExitStack() as stack:
        nodes = [stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / f"n{i}")],
                                                env=ENV)) for i in range(3)]
        wait_until(lambda: len(owner(nodes)) == 1, timeout=20, what="one owner of the queues")
        the_owner = owner(nodes)[0]
        senders = [n for n in nodes if n is not the_owner]
        name = f"rec-{unique()}"
        queues = Queues(senders[0], name)
        create(senders[1], name, 0.0, {"OnSuccess": {"Destination": queues.arns["ok"]},
                                      "OnFailure": {"Destination": queues.arns["failed"]}})
        # Failed events also go to a dead-letter queue (the event as its body, the error as attributes).
        sqs = aws(senders[1], "sqs")
        dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        lam = aws(senders[1], "lambda")
        lam.update_function_configuration(FunctionName=name, DeadLetterConfig={"TargetArn": dlq_arn})
        for n in senders:
            wait_until(lambda n=n: configured(n, name), timeout=20, what="the destinations on every node")
            wait_until(lambda n=n: aws(n, "lambda").get_function_configuration(FunctionName=name).get(
                "DeadLetterConfig", {}).get("TargetArn") == dlq_arn, timeout=20, what="the DLQ on every node")
            wait_until(lambda n=n: aws(n, "lambda").get_function_configuration(FunctionName=name).get(
                "LastUpdateStatus") == "Successful", timeout=20, what="the update done on every node")
        accepted = send(senders, name, range(200))
        assert len(accepted) == 200
        # `rapid queue --cluster`: the nodes' figures merged, the queues from their journal.
        wait_until(lambda: figures(nats.url, f"{name}-ok") == (200, 100), timeout=90,
                   what=f"rapid queue --cluster to show every record: {figures(nats.url, f'{name}-ok')}")
        assert figures(nats.url, f"{name}-failed") == (200, 100)
        table = run_cli(["queue", "--cluster", nats.url])
        assert table.returncode == 0 and re.search(rf"^{name}-ok\s+100$", table.stdout, re.M), table.stdout
        listed = run_cli(["queue", "--cluster", nats.url, "--messages", f"{name}-failed"])
        bodies = [json.loads(json.loads(line)["Body"]) for line in listed.stdout.splitlines()]
        assert sorted(b["requestPayload"]["i"] for b in bodies) == list(range(1, 200, 2))
        queues.use(senders[0])  # ReceiveMessage on a node that does not own the queues
        queues.all_of(accepted[:100], timeout=90)
        queues.use(the_owner)  # and on the owner
        queues.all_of(accepted, timeout=90)
        assert queues.duplicates() == 0 and queues.misplaced() == []
        dead: Counter[int] = Counter()

        def dead_letters() -> bool:
            msgs = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                       MessageAttributeNames=["All"]).get("Messages", [])
            for m in msgs:
                attrs = m["MessageAttributes"]
                assert attrs["ErrorMessage"]["StringValue"] == "asked to fail", attrs
                assert attrs["ErrorCode"] == {"DataType": "Number", "StringValue": "200"}, attrs
                dead[json.loads(m["Body"])["i"]] += 1
                sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
            return len(dead) >= 100

        wait_until(dead_letters, timeout=60, what=f"every dead letter: {len(dead)} of 100")
        assert sorted(dead) == list(range(1, 200, 2)) and set(dead.values()) == {1}
        # Nothing stays behind: every record acknowledged, nothing left in any node's events.db.
        wait_until(lambda: sum(metric(n, "rapid_cluster_records_held") for n in nodes) == 0, timeout=30,
                   what="every record acknowledged")
        assert sum(metric(n, "rapid_cluster_records_published_total") for n in senders) == 300
        for i in range(3):
            left = run_cli(["queue", "--data-dir", str(tmp_path / f"n{i}"), "--messages", f"{name}-ok"])
            assert left.returncode == 0 and left.stdout == "", left.stdout


@contextlib.contextmanager
def gate() -> Iterator[tuple[str, threading.Event]]:
    """A loopback URL whose GET answers only once the event is set (or after 120 s): a
    function that asks it holds its invocation until the test opens the gate."""
    opened = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            opened.wait(120)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", opened
    finally:
        opened.set()
        server.shutdown()
        server.server_close()


def test_records_for_built_in_queues_survive_the_owner_and_a_sender_killed(tmp_path: Path) -> None:
    with nats_server() as nats, gate() as (gate_url, opened), contextlib.ExitStack() as stack:
        def node(i: int) -> Daemon:
            return stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / f"n{i}")],
                                                  env=ENV, expect_exit=None))

        first = node(0)  # started first, alone: it takes the queues
        wait_until(lambda: owner([first]) == [first], timeout=20, what="node 0 to own the queues")
        senders = [node(1), node(2)]
        name = f"kill-{unique()}"
        queues = Queues(senders[0], name)
        create(senders[0], name, 0.0, {"OnSuccess": {"Destination": queues.arns["ok"]},
                                      "OnFailure": {"Destination": queues.arns["failed"]}}, gate_url)
        for n in senders:
            wait_until(lambda n=n: configured(n, name), timeout=20, what="the destinations on every node")
        # Half the events run at once, the other half wait at the gate: the owner dies while
        # they run, their records are made after it died.
        # (the free ones first: a held one that got ahead would keep a free one waiting behind the gate)
        accepted = send(senders, name, range(150)) + send(senders, name, range(150, 300), held=range(150, 300))
        assert len(accepted) == 300
        queues.all_of(accepted[:150], timeout=90)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        opened.set()
        wait_until(lambda: len(owner(senders)) == 1, timeout=40, what="another node to take the queues")
        queues.all_of(accepted, timeout=120)
        after_owner = queues.duplicates()
        the_owner = owner(senders)[0]
        print(f"owner killed: 300 records, {after_owner} duplicates")
        # Deleted messages whose delete the dead owner never journaled come back: at most a receive's worth each.
        assert after_owner <= 20 and queues.misplaced() == []
        # The 150 records made after the owner died were imported by the living (whichever owned the queues).
        assert sum(metric(n, "rapid_cluster_queues_records_taken_total") for n in senders) >= 150
        # Now a node making records dies with events running (held at the gate): the other
        # node takes its events and records over.
        opened.clear()
        victim = senders[1] if the_owner is senders[0] else senders[0]
        queues.use(the_owner)
        more = send([victim], name, range(300, 400)) + send([victim], name, range(400, 500), held=range(400, 500))
        assert len(more) == 200
        queues.all_of(more[:100], timeout=90)
        wait_until(lambda: metric(victim, "rapid_async_running") > 0, timeout=30, what="events held at the gate")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        opened.set()
        queues.all_of(accepted + more, timeout=150)
        extra = queues.duplicates() - after_owner
        print(f"sender killed: 200 more records, {extra} duplicates")
        assert extra <= 100 and queues.misplaced() == []  # only the dead node's unfinished events run twice
        # The held events (at least those running at the kill) were taken over and run there.
        assert metric(the_owner, "rapid_cluster_events_adopted_total") >= 4


def test_http_records_of_a_dead_node_are_delivered_by_a_survivor(tmp_path: Path) -> None:
    port = free_port()  # the collector's, down for now
    seen: Counter[int] = Counter()
    env = {**ENV, "RAPID_ASYNC_TIME_SCALE": "0.05"}  # retries every fraction of a second
    with nats_server() as nats, contextlib.ExitStack() as stack:
        survivor = stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / "n0")],
                                                  env=env))
        victim = stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / "n1")],
                                                env=env, expect_exit=None))
        name = f"http-{unique()}"
        target = f"http://127.0.0.1:{port}/records"
        create(victim, name, 0.0, {"OnSuccess": {"Destination": target}})
        wait_until(lambda: configured(victim, name), timeout=20, what="the destination on the victim")
        accepted = [i for i in send([victim], name, range(0, 80, 2))]  # even: every one succeeds
        assert len(accepted) == 40
        wait_until(lambda: metric(victim, "rapid_cluster_records_held") == 40, timeout=60,
                   what="every record held in JetStream by the victim")
        assert metric(victim, "rapid_async_destination_failures_total") > 0  # the endpoint is down
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        with collector(lambda data: seen.update([data["requestPayload"]["i"]]), port=port) as url:
            assert url == target.rsplit("/", 1)[0] + "/"
            wait_until(lambda: all(seen[i] for i in accepted), timeout=90,
                       what=f"every record: {len([i for i in accepted if not seen[i]])} missing")
            wait_until(lambda: metric(survivor, "rapid_cluster_records_held") == 0, timeout=30,
                       what="every record acknowledged")
        assert sorted(seen) == accepted and set(seen.values()) == {1}
        assert metric(survivor, "rapid_cluster_records_adopted_total") == 40


def test_file_records_of_a_dead_node_are_written_by_a_survivor(tmp_path: Path) -> None:
    # The file cannot be written for now: its folder's name is taken by a plain file.
    blocker = tmp_path / "out"
    blocker.write_text("in the way\n")
    target = blocker / "records.ndjson"
    env = {**ENV, "RAPID_ASYNC_TIME_SCALE": "0.05"}
    with nats_server() as nats, contextlib.ExitStack() as stack:
        survivor = stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / "n0")],
                                                  env=env))
        victim = stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / "n1")],
                                                env=env, expect_exit=None))
        name = f"file-{unique()}"
        create(victim, name, 0.0, {"OnSuccess": {"Destination": f"file://{target}"}})
        wait_until(lambda: configured(victim, name), timeout=20, what="the destination on the victim")
        accepted = send([victim], name, range(0, 40, 2))
        assert len(accepted) == 20
        wait_until(lambda: metric(victim, "rapid_cluster_records_held") == 20, timeout=60,
                   what="every record held in JetStream by the victim")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        blocker.unlink()  # the folder can be made now

        def written() -> list[int]:
            try:
                lines = target.read_text().splitlines()
            except OSError:
                return []
            return sorted(json.loads(line)["requestPayload"]["i"] for line in lines if line)

        wait_until(lambda: written() == accepted, timeout=90, what=f"every record in the file: {written()}")
        wait_until(lambda: metric(survivor, "rapid_cluster_records_held") == 0, timeout=30,
                   what="every record acknowledged")
        assert metric(survivor, "rapid_cluster_records_adopted_total") == 20
        assert written() == accepted  # once each


def test_rapid_queue_on_an_unreachable_cluster_says_so_at_once() -> None:
    url = f"nats://127.0.0.1:{free_port()}"  # nobody listens there
    for args in (["queue", "--cluster", url], ["cluster", "status", "--cluster", url]):
        done = run_cli(args)
        assert done.returncode == 1, done
        assert done.stderr.strip().splitlines() == [f"rapid: error: cannot read the cluster at {url}: "
                                                    "nats: no servers available for connection"], done.stderr


class SilentOwner:
    """Holds the queues' ownership lease (``rapid.cluster.queue_owner``) and never serves:
    what a stalled owner looks like to the other nodes. Renewed every second until ``release``."""

    def __init__(self, url: str) -> None:
        from rapid.cluster import lease_rules, queue_owner
        from rapid.cluster.link import Link

        self.link, self.key = Link(url, "test silent owner"), queue_owner.KEY
        self.link.open()
        self.kv = self.link.call(self.link.js.create_key_value(bucket=queue_owner.BUCKET, history=1,
                                                               ttl=lease_rules.TTL))
        self.revision = self.link.call(self.kv.create(self.key, b"silent"))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._renew, daemon=True)
        self.thread.start()

    def _renew(self) -> None:
        while not self.stop.wait(1.0):
            self.revision = self.link.call(self.kv.update(self.key, b"silent", last=self.revision))

    def release(self) -> None:
        """Once (again, at the test's end: nothing): the lease deleted, the link closed."""
        if self.link.closed:
            return
        self.stop.set()
        self.thread.join(5)
        with contextlib.suppress(Exception):
            self.link.call(self.kv.delete(self.key))
        self.link.close()


def test_queue_records_of_a_dead_node_are_sent_on_by_a_survivor(tmp_path: Path) -> None:
    with nats_server() as nats, contextlib.ExitStack() as stack:
        silent = SilentOwner(nats.url)  # no node can own the queues: records wait where they are
        stack.callback(silent.release)
        survivor = stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / "n0")],
                                                  env=ENV))
        victim = stack.enter_context(run_server(["--cluster", nats.url, "--data-dir", str(tmp_path / "n1")],
                                                env=ENV, expect_exit=None))
        name = f"wait-{unique()}"
        queue_arn = f"arn:aws:sqs:us-east-1:000000000000:{name}-ok"  # made by the first record
        create(victim, name, 0.0, {"OnSuccess": {"Destination": queue_arn}})
        wait_until(lambda: configured(victim, name), timeout=20, what="the destination on the victim")
        accepted = send([victim], name, range(0, 60, 2))
        assert len(accepted) == 30
        wait_until(lambda: metric(victim, "rapid_cluster_records_held") == 30, timeout=60,
                   what="every record held by the victim, waiting for an owner")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        # The survivor takes the records over (still no owner: it holds them in turn) ...
        wait_until(lambda: metric(survivor, "rapid_cluster_records_adopted_total") == 30, timeout=60,
                   what="the survivor to take every record over")
        assert metric(survivor, "rapid_cluster_records_held") == 30
        silent.release()  # ... and once it owns the queues, the records land there, once each
        wait_until(lambda: len(owner([survivor])) == 1, timeout=30, what="the survivor to own the queues")
        sqs = aws(survivor, "sqs")
        url = f"{survivor.url}/000000000000/{name}-ok"
        got: Counter[int] = Counter()

        def received() -> bool:
            try:
                msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            except sqs.exceptions.QueueDoesNotExist:  # made by the first record imported
                return False
            for m in msgs:
                got[json.loads(m["Body"])["requestPayload"]["i"]] += 1
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            return sorted(got) == accepted

        wait_until(received, timeout=60, what=f"every record in the queue: {len(got)} of 30")
        assert set(got.values()) == {1}
        wait_until(lambda: metric(survivor, "rapid_cluster_records_held") == 0, timeout=30,
                   what="every record acknowledged")
