"""The spawner (rapid.supervisor.spawner): runtimes are forked by a small helper process, not
by the daemon; it dies with the daemon, even on SIGKILL; if it dies first, the daemon ends
what it had started and starts runtimes itself."""

import asyncio
import errno
import os
import signal

import pytest

from tests.daemon import assert_no_leaks, run_server, wait_until


def fn_args(folder, *extra):
    return ["--function", f"fn={folder}", *extra]


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _ppid(pid: int) -> int:
    fields = _stat(pid)
    assert fields is not None, f"process {pid} is gone"
    return int(fields[1])


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _spawner_of(daemon: int) -> int | None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields is None or int(fields[1]) != daemon:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"spawn_zygote.py" in f.read():
                    return int(entry)
        except OSError:
            continue
    return None


def _output_of(spawner, script: str, cwd: str, plan: dict | None) -> str:
    """Spawn ``sh -c script`` through ``spawner`` with ``plan`` and return all it printed."""
    r, w = os.pipe()
    try:
        _, pidfd = spawner.spawn(["sh", "-c", script], {"PATH": os.environ["PATH"]}, cwd, w, plan)
        os.close(pidfd)
    finally:
        os.close(w)
    out = b""
    while chunk := os.read(r, 100):
        out += chunk
    os.close(r)
    return out.decode()


def test_runtimes_are_forked_by_the_spawner_in_their_own_session(behave_fn):
    with run_server(fn_args(behave_fn)) as d:
        pid = d.invoke("fn", {"pid": True}).json()
        spawner = _spawner_of(d.proc.pid)
        assert spawner is not None, "the daemon has no spawner child"
        assert _ppid(pid) == spawner
        assert os.getsid(pid) == pid and os.getpgid(pid) == pid
        # Its output still reaches the log stream, and a crash is still reported as one.
        reply = d.invoke("fn", {"exit": 3})
        assert reply.json()["errorType"] == "Runtime.ExitError"
        assert "exit status 3" in reply.json()["errorMessage"]
        assert d.invoke("fn", {"echo": 1}).json() == 1


def test_the_spawner_dies_with_the_daemon_on_sigkill(behave_fn):
    with run_server(fn_args(behave_fn), check_leaks=False, expect_exit=None) as d:
        pid = d.invoke("fn", {"pid": True}).json()
        spawner = _spawner_of(d.proc.pid)
        assert spawner is not None
        d.proc.kill()
        d.proc.wait()
        wait_until(lambda: not _alive(spawner), 10, "the spawner to die with the daemon")
        wait_until(lambda: not _alive(pid), 10, "the runtime to die with the daemon")
        assert_no_leaks(d.home)


def test_when_the_spawner_dies_the_daemon_starts_runtimes_itself(behave_fn):
    with run_server(fn_args(behave_fn)) as d:
        first = d.invoke("fn", {"pid": True}).json()
        spawner = _spawner_of(d.proc.pid)
        assert spawner is not None
        os.kill(spawner, signal.SIGKILL)
        wait_until(lambda: not _alive(first), 10, "the spawner's runtime to be ended")
        # A runtime the dying spawner had just forked may still answer once before its
        # parent-death signal ends it; wait for one the daemon forked itself.
        def daemons_own() -> int | None:
            reply = d.invoke("fn", {"pid": True})
            if reply.status != 200 or not isinstance(reply.json(), int):
                return None
            pid = reply.json()
            fields = _stat(pid)
            return pid if fields is not None and int(fields[1]) == d.proc.pid else None

        second = wait_until(daemons_own, 10, "a runtime forked by the daemon itself")
        assert second != first
        wait_until(lambda: any("started by the daemon itself" in line for line in d.stderr), 5, "the warning")
        assert d.invoke("fn", {"echo": "still"}).json() == "still"


def test_spawn_failures_and_exit_statuses_are_those_of_popen(tmp_path):
    from rapid.supervisor.guardian import Guardian
    from rapid.supervisor.spawner import SpawnedProcess, Spawner

    async def scenario() -> None:
        said: list[str] = []
        spawner, guardian = Spawner(say=said.append), Guardian()
        try:
            r, w = os.pipe()
            with pytest.raises(OSError) as missing:
                spawner.spawn([str(tmp_path / "missing")], {}, str(tmp_path), w, None)
            assert missing.value.errno == errno.ENOENT
            with pytest.raises(OSError) as nowhere:
                spawner.spawn(["/bin/true"], {}, str(tmp_path / "no-such-dir"), w, None)
            assert nowhere.value.errno == errno.ENOENT
            os.close(r)
            os.close(w)
            for script, want in (("echo hi; exit 3", 3), ("echo hi; kill -9 $$", -9)):
                lines: list[bytes] = []
                done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                SpawnedProcess(spawner, ["sh", "-c", script], {"PATH": os.environ["PATH"]}, str(tmp_path),
                               lines.append, done.set_result, guardian, plan=None)
                assert await asyncio.wait_for(done, 10) == want
                assert lines == [b"hi"]
            assert said == []
        finally:
            spawner.close()
            guardian.close()

    asyncio.run(scenario())


