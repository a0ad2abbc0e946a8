"""A real nats-server for the cluster tests: JetStream on, a free loopback port, its store
in a temporary folder; stopped (and its folder removed) when the block ends.

The binary is the one on PATH (Debian's ``nats-server`` package, which CI's
``.ci/steps/70-nats.sh`` installs) or ``NATS_SERVER``. In CI a missing server fails the
tests; elsewhere it skips them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


def nats_binary() -> str:
    found = os.environ.get("NATS_SERVER") or shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("nats-server is missing (.ci/steps/70-nats.sh installs it)")
        pytest.skip("nats-server is not installed (apt-get install nats-server)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Nats:
    binary: str
    folder: str
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = os.path.join(self.folder, "nats.conf")
        with open(conf, "w") as f:
            f.write(f'listen: "127.0.0.1:{self.port}"\nmax_payload: 8MB\n'
                    f'jetstream {{ store_dir: "{self.folder}/store" }}\n')
        self.proc = subprocess.Popen([self.binary, "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.folder, "nats.log"), "ab"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nats-server exited ({self.proc.returncode}): " + self.log())
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                if "Server is ready" in self.log():
                    return
            time.sleep(0.05)
        raise AssertionError("nats-server did not start: " + self.log())

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            with open(os.path.join(self.folder, "nats.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""


@contextlib.contextmanager
def nats_server() -> Iterator[Nats]:
    binary = nats_binary()
    folder = tempfile.mkdtemp(prefix="rapid-nats-")
    server = Nats(binary, folder, free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
