"""Podman for the container tests: install check, base image, builds, and containers that
always go away.

These machines have no Docker engine and no registry, so the tests make their own base
image: a Debian bookworm root filesystem from ``mmdebstrap`` (Python, venv, CA certificates,
curl, bash), with the host's extra CA certificates and pip settings copied in (HTTPS to the
package registries goes through a proxy whose CA only the host trusts). The tarball is
cached under ``.cache/containers/`` and imported as ``localhost/rapid-test-base``; rapid's
own ``Dockerfile`` is then built on it with ``--build-arg BASE=...``.

Every podman call uses the ``runc`` runtime (crun refuses this host's hybrid cgroups) and
``podman run`` gets explicit ulimits (runc fails to set the defaults here). A ``Container``
is removed with ``podman rm -f`` however the test ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "containers"
_BASE_RECIPE = 2  # bump when the recipe below changes: the cached tarball and image are then remade
BASE_TAG = f"localhost/rapid-test-base:bookworm-{_BASE_RECIPE}"
# Images of this checkout: podman's store is the machine's, and other checkouts may be
# building their own at the same time.
CHECKOUT = hashlib.sha1(str(REPO).encode()).hexdigest()[:8]
IMAGE_TAG = f"localhost/rapid:test-{CHECKOUT}"
PACKAGES = "python3,python3-venv,ca-certificates,curl,bash"
RUN_LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]


def leftovers() -> list[str]:
    """Containers of these tests still known to podman, and their conmon monitors."""
    names = podman("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
    found = [n for n in names if n.startswith("rapid-test-")]
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd.startswith(b"/usr/bin/conmon") and b"rapid-test-" in cmd:
            found.append(f"conmon pid {entry}")
    return found


def podman_or_skip() -> str:
    """The podman binary; without it (and runc, mmdebstrap) skip, or fail under CI."""
    missing = [b for b in ("podman", "runc", "mmdebstrap") if shutil.which(b) is None]
    if not missing and os.geteuid() == 0:
        return "podman"
    reason = f"container tests need root and {', '.join(missing) or 'podman'} (see .ci/steps/50-container.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = ["podman", "--runtime", "runc", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def base_image() -> tuple[str, float]:
    """The base image's tag, made if podman lacks it (from the cached tarball, or the
    tarball made first); and the seconds that took (0 if the image was there)."""
    tarball = CACHE / f"bookworm-{_BASE_RECIPE}.tar"
    started = time.monotonic()
    if image_exists(BASE_TAG):
        return BASE_TAG, 0.0
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = CACHE / f"partial-{os.getpid()}.tar"
        hooks = ['mkdir -p "$1/usr/local/share/ca-certificates"']
        for crt in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt")):
            hooks.append(f'cp {crt} "$1/usr/local/share/ca-certificates/"')
        if Path("/etc/pip.conf").exists():
            hooks.append('cp /etc/pip.conf "$1/etc/pip.conf"')
        hooks += [
            'chroot "$1" update-ca-certificates >/dev/null',
            'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
        ]
        cmd = ["mmdebstrap", "--quiet", "--variant=apt", f"--include={PACKAGES}",
               "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
               "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*"]
        cmd += [f"--customize-hook={h}" for h in hooks]
        cmd += ["bookworm", str(partial)]
        try:
            subprocess.run(cmd, check=True, timeout=900, capture_output=True)
        except subprocess.CalledProcessError as exc:
            partial.unlink(missing_ok=True)
            raise AssertionError(f"mmdebstrap failed:\n{exc.stderr.decode(errors='replace')[-3000:]}") from None
        partial.rename(tarball)
    # pip verifies with its own CA bundle unless told to use the system's (which now holds
    # the proxy's CA).
    podman("import", "--change", 'CMD ["bash"]', "--change", "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
           str(tarball), BASE_TAG, timeout=300)
    return BASE_TAG, time.monotonic() - started


def build(context: Path, tag: str, *, dockerfile: str | None = None, args: Sequence[str] = ()) -> float:
    """``podman build`` with the host's network (for the package registries); its seconds."""
    started = time.monotonic()
    cmd = ["build", "--network", "host", "--layers", "-t", tag, *args]
    if dockerfile is not None:
        cmd += ["-f", dockerfile]
    before = podman("image", "inspect", "--format", "{{.Id}}", tag, check=False).stdout.strip()
    podman(*cmd, str(context), timeout=900)
    after = podman("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    if before and before != after:  # the image this tag named before: no longer needed
        podman("rmi", before, check=False)
    return time.monotonic() - started


def image_size(tag: str) -> int:
    out = podman("image", "inspect", "--format", "{{.Size}}", tag).stdout
    return int(out.strip())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Container:
    """One running container: its name, port, logs and processes."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def logs(self) -> tuple[str, str]:
        proc = podman("logs", self.name, check=False)
        return proc.stdout, proc.stderr

    def state(self) -> dict[str, object]:
        out = podman("inspect", "--format", "{{json .State}}", self.name).stdout
        return dict(json.loads(out))

    def exec(self, *cmd: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        flags = ["--user", user] if user is not None else []
        return podman("exec", *flags, self.name, *cmd, check=False, timeout=60)

    def processes(self) -> list[tuple[int, str, str]]:
        """(pid, state, command) of every process in the container, read from its /proc."""
        script = (
            "import os\n"
            "for p in os.listdir('/proc'):\n"
            "    if not p.isdigit() or int(p) == os.getpid(): continue\n"
            "    try:\n"
            "        s = open(f'/proc/{p}/stat').read()\n"
            "    except OSError: continue\n"
            "    print(p, s[s.rindex(')') + 2], s[s.index('(') + 1:s.rindex(')')])\n"
        )
        out = self.exec("python3", "-c", script)
        assert out.returncode == 0, out.stderr
        rows = [line.split(" ", 2) for line in out.stdout.splitlines()]
        return [(int(p), st, comm) for p, st, comm in rows]

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            st = self.state()
            if not st.get("Running"):
                out, err = self.logs()
                raise AssertionError(f"container {self.name} exited: {st}\n{out}\n{err}")
            time.sleep(0.2)
        out, err = self.logs()
        raise AssertionError(f"container {self.name} not ready after {timeout} s\n{out}\n{err}")

    def __repr__(self) -> str:
        return f"<Container {self.name} :{self.port}>"


@contextlib.contextmanager
def running(image: str, *args: str, env: dict[str, str] | None = None, cmd: Sequence[str] = (),
            ready: bool = True) -> Iterator[Container]:
    """A detached container on the host's network, listening on a free loopback port (not
    the image's 0.0.0.0:8080: the host's network is shared); removed at exit."""
    port = free_port()
    name = f"rapid-test-{uuid.uuid4().hex[:10]}"
    env = {"RAPID_HOST": "127.0.0.1", "RAPID_PORT": str(port), **(env or {})}
    flags = ["--name", name, "--network", "host", *RUN_LIMITS]
    for k, v in env.items():
        flags += ["-e", f"{k}={v}"]
    podman("run", "-d", *flags, *args, image, *cmd)
    c = Container(name, port)
    try:
        if ready:
            c.wait_ready()
        yield c
    finally:
        podman("rm", "-f", "-t", "0", name, check=False, timeout=120)


def invoke(
    url: str, payload: bytes = b"{}", timeout: float = 60, function: str = "function"
) -> tuple[int, dict[str, str], bytes]:
    """POST an invoke; (status, headers with lower-case names, body)."""
    path = f"/2015-03-31/functions/{function}/invocations"
    req = urllib.request.Request(url + path, data=payload, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
