"""The built-in queues' journal on a real nats-server: a change is answered only once it
is in the stream ``RAPID_QUEUES``; a new owner replays every change; a writer that lost
ownership (another one published after it replayed) is refused and told so, and its
change is in no one's replay."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from rapid.cluster.link import Link
from rapid.cluster.queue_journal import ClusterJournal, Fenced
from tests.nats import nats_server

pytestmark = pytest.mark.slow


def insert(name: str) -> list[tuple[str, list[Any]]]:
    return [("INSERT INTO kinesis_streams(name, body) VALUES (?, ?)", [name, "{}"])]


async def commit(journal: ClusterJournal, name: str) -> BaseException | None:
    done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    journal.submit(insert(name), lambda exc: done.set_result(exc))
    return await asyncio.wait_for(done, 30)


def names(journal: ClusterJournal) -> list[str]:
    return [row[0] for row in journal.load("SELECT name FROM kinesis_streams ORDER BY name")]


def test_replay_and_a_second_writer_fenced(tmp_path: Path) -> None:
    with nats_server() as nats:
        links = [Link(nats.url, f"journal-test-{i}") for i in range(3)]
        for link in links:
            link.open()

        async def run() -> None:
            loop = asyncio.get_running_loop()
            lost: list[str] = []
            journals = []
            for i in range(3):
                (tmp_path / f"n{i}").mkdir()
            a = ClusterJournal(tmp_path / "n0", links[0], lambda: True, lost.append)
            journals.append(a)
            assert await asyncio.to_thread(a.replay) == 0
            a.start(loop)
            assert await commit(a, "a1") is None
            assert names(a) == ["a1"]
            # A second node takes over: it replays what the first wrote, then writes itself.
            b = ClusterJournal(tmp_path / "n1", links[1], lambda: True, lambda why: None)
            journals.append(b)
            assert await asyncio.to_thread(b.replay) == 1
            assert names(b) == ["a1"]
            b.start(loop)
            assert await commit(b, "b1") is None
            # The first still believes it owns the queues: its change is refused, it is told.
            assert isinstance(await commit(a, "a2"), Fenced)
            await asyncio.sleep(0)
            assert lost and "journaled" in lost[0]
            assert isinstance(await commit(a, "a3"), Fenced)  # and it stays refused
            # A third replays exactly what was acknowledged.
            c = ClusterJournal(tmp_path / "n2", links[2], lambda: True, lambda why: None)
            journals.append(c)
            assert await asyncio.to_thread(c.replay) == 2
            assert names(c) == ["a1", "b1"]
            # A writer whose lease lapsed by its own clock does not publish at all.
            c.valid = lambda: False
            c.start(loop)
            assert isinstance(await commit(c, "c1"), Fenced)
            for journal in journals:
                await asyncio.to_thread(journal.close)

        try:
            asyncio.run(run())
        finally:
            for link in links:
                link.close()


def test_snapshots_compact_the_stream(tmp_path: Path) -> None:
    with nats_server() as nats:
        links = [Link(nats.url, f"journal-snap-{i}") for i in range(2)]
        for link in links:
            link.open()

        async def run() -> None:
            (tmp_path / "n0").mkdir()
            (tmp_path / "n1").mkdir()
            a = ClusterJournal(tmp_path / "n0", links[0], lambda: True, lambda why: None)
            a.snapshot_every = 3
            await asyncio.to_thread(a.replay)
            a.start(asyncio.get_running_loop())
            for i in range(7):
                assert await commit(a, f"s{i}") is None
            assert a.snapshots == 2
            info = await links[0].run(links[0].js.stream_info("RAPID_QUEUES"))
            # Purged up to the last snapshot: its one part and the change after it are left.
            assert (info.state.first_seq, info.state.messages) == (info.state.last_seq - 1, 2)
            b = ClusterJournal(tmp_path / "n1", links[1], lambda: True, lambda why: None)
            assert await asyncio.to_thread(b.replay) == 2
            assert names(b) == [f"s{i}" for i in range(7)]
            for journal in (a, b):
                await asyncio.to_thread(journal.close)

        try:
            asyncio.run(run())
        finally:
            for link in links:
                link.close()


def test_closing_a_journal_during_its_replay_stops_the_replay_first(tmp_path: Path) -> None:
    """A node that stops (or loses the queues) while it replays the journal closes it from
    another thread: the replay ends (Fenced) before the database is closed, rather than
    running its statements on a closed connection (which killed a node with SIGSEGV)."""
    import threading

    with nats_server() as nats:
        link = Link(nats.url, "journal-close-test")
        link.open()
        try:
            async def fill() -> None:
                from rapid.cluster.queue_journal import SUBJECT, STREAM, _encode, open_stream

                await open_stream(link)
                for i in range(3000):
                    await link.js.publish(SUBJECT, _encode([insert(f"s{i}.{k}") for k in range(20)]), stream=STREAM)

            link.call(fill(), timeout=300)
            outcomes = []
            for round_ in range(6):
                folder = tmp_path / f"r{round_}"
                folder.mkdir()
                journal = ClusterJournal(folder, link, lambda: True, lambda why: None)
                got: list[object] = []

                def replay(journal: ClusterJournal = journal, got: list[object] = got) -> None:
                    try:
                        got.append(journal.replay())
                    except Exception as exc:  # noqa: BLE001 - what the replay ended with
                        got.append(exc)

                thread = threading.Thread(target=replay)
                thread.start()
                threading.Event().wait(0.05 * round_)  # closed at another point of the replay each round
                journal.close()  # returns once the replay is done with the database
                thread.join(10)
                assert not thread.is_alive()
                assert len(got) == 1
                outcomes.append(got[0])
                assert got[0] == 3000 or isinstance(got[0], Fenced), got[0]
            assert any(isinstance(o, Fenced) for o in outcomes), outcomes  # at least one was cut short
        finally:
            link.close()
