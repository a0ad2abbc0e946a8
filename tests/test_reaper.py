"""rapid as PID 1 (``rapid.supervisor.reaper``), in a PID namespace of its own made with
``unshare``, as in a container: the init reaps the orphans of a double-forking runtime,
forwards SIGTERM to the daemon, and exits with its status. Nothing here needs podman; the
container tests check the same in a real container."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.daemon import ROOT, assert_no_leaks, make_function

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a PID namespace)"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)"),
]

# Answers each invoke after leaving a grandchild behind: the middle process exits at once,
# so the grandchild is re-parented to PID 1. It exits once the test creates ``release``
# beside the bootstrap (or after a minute).
DOUBLE_FORK = """#!{python}
import http.client, os, time
release = os.path.join(os.path.dirname(os.path.abspath(__file__)), "release")
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    body = r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            for _ in range(1200):
                if os.path.exists(release):
                    break
                time.sleep(0.05)
        os._exit(0)
    os.wait()
    conn.request("POST", "/2018-06-01/runtime/invocation/" + rid + "/response", body)
    conn.getresponse().read()
""".replace("{python}", sys.executable)


def _stat(pid: int) -> tuple[str, int, str]:
    """(state, ppid, command name) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    state, ppid = text[text.rindex(")") + 2:].split()[:2]
    return state, int(ppid), text[text.index("(") + 1:text.rindex(")")]


def _children(pid: int) -> list[int]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out


def _wait_for(condition, what, timeout: float = 20):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_pid1_reaps_orphans_forwards_sigterm_and_exits_with_the_daemon(tmp_path: Path) -> None:
    fn = make_function(tmp_path / "fn", DOUBLE_FORK)
    home = tempfile.mkdtemp(prefix="rapid-test-home-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAPID_", "AWS_LAMBDA_"))}
    env.update(HOME=home, PYTHONUNBUFFERED="1")
    # --kill-child: should the test die, the namespace goes with unshare.
    argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
            sys.executable, "-m", "rapid", "serve", "--port", "0", "--", str(fn / "bootstrap")]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    stderr: list[str] = []
    try:
        assert proc.stderr is not None
        url = None
        for raw in proc.stderr:
            stderr.append(raw.decode().rstrip("\n"))
            m = re.search(r"listening on (http://\S+)", stderr[-1])
            if m:
                url = m.group(1)
                break
        assert url, stderr
        threading.Thread(target=lambda: stderr.extend(l.decode().rstrip() for l in proc.stderr), daemon=True).start()

        # unshare's child is PID 1 of the namespace: the init, whose one child is the daemon.
        init = _wait_for(lambda: _children(proc.pid), "PID 1")[0]
        with open(f"/proc/{init}/cmdline", "rb") as f:
            assert b"rapid/supervisor/reaper.py" in f.read()
        daemon = _children(init)
        assert len(daemon) == 1
        with open(f"/proc/{daemon[0]}/cmdline", "rb") as f:
            assert b"rapid\0serve" in f.read()

        for i in range(3):
            req = urllib.request.Request(url + "/2015-03-31/functions/function/invocations",
                                         data=json.dumps({"i": i}).encode(), method="POST")
            with urllib.request.urlopen(req, timeout=30) as r:
                assert json.loads(r.read()) == {"i": i}
        # Three grandchildren were re-parented to PID 1...
        def orphans() -> list[int]:
            return [p for p in _children(init) if p != daemon[0]]

        assert len(orphans()) == 3, [_stat_or_none(p) for p in orphans()]
        # ...and once they exit, none may stay a zombie.
        (fn / "release").touch()
        _wait_for(lambda: not orphans(), f"PID 1 to reap its orphans: {[_stat_or_none(p) for p in orphans()]}")

        os.kill(init, signal.SIGTERM)  # what `docker stop` does
        assert proc.wait(30) == 0, stderr
        assert "rapid: shutting down" in "\n".join(stderr)
        assert_no_leaks(home)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)


def _stat_or_none(pid: int) -> tuple[str, int, str] | None:
    try:
        return _stat(pid)
    except OSError:
        return None
