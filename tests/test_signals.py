"""SIGTERM at any moment after start-up has begun ends the daemon cleanly with exit 0.

The contract: "SIGTERM or SIGINT: stop accepting, finish or fail in-flight invocations
cleanly, shut every runtime down ... exit 0". A supervisor (podman stop, Kubernetes, a test
harness) may send it while the daemon is still starting, before it says "listening"."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from tests.daemon import ROOT, assert_no_leaks

ECHO = ROOT / "examples" / "shell-echo"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_start_up_is_a_clean_exit_0(sig):
    home = tempfile.mkdtemp(prefix="rapid-test-home-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAPID_", "AWS_LAMBDA_"))}
    env.update(HOME=home, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rapid", "serve", "--port", "0", "--function", f"echo={ECHO}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline().decode()  # the daemon's first line: start-up is under way
        assert first.startswith("rapid:"), first
        proc.send_signal(sig)  # before "listening" in most runs; either way it must end with 0
        rest = proc.communicate(timeout=30)[1].decode()
        assert proc.returncode == 0, f"exit {proc.returncode}; stderr: {first}{rest}"
        assert "shutting down" in rest
        assert_no_leaks(home)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)