def test_a_child_readied_with_a_namespace_gives_it_only_to_runtimes_that_ask(tmp_path):
    """The spawner readies its next child in a mount namespace of its own (as the daemon's
    runtimes take one); a runtime spawned without a namespace is put back in the host's."""
    from tests.capabilities import need

    need("root", "mount_namespace")
    from rapid.supervisor.spawner import Spawner

    host = os.readlink("/proc/self/ns/mnt")
    plan = {"rlimit": 1024, "namespace": True, "tmp_mb": 1, "hidden": [], "readonly": [], "opt": "",
            "task_root": "/", "uid": None, "last_cap": 40}

    async def namespace_of(spawner: Spawner, plan: dict | None) -> str:
        return _output_of(spawner, "readlink /proc/self/ns/mnt", "/", plan).strip()

    async def scenario() -> None:
        spawner = Spawner(namespaces=True)
        try:
            assert await namespace_of(spawner, plan) != host
            assert await namespace_of(spawner, None) == host
            assert await namespace_of(spawner, dict(plan, namespace=False)) == host
            assert await namespace_of(spawner, plan) != host
        finally:
            spawner.close()

    asyncio.run(scenario())


def test_a_child_readied_with_the_last_mounts_gives_each_runtime_its_own(tmp_path):
    """The spawner readies its next child with the last request's mounts already made (its
    tmpfs on /tmp, its binds); a request that wants other mounts still gets exactly its own."""
    from tests.capabilities import need

    need("root", "mount_namespace")
    from rapid.supervisor.spawner import Spawner

    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        folder.mkdir()
        (folder / "mark").write_text(folder.name)
    plans = {
        name: {"rlimit": 1024, "namespace": True, "tmp_mb": mb, "hidden": [str(folder)], "readonly": [str(folder)],
               "opt": "", "task_root": str(folder), "uid": None, "last_cap": 40}
        for name, mb, folder in (("one", 1, one), ("two", 2, two))
    }
    script = f"grep ' /tmp ' /proc/self/mounts | grep -o 'size=[0-9]*k'; pwd; cat {one}/mark {two}/mark 2>/dev/null"

    async def seen(plan: dict) -> list[str]:
        return _output_of(spawner, script, plan["task_root"], plan).split()

    async def scenario() -> None:
        for name in ("one", "one", "two", "two", "one"):  # readied as the last: same, then other mounts
            size = "size=1024k" if name == "one" else "size=2048k"
            assert await seen(plans[name]) == [size, str(tmp_path / name), name], name

    spawner = Spawner(namespaces=True)
    try:
        asyncio.run(scenario())
    finally:
        spawner.close()


def test_a_runtime_starts_from_a_daemon_holding_over_1024_descriptors():
    """With some 170 instances the daemon holds more than 1,024 descriptors, and a child it
    forks (the fallback path) holds them until it execs: the sandbox must open nothing
    under Lambda's limit of 1,024 (it did: every instance past ~166 failed with
    Runtime.InvalidEntrypoint, EMFILE)."""
    import ctypes
    import functools
    import resource
    import subprocess
    import tempfile

    from tests.capabilities import need

    need("root", "mount_namespace")
    from rapid.supervisor.spawn_sandbox import enter

    folder = tempfile.mkdtemp(dir="/tmp", prefix="rapid-fds-")  # under /tmp: a path bound back in
    plan = {"rlimit": 1024, "namespace": True, "tmp_mb": 1, "hidden": [folder], "readonly": [folder], "opt": "",
            "task_root": folder, "uid": None, "last_cap": 40}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), max(hard, 2048)))
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        done = subprocess.run(["sh", "-c", "pwd; ulimit -n"], preexec_fn=functools.partial(enter, plan, libc),
                              capture_output=True, close_fds=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().split() == [folder, "1024"]
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        os.rmdir(folder)


def test_a_spawner_that_cannot_start_says_so_and_hands_every_spawn_back(monkeypatch, tmp_path):
    import sys

    from rapid.supervisor.spawner import Spawner, SpawnerGone

    async def scenario() -> None:
        said: list[str] = []
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
        spawner = Spawner(say=said.append)
        monkeypatch.undo()
        assert not spawner.usable
        assert said and "cannot start" in said[0] and "started by the daemon itself" in said[0]
        r, w = os.pipe()
        try:
            with pytest.raises(SpawnerGone):
                spawner.spawn(["/bin/true"], {}, "/", w, None)
        finally:
            os.close(r)
            os.close(w)
            spawner.close()

    asyncio.run(scenario())
