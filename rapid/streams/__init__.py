"""Built-in Kinesis Data Streams on rapid's port (``X-Amz-Target: Kinesis_20131202.<Op>``).

``kinesis`` is the streams' semantics (a pure core, the clock passed in), ``kinesis_api``
the JSON 1.1 protocol edge; records are durable in ``queues.db`` (``rapid.queues.store``).
"""
