"""Starting and ending what the harness measures: hosts, the floor server, bare bootstraps.

Every process is started in its own session (``start_new_session``) and registered here.
``Server.stop`` sends SIGTERM, waits, then SIGKILLs the process group; any descendant that
outlives its host (a runtime the host failed to end) is SIGKILLed too. ``cleanup_all``
ends whatever is still registered; the harness calls it on every exit path, Ctrl-C
included, so no daemon, runtime or server is left behind.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks import machine

HERE = Path(__file__).resolve().parent
_live: dict[int, subprocess.Popen[bytes]] = {}


class HostError(Exception):
    """A host did not start, or did not answer as a Lambda host should."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The harness's environment without settings that would change how a host behaves."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("RAPID_", "AWS_LAMBDA_")) and k not in ("_HANDLER", "LAMBDA_TASK_ROOT")
    }
    env.update(extra or {})
    return env


def spawn(argv: Sequence[str], *, cwd: str, env: dict[str, str], stdout: str, stderr: str) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, its output going to the files ``stdout`` and
    ``stderr``, and register it for ``cleanup_all``."""
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True,
        )
    _live[proc.pid] = proc
    return proc


def end(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM, wait ``grace``, SIGKILL the group; then make sure no descendant survives."""
    family = [(p, machine.start_time(p)) for p in machine.descendants(proc.pid)]
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    _kill_group(proc.pid)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
    # A host should end its runtimes itself; give it (and a guardian) a moment, then insist.
    deadline = time.monotonic() + 3.0
    while True:
        alive = [(p, t) for p, t in family if t is not None and machine.start_time(p) == t]
        if not alive:
            break
        if time.monotonic() > deadline:
            for p, _t in alive:
                _kill_group(p)
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            break
        time.sleep(0.05)
    _live.pop(proc.pid, None)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def cleanup_all() -> None:
    for proc in list(_live.values()):
        end(proc, grace=5.0)


@dataclass
class Server:
    """A running host (or the floor server): where to reach it and what it costs."""

    proc: subprocess.Popen[bytes]
    port: int
    stdout: str
    stderr: str
    function: str = "function"
    notes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def path(self, function: str | None = None) -> str:
        return f"/2015-03-31/functions/{function or self.function}/invocations"

    def cpu(self) -> float:
        return machine.cpu_seconds(self.pid)

    def runtime_cpu(self) -> float:
        return machine.tree_cpu(self.pid)

    def runtimes(self) -> list[int]:
        return machine.runtimes(self.pid)

    def rss_kb(self) -> int:
        return machine.rss_kb(self.pid)

    def sockets(self) -> int:
        return machine.sockets(self.pid)

    def reports(self) -> int:
        """REPORT lines the host has written to its stdout so far."""
        try:
            with open(self.stdout, "rb") as f:
                return f.read().count(b"REPORT RequestId")
        except OSError:
            return 0

    def stderr_tail(self, lines: int = 5) -> str:
        try:
            text = Path(self.stderr).read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        end(self.proc)


def wait_listening(proc: subprocess.Popen[bytes], port: int, stderr: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            pass
        if proc.poll() is not None:
            tail = Path(stderr).read_text(errors="replace").strip().splitlines()[-3:]
            raise HostError(f"exited with status {proc.returncode} before listening: {' | '.join(tail)}")
        if time.monotonic() > deadline:
            end(proc)
            raise HostError(f"did not listen on port {port} within {timeout:.0f} s")
        time.sleep(0.02)


def launch(argv: Sequence[str], port: int, *, cwd: str, logs: str, tag: str,
           env: dict[str, str] | None = None, function: str = "function") -> Server:
    stdout, stderr = os.path.join(logs, f"{tag}.out"), os.path.join(logs, f"{tag}.err")
    proc = spawn(argv, cwd=cwd, env=clean_env(env), stdout=stdout, stderr=stderr)
    try:
        wait_listening(proc, port, stderr)
    except BaseException:
        end(proc)
        raise
    return Server(proc, port, stdout, stderr, function)


# Settings for every rapid the harness starts (--rapid-env), e.g. RAPID_FREEZE_WITH=cgroup.
RAPID_ENV: dict[str, str] = {}


def launch_rapid(args: Sequence[str], *, cwd: str, logs: str, tag: str,
                 env: dict[str, str] | None = None, function: str = "function") -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "rapid", "serve", "--port", str(port), *args]
    return launch(argv, port, cwd=cwd, logs=logs, tag=tag, env={**RAPID_ENV, **(env or {})}, function=function)


