"""Powertools for AWS Lambda's ``BatchProcessor`` (from PyPI, vendored into the function's
ZIP as a user would) driving partial batch failures end to end through an SQS mapping with
``ReportBatchItemFailures``: the records its handler fails come back and end in the
dead-letter queue; the others are processed once and deleted."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import boto3
import botocore.config
import pytest

from tests.control import ROLE, wait_active
from tests.daemon import run_server

pytest.importorskip("aws_lambda_powertools")

ACCOUNT = "000000000000"
HANDLER = '''
import json
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

processor = BatchProcessor(event_type=EventType.SQS)

def record_handler(record):
    body = record.body
    print("PT " + json.dumps({"body": body}), flush=True)
    if body.startswith("bad"):
        raise ValueError("cannot process " + body)

def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
'''


def vendored_zip() -> bytes:
    """The handler with Powertools and its dependencies copied in, as ``pip install -t``
    would leave them."""
    import aws_lambda_powertools
    import jmespath
    import typing_extensions

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("app.py", HANDLER)
        zf.write(typing_extensions.__file__, "typing_extensions.py")
        for pkg in (aws_lambda_powertools, jmespath):
            root = Path(pkg.__file__).parent
            for path in root.rglob("*.py"):
                zf.write(path, str(Path(root.name) / path.relative_to(root)))
            for path in root.rglob("py.typed"):
                zf.write(path, str(Path(root.name) / path.relative_to(root)))
    return buf.getvalue()


def wait_for(probe, timeout, what):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_batch_processor_partial_failures(tmp_path: Path) -> None:
    with run_server(["--data-dir", str(tmp_path / "state")]) as d:
        kw = dict(endpoint_url=d.url, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s",
                  config=botocore.config.Config(retries={"max_attempts": 0}, read_timeout=60))
        lam, sqs = boto3.client("lambda", **kw), boto3.client("sqs", **kw)
        lam.create_function(FunctionName="pt", Runtime="python3.12", Handler="app.handler", Role=ROLE, Timeout=3,
                            Code={"ZipFile": vendored_zip()})
        wait_active(lam, "pt")
        dlq = sqs.create_queue(QueueName="pt-dlq")["QueueUrl"]
        url = sqs.create_queue(QueueName="pt-q", Attributes={
            # Above the cold start (the vendored import) plus the run on a loaded machine: a batch
            # still running when its messages become visible again is received twice.
            "VisibilityTimeout": "4",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:pt-dlq",
                                         "maxReceiveCount": 2})})["QueueUrl"]
        bodies = ["ok-1", "bad-2", "ok-3", "ok-4", "bad-5"]
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)])
        lam.create_event_source_mapping(EventSourceArn=f"arn:aws:sqs:us-east-1:{ACCOUNT}:pt-q", FunctionName="pt",
                                        BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"])

        def dead() -> list[str]:
            got = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0)
            return sorted(m["Body"] for m in got.get("Messages", []))

        assert wait_for(lambda: (x := dead()) == ["bad-2", "bad-5"] and x, 60, "the failed two dead-lettered")
        seen = [json.loads(line.split("PT ", 1)[1])["body"] for line in list(d.lines) if "PT {" in line]
        assert sorted(b for b in seen if b.startswith("ok")) == ["ok-1", "ok-3", "ok-4"]  # once each
        assert seen.count("bad-2") == 2 and seen.count("bad-5") == 2
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert a["ApproximateNumberOfMessages"] == "0" and a["ApproximateNumberOfMessagesNotVisible"] == "0"
