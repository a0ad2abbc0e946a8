"""A Kinesis processor: each record's data is base64; a record that fails is reported by
its sequence number, so the batch is retried from there (ReportBatchItemFailures)."""

import base64


def handler(event, context):
    for record in event["Records"]:
        data = base64.b64decode(record["kinesis"]["data"]).decode("utf-8", "replace")
        if "fail" in data:
            print(f"failed {data}")
            return {"batchItemFailures": [{"itemIdentifier": record["kinesis"]["sequenceNumber"]}]}
        print(f"record {data} (partition key {record['kinesis']['partitionKey']})")
    return {"batchItemFailures": []}
