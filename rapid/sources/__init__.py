"""The event source mapping core: what Lambda's pollers decide, with no I/O.

``filters`` (FilterCriteria: Lambda's event-filtering patterns), ``batching`` (BatchSize,
MaximumBatchingWindowInSeconds, the 6 MB payload cap), ``records`` (the SQS and Kinesis
event records and the Kinesis OnFailure record, AWS's shapes), ``responses`` (a function's
answer read as AWS reads it, ``ReportBatchItemFailures``), ``stream_retry`` (a Kinesis
shard's retries, bisecting and checkpoints). The control plane's pollers drive these; the
clock and any randomness are passed in.
"""
