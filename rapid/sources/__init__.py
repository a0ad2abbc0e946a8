"""Event source mappings: the rules Lambda's pollers follow, and the pollers.

The pure core, with no I/O (the clock and any randomness passed in): ``filters``
(FilterCriteria: Lambda's event-filtering patterns), ``batching`` (BatchSize,
MaximumBatchingWindowInSeconds, the 6 MB payload cap), ``records`` (the SQS and Kinesis
event records and the Kinesis OnFailure record, AWS's shapes), ``responses`` (a function's
answer read as AWS reads it, ``ReportBatchItemFailures``), ``stream_retry`` (a Kinesis
shard's retries, bisecting and checkpoints), ``tumbling`` (TumblingWindowInSeconds).

The pollers that carry them out on asyncio: ``pollers`` (one per mapping, started and
stopped as the Lambda API changes them: ``rapid.api.mappings``), ``sqs_poller``,
``kinesis_poller``, ``invoker`` (a batch through the function's pool), ``stats`` and
``metrics`` (their figures in ``/metrics``).
"""
