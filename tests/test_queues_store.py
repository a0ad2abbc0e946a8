"""The journal of queues.db: a group commit in which one bad operation fails alone, every
caller hears after the commit, and what was committed is read back by a new journal."""

from __future__ import annotations

import asyncio

from rapid.queues.store import Journal


async def test_one_bad_operation_fails_alone_and_the_rest_is_durable(tmp_path):
    loop = asyncio.get_running_loop()
    j = Journal(tmp_path)
    j.start(loop)
    results: dict[str, object] = {}
    done = asyncio.Event()

    def finish(name):
        def cb(exc):
            results[name] = exc
            if len(results) == 3:
                done.set()
        return cb

    good = [("INSERT INTO sqs_imported(id) VALUES (?)", ("a",))]
    bad = [("INSERT INTO sqs_imported(id) VALUES (?)", ("b",)), ("INSERT INTO no_such_table VALUES (1)", ())]
    also = [("INSERT INTO sqs_imported(id) VALUES (?)", ("c",))]
    j.submit(good, finish("good"))
    j.submit(bad, finish("bad"))
    j.submit(also, finish("also"))
    await asyncio.wait_for(done.wait(), 10)
    j.close()
    assert results["good"] is None and results["also"] is None and results["bad"] is not None
    again = Journal(tmp_path)
    try:
        assert sorted(r[0] for r in again.load("SELECT id FROM sqs_imported")) == ["a", "c"]  # b rolled back
    finally:
        again.close()
