"""``run_server``: start the real daemon as a user would, talk to it, stop it, check leaks.

The daemon runs as ``python -m rapid serve --port 0 ...`` in a subprocess. Its stderr line
``listening on http://HOST:PORT`` gives the address; its stdout (the log stream) is
collected line by line. Every daemon gets a unique ``HOME``, which rapid passes to every
runtime it starts; after the daemon exits, no process on the machine may still carry that
``HOME`` (``assert_no_leaks``).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
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
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BOOTSTRAPS = ROOT / "bootstraps"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)

    @property
    def function_error(self) -> str | None:
        return self.headers.get("x-amz-function-error")

    @property
    def log_tail(self) -> str:
        return base64.b64decode(self.headers["x-amz-log-result"]).decode()


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    url: str
    home: str
    lines: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, timeout: float = 30
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def invoke(
        self, name: str = "function", payload: object | bytes = None, headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Reply:
        if isinstance(payload, bytes):
            body = payload
        else:
            body = b"" if payload is None else json.dumps(payload).encode()
        return self.request("POST", f"/2015-03-31/functions/{name}/invocations", body, headers, timeout)

    def wait_for_line(self, pattern: str, timeout: float = 10) -> str:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if rx.search(line):
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line matching {pattern!r}; got:\n" + "\n".join(self.lines))

    def lines_for(self, request_id: str) -> list[str]:
        return [line for line in self.lines if request_id in line]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR2)  # rapid.daemon: every thread's stack on stderr
            time.sleep(1)
            self.proc.kill()
            self.proc.wait()
            time.sleep(0.2)  # the stderr pump reads what is left
            stacks = "\n".join(self.stderr[-200:])
            raise AssertionError(f"daemon did not stop in time; its stacks:\n{stacks}") from None
        return code

    def runtime_pids(self) -> list[int]:
        return [p for p in processes_with_home(self.home) if p != self.proc.pid and not _is_zombie(p)]


def processes_with_home(home: str) -> list[int]:
    needle = f"HOME={home}".encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read() + b"\0"
        except OSError:
            continue
        if b"\0" + needle in b"\0" + env:
            found.append(int(entry))
    return found


def assert_no_leaks(home: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while True:
        pids = [p for p in processes_with_home(home) if not _is_zombie(p)]
        if not pids:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"processes outlived the daemon: {pids}")
        time.sleep(0.05)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _pump(stream: object, sink: list[str]) -> None:
    for raw in stream:  # type: ignore[attr-defined]
        sink.append(raw.decode("utf-8", "replace").rstrip("\n"))


@contextlib.contextmanager
def run_server(
    args: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
    check_leaks: bool = True, expect_exit: int | None = 0, wrapper: Sequence[str] = (),
) -> Iterator[Daemon]:
    """Run ``rapid serve --port 0 ARGS`` until the block ends; then SIGTERM it, require exit
    status ``expect_exit`` and that no runtime process outlives it. ``wrapper`` is a
    command that execs the daemon (``prlimit --nofile=1024:1024 --``, ``setpriv ...``),
    keeping its pid."""
    home = tempfile.mkdtemp(prefix="rapid-test-home-")
    full_env = {**os.environ, "HOME": home, "PYTHONUNBUFFERED": "1"}
    for key in list(full_env):
        if key.startswith("RAPID_") or key.startswith("AWS_LAMBDA_") or key == "_HANDLER":
            del full_env[key]
    full_env.update(env or {})
    argv = [*wrapper, sys.executable, "-m", "rapid", "serve", "--port", "0", *args]
    proc = subprocess.Popen(
        argv, cwd=cwd or ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    daemon = Daemon(proc, "", home)
    assert proc.stderr is not None and proc.stdout is not None
    threading.Thread(target=_pump, args=(proc.stdout, daemon.lines), daemon=True).start()
    deadline = time.monotonic() + 30
    while True:
        raw = proc.stderr.readline()
        if not raw:
            proc.wait()
            raise AssertionError(f"daemon exited ({proc.returncode}) before listening: {daemon.stderr}")
        text = raw.decode().rstrip("\n")
        daemon.stderr.append(text)
        m = re.search(r"listening on (http://\S+)", text)
        if m:
            daemon.url = m.group(1)
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("daemon did not start listening")
    threading.Thread(target=_pump, args=(proc.stderr, daemon.stderr), daemon=True).start()
    try:
        yield daemon
    finally:
        code = daemon.stop()
        try:
            if check_leaks:
                assert_no_leaks(home)
            if expect_exit is not None:
                assert code == expect_exit, f"daemon exited {code}; stderr: {daemon.stderr}"
        finally:
            shutil.rmtree(home, ignore_errors=True)


def make_function(folder: Path, bootstrap: str, files: dict[str, str] | None = None) -> Path:
    """A function folder with an executable ``bootstrap`` holding ``bootstrap`` (source)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bootstrap"
    path.write_text(bootstrap)
    path.chmod(0o755)
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    return folder


