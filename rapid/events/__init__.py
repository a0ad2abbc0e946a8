"""Durable asynchronous invocation: ``InvocationType: Event`` as Lambda does it.

- ``store``: the ``EventStore`` interface and what it holds (queued events, outbox rows, the
  ``Finish`` of an event); an event is answered 202 once it is durable.
- ``sqlite_store``: the queue on disk behind that interface (SQLite, WAL, ``synchronous=FULL``,
  group commit in one writer thread; one daemon per data dir).
- ``sqlite_db``: ``events.db``: its tables, the transaction an operation writes in (finishing an
  event with its record, dead letter and deliveries), and reading it (``rapid queue``, offline).
- ``dispatcher``: runs queued events on their functions within their concurrency (async work
  never takes a function's last slot), retries, finishes them.
- ``settings``: each function's event-invoke-configs (API or ``rapid.toml``), dead-letter target
  and retry limits, and the ``Finish`` they make of an event.
- ``outbox``: records and dead letters for HTTP endpoints (and files that could not be written
  at once), retried with backoff.
- ``say``: the one line on stderr (``rapid: async: ...``).
- ``policy``: the retry rules as a pure function (no asyncio, no I/O): function errors are
  retried up to ``MaximumRetryAttempts`` after 1 then 2 minutes; throttles and system
  errors with backoff from 1 s to 5 min until ``MaximumEventAgeInSeconds``.
- ``destinations``: targets (function, built-in queue, file, HTTP), AWS's invocation record,
  dead-letter messages.
- ``api``: the event-invoke-config API at AWS's paths and ``GET /metrics``.
- ``metrics``: Prometheus text and the ``rapid queue`` table, from one snapshot.
- ``cli``: ``rapid queue``.
- ``jetstream_store``, ``jetstream_records`` (cluster mode only, ``rapid serve --cluster``):
  the events, and the records on their way to destinations, durable in JetStream streams,
  worked on by the node that holds them, taken over by another when it dies.

Configuration
-------------
Per function in ``rapid.toml`` (``[functions.NAME]``): ``maximum_retry_attempts`` (0-2),
``maximum_event_age`` (60-21600 s), ``on_success``, ``on_failure`` (destinations) and
``dead_letter`` (the function's ``DeadLetterConfig.TargetArn``). The first four are the
function's event-invoke-config for ``$LATEST``: when any is set in the file, the file's
settings replace the stored config at start; otherwise the config last set through the API
(kept in the data dir) stays. Server settings: ``async_time_scale`` (multiplies every retry
delay, backoff and maximum age; default 1.0, Lambda's timing) and ``async_concurrency`` (most
async attempts in flight per function, default 16), also as ``RAPID_ASYNC_TIME_SCALE`` and
``RAPID_ASYNC_CONCURRENCY``.

Guarantees
----------
At-least-once: an event is deleted only in the commit that makes its outcome durable (the
record delivered to a function or built-in queue in the same transaction, appended and
fsync'd to a file before it, or queued in the durable outbox for HTTP). Every attempt is
counted on disk before it starts; after a crash, the events that were running are run again
and counted in ``rapid_async_redelivered_total``. SIGTERM lets running attempts finish (up
to ``shutdown_timeout``), puts the others back in the queue (those cut short are counted as
redeliveries), and keeps everything on disk. Without ``--data-dir`` the daemon's data dir is temporary, and so is its queue.
"""
