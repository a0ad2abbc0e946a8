"""Built-in SQS, served on rapid's own port with SQS's JSON protocol.

``sqs`` is the queue semantics (a pure core, the clock passed in), ``sqs_checks`` the
validation of what a caller sends, ``md5`` the digests SQS answers with, ``sqs_errors``
AWS's error codes, ``store`` the durable journal (``queues.db`` in the data dir, shared
with the built-in Kinesis), ``sqs_rows`` the queues' rows in it, ``sqs_live`` the live
queues (core, journal, waiting receives; what the event source mapping pollers call) and
``sqs_api`` the protocol edge (``X-Amz-Target: AmazonSQS.<Op>``).
"""