def run_cli(args: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
            timeout: float = 20, wrap: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """Run ``python -m rapid ARGS`` to completion (for start-up errors)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RAPID_", "AWS_LAMBDA_"))}
    full_env.update(env or {})
    return subprocess.run(
        [*wrap, sys.executable, "-m", "rapid", *args], cwd=cwd or ROOT, env=full_env, capture_output=True,
        text=True, timeout=timeout,
    )


ECHO = """#!{python}
# A minimal custom runtime: echoes the event, one keep-alive connection, stdlib only.
import http.client, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    body = r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    conn.request("POST", "/2018-06-01/runtime/invocation/" + rid + "/response", body)
    conn.getresponse().read()
""".replace("{python}", sys.executable)



def wait_until(probe, timeout: float = 10, what: str = "the condition"):
    """Poll ``probe`` until it returns something true (returned), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def unique() -> str:
    return uuid.uuid4().hex[:8]


# A scriptable custom runtime for fault tests: the event says what to do.
#   {"echo": x}         -> answers x
#   {"sleep": s}        -> sleeps s seconds, then answers "slept"
#   {"exit": n}         -> the process exits with status n, answering nothing
#   {"kill": true}      -> the process SIGKILLs itself
#   {"error": "T"}      -> posts /error with errorType T
#   {"env": "NAME"}     -> answers the value of environment variable NAME
#   {"print": "text"}   -> prints text, then answers "printed"
#   {"headers": true}   -> answers the /next headers it received
#   {"pid": true}       -> answers its pid
#   {"alloc": mb}       -> allocates mb MB, answers "allocated"
#   {"size": n}         -> answers a JSON string of n bytes in total
#   {"fetch": url}      -> GETs url, answers the status code (or the error's name)
#   {"write": path, "data": s} / {"read": path} -> file access, answers True / the text or the error's name
#   {"id": true}        -> answers [uid, gid]
#   {"rlimits": true}   -> answers [nofile soft, nproc soft]
#   {"ticks": true}     -> answers how often a background thread has ticked (every 10 ms)
#   {"signal": pid}     -> sends SIGKILL-free signal 0 to pid, answers "ok" or the error's name
#   {"fill": mb}        -> writes mb MB to /tmp/fill, answers the MB written or the error's name
#   {"wait_for": path}  -> waits (up to 60 s) until path exists, answers "released" (or "gave up")
# Paths in write/read may name $TMPDIR (expanded in the runtime).
# With INIT_FAIL set in its environment it posts /init/error and exits 1 instead of polling;
# with INIT_HANG it never calls /next.
BEHAVE = """#!{python}
import http.client, json, os, signal, sys, time
if os.environ.get("INIT_HANG"):
    time.sleep(3600)
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
def post(path, body, headers={}):
    conn.request("POST", "/2018-06-01/runtime/" + path, body, headers)
    r = conn.getresponse(); r.read(); return r.status
if os.environ.get("INIT_FAIL"):
    print("failing init", flush=True)
    post("init/error", json.dumps({"errorMessage": "bad init", "errorType": "Runtime.ImportModuleError"}),
         {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
    sys.exit(1)
keep = []
ticks = [0]
def _tick():
    while True:
        time.sleep(0.01); ticks[0] += 1
import threading; threading.Thread(target=_tick, daemon=True).start()
def attempt(f):
    try: return f()
    except Exception as e: return type(e).__name__
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    event = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    out = None
    if "echo" in event: out = event["echo"]
    elif "sleep" in event: time.sleep(event["sleep"]); out = "slept"
    elif "exit" in event: os._exit(event["exit"])
    elif "kill" in event: os.kill(os.getpid(), signal.SIGKILL)
    elif "error" in event:
        post("invocation/" + rid + "/error", json.dumps({"errorMessage": "boom", "errorType": event["error"]}))
        continue
    elif "env" in event: out = os.environ.get(event["env"])
    elif "print" in event: print(event["print"], flush=True); out = "printed"
    elif "headers" in event: out = dict(r.getheaders())
    elif "pid" in event: out = os.getpid()
    elif "alloc" in event: keep.append(bytearray(event["alloc"] * 1024 * 1024)); out = "allocated"
    elif "size" in event: out = "x" * (event["size"] - 2)
    elif "fetch" in event:
        import urllib.request
        def get():
            try: return urllib.request.urlopen(event["fetch"], timeout=5).status
            except urllib.error.HTTPError as e: return e.code
        out = attempt(get)
    elif "write" in event:
        out = attempt(lambda: open(os.path.expandvars(event["write"]), "w").write(event["data"]) and True)
    elif "read" in event: out = attempt(lambda: open(os.path.expandvars(event["read"])).read())
    elif "wait_for" in event:
        end = time.monotonic() + 60
        while not os.path.exists(event["wait_for"]) and time.monotonic() < end:
            time.sleep(0.01)
        out = "released" if os.path.exists(event["wait_for"]) else "gave up"
    elif "id" in event: out = [os.getuid(), os.getgid()]
    elif "rlimits" in event:
        import resource
        out = [resource.getrlimit(resource.RLIMIT_NOFILE)[0], resource.getrlimit(resource.RLIMIT_NPROC)[0]]
    elif "ticks" in event: out = ticks[0]
    elif "signal" in event: out = attempt(lambda: os.kill(event["signal"], 0) or "ok")
    elif "fill" in event:
        def fill():
            with open("/tmp/fill", "wb") as f:
                for i in range(event["fill"]):
                    f.write(bytes(1048576))
                    f.flush()
            return event["fill"]
        out = attempt(fill)
    post("invocation/" + rid + "/response", json.dumps(out))
""".replace("{python}", sys.executable)


# The same runtime on the system's Python, which an unprivileged uid can execute (the
# test venv's interpreter may live under /root, mode 0700).
SYSTEM_PYTHON = "/usr/bin/python3"
BEHAVE_SYSTEM = BEHAVE.replace(sys.executable, SYSTEM_PYTHON, 1)