def launch_command(template: str, bootstrap: str, *, cwd: str, logs: str, tag: str) -> Server:
    """Another Runtime-API host, from a command with {port} and {bootstrap} placeholders."""
    port = free_port()
    argv = shlex.split(template.format(port=port, bootstrap=shlex.quote(bootstrap)))
    if "/" in argv[0] and not os.path.isabs(argv[0]):
        argv[0] = os.path.abspath(argv[0])  # the host runs in the function's folder
    try:
        return launch(argv, port, cwd=cwd, logs=logs, tag=tag)
    except FileNotFoundError as exc:
        raise HostError(f"cannot run {argv[0]!r}: {exc.strerror}") from None


def launch_rie(path: str, bootstrap: str, *, cwd: str, logs: str, tag: str) -> Server:
    """The AWS Runtime Interface Emulator (classic mode) serving ``bootstrap``. Its Runtime
    API needs a fixed address (it does not take port 0): a free port, picked now. It runs
    with its default logging (INFO lines per invoke), as the AWS base images run it."""
    port, api_port = free_port(), free_port()
    argv = [path, "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
            "--runtime-api-address", f"127.0.0.1:{api_port}", bootstrap]
    try:
        return launch(argv, port, cwd=cwd, logs=logs, tag=tag)
    except FileNotFoundError as exc:
        raise HostError(f"cannot run {path!r}: {exc.strerror}") from None


def launch_relay(bootstrap: str, *, cwd: str, logs: str, tag: str, runtimes: int = 1) -> Server:
    """The relay floor (benchmarks/relay.py) serving ``bootstrap`` with ``runtimes`` runtimes."""
    port = free_port()
    argv = [sys.executable, str(HERE / "relay.py"), str(port), bootstrap, str(runtimes)]
    return launch(argv, port, cwd=cwd, logs=logs, tag=tag)


def launch_floor(*, cwd: str, logs: str, tag: str) -> Server:
    port = free_port()
    argv = [sys.executable, str(HERE / "floor_server.py"), str(port)]
    return launch(argv, port, cwd=cwd, logs=logs, tag=tag)


# -- a bare start: the bootstrap against a tiny fake Runtime API ---------------------------

class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the bare runtime is killed while it holds a /next: that is expected


class FakeRuntimeAPI:
    """Serves one event to whichever runtime connects, and notes when its first ``/next``
    and its response arrive. Later ``/next`` calls are held open until ``close``."""

    def __init__(self, event: bytes) -> None:
        api = self
        self.event = event
        self.first_next = 0.0
        self.responded = 0.0
        self.response = b""
        self._answered = threading.Event()
        self._closing = threading.Event()
        self._served = False

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                now = time.perf_counter()
                if not self.path.endswith("/runtime/invocation/next"):
                    self.send_error(404)
                    return
                if api._served:
                    api._closing.wait(30)  # the long poll of an idle runtime
                    self.close_connection = True
                    return
                api._served = True
                api.first_next = now
                self.send_response(200)
                for k, v in (
                    ("Content-Type", "application/json"),
                    ("Lambda-Runtime-Aws-Request-Id", "00000000-0000-0000-0000-000000000001"),
                    ("Lambda-Runtime-Deadline-Ms", str(int((time.time() + 300) * 1000))),
                    ("Lambda-Runtime-Invoked-Function-Arn",
                     "arn:aws:lambda:us-east-1:000000000000:function:bare"),
                    ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000001"),
                    ("Content-Length", str(len(api.event))),
                ):
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(api.event)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if "/response" in self.path and not api.responded:
                    api.responded = time.perf_counter()
                    api.response = body
                    api._answered.set()
                data = b'{"status":"OK"}'
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        return self._answered.wait(timeout)

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()


def bare_start(bootstrap: str, cwd: str, event: bytes, logs: str, timeout: float = 30.0) -> tuple[float, float]:
    """Spawn ``bootstrap`` against a fake Runtime API; seconds from spawn to its first
    ``/next`` and to its response to the one event it is given."""
    api = FakeRuntimeAPI(event)
    env = clean_env({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.port}",
        "LAMBDA_TASK_ROOT": cwd, "_HANDLER": "",
        "AWS_LAMBDA_FUNCTION_NAME": "bare", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    })
    proc = None
    try:
        t0 = time.perf_counter()
        proc = spawn([bootstrap], cwd=cwd, env=env, stdout=os.path.join(logs, "bare.out"),
                     stderr=os.path.join(logs, "bare.err"))
        if not api.wait(timeout):
            raise HostError(f"bare bootstrap did not answer within {timeout:.0f} s")
        if api.response != event:
            raise HostError(f"bare bootstrap answered {api.response[:100]!r}")
        return api.first_next - t0, api.responded - t0
    finally:
        if proc is not None:
            end(proc, grace=0.0)
        api.close()
