"""An SQS consumer: a batch of messages in; the ones that failed reported back, so only
they return to the queue (ReportBatchItemFailures) and, after maxReceiveCount tries, go to
the dead-letter queue."""


def handler(event, context):
    failures = []
    for record in event["Records"]:
        body = record["body"]
        if "fail" in body:
            print(f"failed {body} (try {record['attributes']['ApproximateReceiveCount']})")
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        print(f"processed {body}")
    return {"batchItemFailures": failures}
