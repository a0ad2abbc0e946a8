"""An instance's cgroup folders, named on the event loop and made from the worker thread
that moves its runtime in (``Cgroups.make(..., now=False)`` then ``ensure``). A plain
folder stands in for the cgroup tree: what is checked is which folders exist when, and
the limit written, not what the kernel does with them."""

from __future__ import annotations

import os
from pathlib import Path

from rapid.supervisor.cgroups import Cgroups, CgroupTree, Freezer
from rapid.supervisor.memory import PeakMemory


def cgroups(tmp_path: Path) -> Cgroups:
    groups = Cgroups(memory=False, freezer=False)
    groups.memory = CgroupTree(str(tmp_path), v2=True)
    return groups


def test_a_deferred_folder_is_made_once_by_ensure_with_its_limit(tmp_path):
    groups = cgroups(tmp_path)
    mem, frz = groups.make("a", 128, now=False)
    assert mem == str(tmp_path / "a") and frz is None
    assert not os.path.exists(mem)  # named only: nothing written on the loop
    groups.ensure("a")
    assert (tmp_path / "a" / "memory.max").read_text() == str(128 * 1024 * 1024)
    (tmp_path / "a" / "memory.max").write_text("kept")
    groups.ensure("a")  # again (an extension's join): made already, left as it is
    assert (tmp_path / "a" / "memory.max").read_text() == "kept"


def test_a_folder_removed_before_it_was_made_is_never_made(tmp_path):
    groups = cgroups(tmp_path)
    groups.make("gone", 128, now=False)
    groups.remove("gone")  # the instance ended before its runtime's join ran
    groups.ensure("gone")
    assert not (tmp_path / "gone").exists()


def test_made_now_as_before_when_not_deferred(tmp_path):
    groups = cgroups(tmp_path)
    mem, _ = groups.make("now", 256)
    assert (Path(mem) / "memory.max").read_text() == str(256 * 1024 * 1024)


def test_peak_and_freezer_open_their_files_once_the_folder_exists(tmp_path):
    folder = tmp_path / "late"
    peak = PeakMemory(os.getpid(), str(folder))
    freezer = Freezer(str(folder))
    freezer.freeze()  # nothing to freeze yet: no error
    assert peak.sample() >= 1  # the process's own high-water mark meanwhile
    folder.mkdir()
    (folder / "memory.peak").write_text(str(64 * 1024 * 1024 * 1024))
    (folder / "cgroup.freeze").write_text("0")
    assert peak.sample() == 64 * 1024
    freezer.freeze()
    assert (folder / "cgroup.freeze").read_text() == "1"
    freezer.thaw()
    assert (folder / "cgroup.freeze").read_text() == "0"
    freezer.close()
    peak.close()


def test_a_second_join_waits_for_the_folder_the_first_is_making(tmp_path):
    import threading

    groups = cgroups(tmp_path)
    groups.make("both", 128, now=False)
    slow, made = threading.Event(), []
    real = groups._create

    def create(name: str, memory_mb: int) -> None:
        slow.wait(5)
        real(name, memory_mb)

    groups._create = create  # type: ignore[method-assign]
    runtime = threading.Thread(target=groups.ensure, args=("both",))
    runtime.start()
    extension = threading.Thread(target=lambda: (groups.ensure("both"), made.append((tmp_path / "both").is_dir())))
    extension.start()
    extension.join(0.2)
    assert made == []  # still waiting for the runtime's join to make it
    slow.set()
    runtime.join(5)
    extension.join(5)
    assert made == [True]
